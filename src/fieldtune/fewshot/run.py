"""``train()`` for method zero_shot / setfit with an encoder: sentence embeddings + a linear head.

The same run folder as any run (``write_run``): model/ (kind ``embedding``), metrics.json, report.md and
the confusion matrix. No checkpoints: nothing here trains for long, so ``--resume`` simply starts again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed

from ..artifacts import save_artifact
from ..config import RunConfig
from ..data.prepare import Splits, prepare_splits
from ..errors import UserError
from ..run import RunResult, _set_threads, run_meta, start_output, write_run
from ..tasks import get_task
from ..zoo import resolve
from .head import EmbeddingArtifact, count_params, load_body
from .predictor import EmbeddingPredictor
from .zero_shot import check_label_keys, fit_zero_shot


def train_fewshot(cfg: RunConfig, resume: bool = False, progress: bool = True) -> RunResult:
    """zero_shot: label descriptions embedded, dev picks template and temperature; setfit: contrastive
    fine-tuning on the (few) training examples, then logistic regression. Both evaluated like any run."""
    started = time.perf_counter()
    _check(cfg)
    task = get_task(cfg.task)
    splits = prepare_splits(cfg)
    labels = task.label_list(splits.train)
    check_label_keys(cfg, labels)
    _set_threads(cfg)
    set_seed(cfg.train.seed)
    body = load_body(resolve(cfg.model))  # a bad model name fails here, before the run folder exists
    max_length = min(cfg.train.max_length or body.max_seq_length, body.max_seq_length)
    start_output(cfg)
    t0 = time.perf_counter()
    if cfg.method == "zero_shot":
        body.max_seq_length = max_length
        head, state = fit_zero_shot(cfg, body, labels, splits.dev, cfg.train.eval_batch_size)
        stats: dict[str, Any] = {"steps": 0, "best_epoch": 0}
        trainable = 0
    else:
        from .setfit_train import train_setfit

        body, head, stats = train_setfit(cfg, labels, splits.train, max_length, progress, body)
        state = {}
        stats["best_epoch"] = cfg.setfit.body_epochs
        trainable = (count_params(body) if cfg.setfit.body_epochs else 0) + head.size
    train_s = time.perf_counter() - t0
    meta = {"task": cfg.task, "labels": labels, "max_length": max_length, "state": state}
    predictor = EmbeddingPredictor(body, head, meta, cfg.train.eval_batch_size)
    params = {"trainable": trainable, "total": count_params(body) + head.size}
    return _finish(cfg, task, splits, labels, predictor, params, train_s, stats, started)


def _check(cfg: RunConfig) -> None:
    if cfg.task not in ("classification", "multilabel"):
        raise UserError(
            f"method {cfg.method} with an encoder supports task classification / multilabel, not {cfg.task}",
            hint="for ner use method: full, lora or head; or a causal LM (model: smollm2) for zero-shot ner",
        )
    if cfg.method == "setfit" and cfg.task != "classification":
        raise UserError(
            f"method setfit supports task classification, not {cfg.task}",
            hint="for multi-label use method: zero_shot, head or lora with an encoder",
        )


def _finish(
    cfg: RunConfig,
    task: Any,
    splits: Splits,
    labels: list[str],
    predictor: EmbeddingPredictor,
    params: dict[str, int],
    train_s: float,
    stats: dict[str, Any],
    started: float,
) -> RunResult:
    """Dev / test metrics through the predictor the artifact reloads as, then the run folder."""
    metrics: dict[str, Any] = {"dev": predictor.evaluate(splits.dev)}
    test_preds, ms_per_example = None, None
    if splits.test:
        t0 = time.perf_counter()
        test_preds = predictor.predict_examples(splits.test)
        ms_per_example = round(1000 * (time.perf_counter() - t0) / len(splits.test), 3)
        metrics["test"] = task.metrics(splits.test, test_preds, labels)
    scored = splits.test or splits.dev
    metrics["baseline"] = {"split": "test" if splits.test else "dev", **task.baseline(splits.train, scored, labels)}
    metrics["train"] = _train_stats(cfg, stats, params, train_s, ms_per_example, started)
    frozen = cfg.method == "zero_shot" or cfg.setfit.body_epochs == 0  # the artifact references the base model
    meta = run_meta(
        cfg,
        labels,
        predictor.meta["state"],
        predictor.max_length,
        metrics,
        params,
        splits,
        kind="embedding",
        base_fingerprint=frozen,
    )
    meta |= {"body": "base" if frozen else "artifact", "head": {"file": "head.safetensors", "pooling": "normalised"}}
    artifact = EmbeddingArtifact(predictor.head, None if frozen else predictor.body)

    def save(target: Path) -> None:
        save_artifact(artifact, None, meta, target)
        # write_run saves the model before it writes metrics.json (this same dict): the size gets in
        metrics["train"]["artifact_bytes"] = folder_bytes(target)

    return write_run(cfg, task, splits, labels, metrics, test_preds, [], params, meta, save)


def _train_stats(
    cfg: RunConfig,
    stats: dict[str, Any],
    params: dict[str, int],
    train_s: float,
    ms_per_example: float | None,
    started: float,
) -> dict[str, Any]:
    """metrics.json's ``train``: the keys every run has (report.md and the CLI read them) and the costs."""
    return {
        "wall_s": round(time.perf_counter() - started, 2),
        "train_s": round(train_s, 2),
        "time_to_best_s": round(train_s, 2),
        "best_epoch": stats["best_epoch"],
        "best_step": stats["steps"],
        "steps": stats["steps"],
        **{key: stats[key] for key in ("pairs", "head_c") if key in stats},
        "stopped_early": False,
        "tokens_per_s": 0.0,  # not counted: sentence-transformers batches its own inputs
        "processes": 1,
        "precision": "fp32",
        "trainable_params": params["trainable"],
        "total_params": params["total"],
        "ms_per_example": ms_per_example,
    }


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (the artifact's size on disk)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())

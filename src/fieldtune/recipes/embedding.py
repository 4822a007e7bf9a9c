"""Recipe ``embedding``: sentence embeddings + a linear head, for classification with an encoder.

zero_shot: the label descriptions are embedded and dev picks the template, the calibration (none, or each
label's mean cosine over the training texts subtracted) and the temperature; setfit:
contrastive fine-tuning of the encoder on pairs of the (few) training examples, then a logistic-regression
head. Evaluated through the same predictor the artifact reloads as (fieldtune.json ``kind: embedding``).
No checkpoints: nothing here trains for long, so ``--resume`` simply starts again.
"""

from __future__ import annotations

import time
from typing import Any

from accelerate.utils import set_seed

from ..artifacts import save_artifact
from ..config import RunConfig
from ..fewshot.head import EmbeddingArtifact, LinearHead, count_params
from ..fewshot.setfit_train import train_setfit
from ..fewshot.zero_shot import check_label_keys, fit_zero_shot
from ..models.embedder import load_sentence_encoder
from ..predict.embedding import EmbeddingPredictor
from ..runs import RunRecord, RunResult, TrainStats, artifact_meta, evaluate_splits, start_output, write_run
from ..training import setup
from ..zoo import resolve
from .common import read_data
from .registry import Recipe, register_recipe


def run(cfg: RunConfig, resume: bool = False, progress: bool = True) -> RunResult:
    """Fit the head (and, setfit, the encoder), evaluate through the predictor, write the run folder."""
    started = time.perf_counter()
    task, splits, labels = read_data(cfg)
    check_label_keys(cfg, labels)
    setup.set_threads(cfg)
    set_seed(cfg.train.seed)
    body = load_sentence_encoder(resolve(cfg.model))  # a bad model name fails here, before the run folder exists
    max_length = min(cfg.train.max_length or body.max_seq_length, body.max_seq_length)
    start_output(cfg)
    tick = time.perf_counter()
    if cfg.method == "zero_shot":
        body.max_seq_length = max_length
        train_texts = [ex.text for ex in splits.train]  # unlabelled use: the batch calibration's mean cosines
        head, state = fit_zero_shot(cfg, body, labels, splits.dev, cfg.train.eval_batch_size, train_texts)
        found: dict[str, Any] = {"steps": 0}
    else:
        body, head, found = train_setfit(cfg, labels, splits.train, max_length, progress, body)
        state = {}
    stats = _stats(cfg, body, head, found, time.perf_counter() - tick)
    meta = {"task": cfg.task, "labels": labels, "max_length": max_length, "state": state}
    predictor = EmbeddingPredictor(body, head, meta, cfg.train.eval_batch_size)
    evaluation = evaluate_splits(lambda _, ex: predictor.predict_examples(ex), task, splits, labels)
    record = RunRecord(cfg, splits, labels, evaluation, stats, [], started)
    frozen = cfg.method == "zero_shot" or cfg.setfit.body_epochs == 0  # the artifact references the base model
    meta = artifact_meta(record, state, max_length, kind="embedding", base_fingerprint=frozen)
    meta |= {"body": "base" if frozen else "artifact", "head": {"file": "head.safetensors", "pooling": "normalised"}}
    artifact = EmbeddingArtifact(head, None if frozen else body)
    return write_run(record, task, lambda target: save_artifact(artifact, None, meta, target))


def _stats(cfg: RunConfig, body: Any, head: LinearHead, found: dict[str, Any], train_s: float) -> TrainStats:
    """TrainStats of a zero-shot / SetFit fit (tokens are not counted: sentence-transformers batches its own)."""
    tuned_body = cfg.method == "setfit" and cfg.setfit.body_epochs > 0
    return TrainStats(
        train_s=round(train_s, 2),
        time_to_best_s=round(train_s, 2),
        best_epoch=cfg.setfit.body_epochs if cfg.method == "setfit" else 0,
        best_step=found["steps"],
        steps=found["steps"],
        trainable_params=(count_params(body) if tuned_body else 0) + (head.size if cfg.method == "setfit" else 0),
        total_params=count_params(body) + head.size,
        extra={key: found[key] for key in ("pairs", "head_c") if key in found},
    )


register_recipe(Recipe("embedding", run))

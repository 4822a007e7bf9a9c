"""Recipe ``llm_classify``: text classification with a causal LM, the label words being its answer.

zero_shot / in_context: no training; label scoring, calibrated as dev chooses (``llm.calibration``); the
artifact is the prompt state (with the calibration and its prior), the tokenizer and a reference to the
base model (+ the shot pool for in_context). Any weight method (lora, ia3, prompt_tuning, full, freeze):
the model learns to answer with the label words, model selection on dev accuracy from the same label scorer.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..artifacts import save_artifact
from ..config import RunConfig
from ..data.chat import encode_turn
from ..data.prepare import Splits
from ..llm.calibration import choose_calibration
from ..llm.classify import DEFAULT_MAX_LENGTH, POOL_FILE, LLMClassifier, conversation, prompt_state
from ..methods import apply_method, count_parameters, get_method
from ..models.causal_lm import CausalLM, load_causal_lm
from ..runs import RunRecord, RunResult, TrainStats, artifact_meta, evaluate_splits, start_output, write_run
from ..tasks import Task, get_task
from ..training import setup
from ..utils.atomic import atomic_write_text
from .common import fit, read_data
from .registry import Recipe, register_recipe


def run(cfg: RunConfig, resume: bool = False, progress: bool = True) -> RunResult:
    """Prompt or train, evaluate with the label scorer, write the run folder."""
    started = time.perf_counter()
    task, splits, labels = read_data(cfg)
    state = prompt_state(cfg, labels)
    setup.set_threads(cfg)
    lm = load_causal_lm(cfg.model, attention=setup.attention(cfg))
    max_length = cfg.train.max_length or DEFAULT_MAX_LENGTH
    trained = get_method(cfg.method).trains
    if trained:
        clf, stats, history = _train(cfg, task, splits, labels, state, lm, max_length, resume, progress)
        pool, dev_scores = None, None
    else:
        start_output(cfg)
        pool = [(ex.text, ex.labels[0]) for ex in splits.train] if cfg.method == "in_context" else None
        clf = LLMClassifier(lm.model.eval(), lm.tokenizer, labels, state, pool, max_length)
        dev_scores, extra = _calibrate(cfg, clf, task, splits, labels)
        stats = TrainStats(
            total_params=count_parameters(lm.model)["total"], attention=setup.attention(cfg), extra=extra
        )
        history = []

    # zero-shot scored dev choosing the calibration; a trained model scores it here; predict reuses it
    # unless dev is the timed split (no test) of a trained model
    reuse_dev = dev_scores is not None or bool(splits.test)
    if splits.dev:
        dev_scores = clf.log_scores([e.text for e in splits.dev]) if dev_scores is None else dev_scores
        state.update(task.tune(splits.dev, [], list(dev_scores), labels))  # temperature scaling
    seen: dict[str, np.ndarray] = {}  # each split's log-scores, for the ECE before temperature scaling

    def predict(split: str, examples: list[Any]) -> list[dict[str, float]]:
        reuse = split == "dev" and reuse_dev
        seen[split] = dev_scores if reuse else clf.log_scores([e.text for e in examples])
        return clf.as_dicts(seen[split])

    def uncalibrated(split: str, examples: list[Any]) -> list[dict[str, float]]:
        return clf.as_dicts(seen[split], temperature=1.0)

    evaluation = evaluate_splits(predict, task, splits, labels, uncalibrated=uncalibrated)
    record = RunRecord(cfg, splits, labels, evaluation, stats, history, started)
    meta = artifact_meta(record, state, max_length, kind="llm", base_fingerprint=None if trained else True)
    weights = clf.model if trained else None

    def save(target: Path) -> None:
        save_artifact(weights, lm.tokenizer, meta, target, extra=_pool_writer(pool), licences_from=lm.path)

    return write_run(record, task, save)


def _train(
    cfg: RunConfig,
    task: Task,
    splits: Splits,
    labels: list[str],
    state: dict[str, Any],
    lm: CausalLM,
    max_length: int,
    resume: bool,
    progress: bool,
) -> tuple[LLMClassifier, TrainStats, list[dict[str, Any]]]:
    """Classification as generation, trained by the shared loop; returns the fp32 classifier."""
    accelerator = setup.prepare(cfg)
    lm.model.config.use_cache = False  # training builds no KV cache; the scorer asks for one explicitly
    model, params = apply_method(lm.model, cfg.method, cfg.freeze_layers, cfg.peft)
    words = dict(zip(labels, state["label_words"]))
    features = [
        encode_turn(lm.tokenizer, conversation(state, ex.text), words[ex.labels[0]], max_length) for ex in splits.train
    ]
    start_output(cfg, resume)

    def dev_metrics(m: torch.nn.Module) -> dict[str, Any]:
        clf = LLMClassifier(m, lm.tokenizer, labels, state, None, max_length)
        return task.metrics(splits.dev, clf.probabilities([ex.text for ex in splits.dev]), labels)

    pad_id = lm.tokenizer.pad_token_id
    answer_loss = get_task("causal_lm").loss  # trained as generation: the label word is the answer
    model, loop_state, budget = fit(
        cfg,
        model,
        features,
        dev_metrics,
        accelerator,
        pad_id,
        loss=answer_loss,
        kind="causal_lm",
        resume=resume,
        progress=progress,
    )
    clf = LLMClassifier(model.eval(), lm.tokenizer, labels, state, None, max_length)  # fp32, as the artifact predicts
    return clf, TrainStats.from_loop(cfg, loop_state, accelerator, params, budget), loop_state.history


def _calibrate(
    cfg: RunConfig, clf: LLMClassifier, task: Task, splits: Splits, labels: list[str]
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """zero_shot / in_context: choose the calibration on dev (``prompt.calibrate``), saved in the state."""
    metric = cfg.selection_metric()
    dev = splits.dev

    def dev_metric(scores: np.ndarray) -> float:
        return float(task.metrics(dev, clf.as_dicts(scores), labels)[metric])

    return choose_calibration(
        clf,
        clf.state["calibrate"],
        [ex.text for ex in splits.train],
        [ex.text for ex in dev],
        dev_metric,
        cfg.train.seed,
        np.array([sum(ex.labels[0] == label for ex in splits.train) for label in labels], dtype=np.float64),
    )


def _pool_writer(pool: list[tuple[str, str]] | None) -> Any:
    """in_context: the training examples the shots are chosen from, saved in the artifact."""
    if not pool:
        return None

    def write(folder: Path) -> None:
        lines = [json.dumps({"text": text, "label": label}, ensure_ascii=False) for text, label in pool]
        atomic_write_text(folder / POOL_FILE, "\n".join(lines) + "\n")

    return write


register_recipe(Recipe("llm_classify", run))

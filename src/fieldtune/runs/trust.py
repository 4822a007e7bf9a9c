"""Trust in a run's scores: abstention thresholds and conformal sets fitted on dev (saved in the artifact's
``state``), and the numbers metrics.json reports about them and about calibration on each split."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import AbstainConfig
from ..data.examples import Example
from ..evaluation.calibration import abstention_threshold, conformal_quantile, ece, prediction_set
from ..tasks import Task

Pairs = tuple[np.ndarray, np.ndarray]  # (top-label confidence, correct)


def fit_trust(cfg: AbstainConfig, task: Task, dev: list[Example], predictions: list[Any]) -> dict[str, Any]:
    """The artifact state of ``abstain:``: ``abstain`` (the dev-chosen threshold and what it gave on dev)
    and ``conformal`` (alpha and the split-conformal q̂), from dev predictions as the artifact makes them
    (calibrated). Empty when ``abstain:`` asks for nothing."""
    state: dict[str, Any] = {}
    if cfg.threshold:
        conf, correct = task.confidences(dev, predictions)
        chosen = abstention_threshold(conf, correct, cfg.target_precision, cfg.target_coverage)
        state["abstain"] = {
            "threshold": chosen["threshold"],
            "target_precision": cfg.target_precision,
            "target_coverage": cfg.target_coverage,
            "dev_coverage": chosen["coverage"],
            "dev_precision": chosen["precision"],
            "met": chosen["met"],
        }
    if cfg.conformal_alpha is not None:
        scores = 1.0 - task.true_label_probs(dev, predictions)
        state["conformal"] = {"alpha": cfg.conformal_alpha, "qhat": conformal_quantile(scores, cfg.conformal_alpha)}
    return state


def calibration_scores(pairs: Pairs | None, raw: Pairs | None) -> dict[str, Any]:
    """``ece`` (the scores as the artifact predicts them) and ``ece_uncalibrated`` (before temperature
    scaling; the same number when nothing was calibrated); empty for a task without probabilities."""
    if pairs is None:
        return {}
    raw = pairs if raw is None else raw
    return {"ece": round(ece(*pairs), 6), "ece_uncalibrated": round(ece(*raw), 6)}


def trust_scores(task: Task, state: dict[str, Any], examples: list[Example], predictions: list[Any]) -> dict[str, Any]:
    """What the saved abstention threshold and conformal sets give on one split: ``abstain_coverage`` and
    ``abstain_precision`` (of the answered), ``conformal_coverage`` and ``mean_set_size``."""
    out: dict[str, Any] = {}
    if state.get("abstain"):
        conf, correct = task.confidences(examples, predictions)
        kept = conf >= state["abstain"]["threshold"]
        out["abstain_coverage"] = round(float(kept.mean()), 6) if len(kept) else 0.0
        out["abstain_precision"] = round(float(correct[kept].mean()), 6) if kept.any() else None
    if state.get("conformal"):
        qhat = state["conformal"]["qhat"]
        covered = 1.0 - task.true_label_probs(examples, predictions) <= qhat + 1e-12
        sizes = [len(prediction_set(task.label_probs(p), qhat)) for p in predictions]
        out["conformal_coverage"] = round(float(covered.mean()), 6)
        out["mean_set_size"] = round(float(np.mean(sizes)), 4)
    return out

"""Calibrated confidence: expected calibration error, temperature scaling, abstention thresholds and
split-conformal prediction sets. Plain numpy on arrays of confidences and logits, no model in sight.

``conf`` / ``correct`` pairs are top-label confidences and whether the top label was right (a
classifier's max probability; for multi-label, each (text, label) decision's max(p, 1 - p)).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import minimize, minimize_scalar

BINS = 15
NEVER = 1.01  # an abstention threshold above every probability: abstain on everything


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Element-wise sigmoid of ``logits / temperature``."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64) / temperature))


def reliability(conf: np.ndarray, correct: np.ndarray, bins: int = BINS) -> dict[str, list[float]]:
    """Reliability-diagram data over ``bins`` equal-width confidence bins on [0, 1].

    Returns:
        ``lower`` / ``upper`` bin edges, ``confidence`` (mean confidence), ``accuracy`` and ``count``
        per bin (mean values are 0 for an empty bin).
    """
    conf, correct = np.asarray(conf, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bin i holds (edges[i], edges[i+1]]; confidence 0 goes to the first bin
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins).astype(float)
    safe = np.maximum(count, 1)
    return {
        "lower": edges[:-1].tolist(),
        "upper": edges[1:].tolist(),
        "confidence": (np.bincount(idx, weights=conf, minlength=bins) / safe).tolist(),
        "accuracy": (np.bincount(idx, weights=correct, minlength=bins) / safe).tolist(),
        "count": count.tolist(),
    }


def ece(conf: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| over equal-width bins."""
    if len(conf) == 0:
        return 0.0
    r = reliability(conf, correct, bins)
    gaps = np.abs(np.array(r["accuracy"]) - np.array(r["confidence"]))
    return float(np.sum(np.array(r["count"]) * gaps) / len(conf))


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float, multilabel: bool = False) -> float:
    """Mean negative log-likelihood at ``temperature``: of the gold class (``targets``: class ids), or
    the mean binary cross-entropy per (text, label) for multi-label (``targets``: 0/1 matrix)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    if multilabel:
        y = np.asarray(targets, dtype=np.float64)
        # log(1 + exp(-|z|)) + max(z, 0) - y z: the stable form of binary cross-entropy on logits
        return float(np.mean(np.logaddexp(0.0, z) - y * z))
    lse = np.logaddexp.reduce(z, axis=-1)
    return float(np.mean(lse - z[np.arange(len(z)), np.asarray(targets)]))


def fit_temperature(logits: np.ndarray, targets: np.ndarray, multilabel: bool = False) -> float:
    """The single temperature T in [0.05, 20] minimising dev NLL of ``softmax(logits / T)`` (or a shared
    T on the sigmoid logits for multi-label): a bounded 1-D search over log T. Dividing by one positive
    scalar never changes the argmax, only how confident the scores are.

    Returns:
        T rounded to 4 decimals; 1.0 when there is nothing to fit on.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.size == 0 or len(logits) < 2:
        return 1.0
    best = minimize_scalar(
        lambda log_t: nll(logits, targets, math.exp(log_t), multilabel),
        bounds=(math.log(0.05), math.log(20.0)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    t = math.exp(best.x)
    # the search may stop a hair off T=1 on data it cannot improve: keep what is not worse
    return round(t, 4) if nll(logits, targets, t, multilabel) <= nll(logits, targets, 1.0, multilabel) else 1.0


TOP_LABEL_MIN = 20  # right and wrong dev predictions each needed before a top-label map is tried
CALIBRATION_KEYS = ("temperature_scaling", "top_label")  # what an artifact's state holds to calibrate scores


def uncalibrated_state(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` without its calibration: the scores as the model gives them (for the ECE before)."""
    return {k: v for k, v in state.items() if k not in CALIBRATION_KEYS}


def _log_odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def top_label_fit(conf: np.ndarray, correct: np.ndarray) -> dict[str, float]:
    """Platt scaling of the top label: ``sigmoid(a * logit(conf) + b)`` with a > 0 (monotone), fitted for
    minimum log loss of whether the top label was right. Returns ``{"a", "b"}``."""
    s, ok = _log_odds(np.asarray(conf, dtype=np.float64)), np.asarray(correct, dtype=np.float64)
    # the log loss of sigmoid(a s + b): the multi-label NLL of those logits (a stable binary cross-entropy)
    loss = lambda w: nll(math.exp(w[0]) * s + w[1], ok, 1.0, multilabel=True)  # noqa: E731
    best = minimize(loss, [0.0, 0.0], method="Nelder-Mead")
    return {"a": round(math.exp(best.x[0]), 5), "b": round(float(best.x[1]), 5)}


def top_label_apply(probs: np.ndarray, platt: dict[str, float]) -> np.ndarray:
    """Gives each row's top label its Platt-scaled probability by re-tempering that row: the temperature
    t (per row) with ``max(softmax(log(p) / t)) == sigmoid(a * logit(max p) + b)``, found by bisection on
    log t. Any temperature keeps the order of the labels, so the top label stays on top and the others
    keep their ranks; a target below 1 / labels (uniform) is raised to just above it."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.size == 0:
        return probs.copy()
    with np.errstate(divide="ignore"):
        logp = np.log(probs)
    k = probs.shape[1]
    want = sigmoid(platt["a"] * _log_odds(probs.max(axis=1)) + platt["b"])
    want = np.clip(want, 1 / k + 1e-6, 1 - 1e-12)
    lo, hi = np.full(len(probs), -8.0), np.full(len(probs), 8.0)  # log t: a higher t flattens, lowering the top
    for _ in range(50):
        mid = (lo + hi) / 2
        top = softmax(logp / np.exp(mid)[:, None]).max(axis=1)
        lo, hi = np.where(top > want, mid, lo), np.where(top > want, hi, mid)
    return softmax(logp / np.exp((lo + hi) / 2)[:, None])


def choose_top_label(probs: np.ndarray, targets: np.ndarray, folds: int = 5, seed: int = 0) -> dict[str, float] | None:
    """A top-label Platt map on dev's temperature-scaled ``probs``, kept only when it helps out of sample.

    One temperature moves every confidence the same way; a well-trained model is often under-confident
    at the top and over-confident in the middle, which only a second, confidence-dependent map fixes
    (BANKING77: test ECE 0.0218 -> 0.0171, bench/RESULTS.md). With ``folds``-fold cross-validation on dev
    (seeded), the map must lower the held-out ECE of the top label; it needs ``TOP_LABEL_MIN`` right and
    wrong dev predictions to be tried at all.

    Returns:
        ``{"a", "b"}`` fitted on all of dev, or None (temperature scaling alone).
    """
    probs, targets = np.asarray(probs, dtype=np.float64), np.asarray(targets)
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == targets
    if min(int(correct.sum()), int((~correct).sum())) < TOP_LABEL_MIN:
        return None
    order = np.random.default_rng(seed).permutation(len(conf))
    held = np.empty(len(conf))
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part)
        held[part] = top_label_apply(probs[part], top_label_fit(conf[rest], correct[rest])).max(axis=1)
    if ece(held, correct) >= ece(conf, correct):
        return None
    return top_label_fit(conf, correct)


def group_scores(logits: np.ndarray, chosen: np.ndarray, groups: np.ndarray, temperature: float) -> np.ndarray:
    """Per group, the mean of its rows' ``softmax(row / temperature)[chosen]`` (``groups``: 0..G-1 per row):
    an entity's score is the mean confidence of its words' tags."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    p = np.exp(z[np.arange(len(z)), chosen] - np.logaddexp.reduce(z, axis=-1))
    return np.bincount(groups, weights=p) / np.bincount(groups)


def fit_group_temperature(logits: np.ndarray, chosen: np.ndarray, groups: np.ndarray, correct: np.ndarray) -> float:
    """The temperature T in [0.05, 20] that makes group scores (:func:`group_scores`, e.g. a predicted
    entity's score) best predict whether each group was right: minimum log loss against ``correct``.
    The tags are chosen once, at T = 1 (``chosen``), so the groups stay what they are; only their scores move.

    Returns:
        T rounded to 4 decimals; 1.0 when there is nothing to fit on or no T does better.
    """
    correct = np.asarray(correct, dtype=np.float64)
    if len(correct) < 2:
        return 1.0

    def loss(t: float) -> float:
        s = np.clip(group_scores(logits, chosen, groups, t), 1e-7, 1 - 1e-7)
        return float(-np.mean(correct * np.log(s) + (1 - correct) * np.log(1 - s)))

    best = minimize_scalar(
        lambda log_t: loss(math.exp(log_t)),
        bounds=(math.log(0.05), math.log(20.0)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    t = math.exp(best.x)
    return round(t, 4) if loss(t) <= loss(1.0) else 1.0


def precision_coverage(conf: np.ndarray, correct: np.ndarray) -> dict[str, list[float]]:
    """Precision of the kept predictions against coverage, for every threshold at which the kept set
    changes (confidences sorted high to low; ties kept or dropped together)."""
    conf, correct = np.asarray(conf, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    order = np.argsort(-conf, kind="stable")
    c, ok = conf[order], correct[order]
    cuts = [k for k in range(1, len(c) + 1) if k == len(c) or c[k] < c[k - 1]]  # ends of tie groups
    hits = np.cumsum(ok)
    return {
        "threshold": [float(c[k - 1]) for k in cuts],
        "coverage": [k / len(c) for k in cuts],
        "precision": [float(hits[k - 1] / k) for k in cuts],
    }


def abstention_threshold(
    conf: np.ndarray,
    correct: np.ndarray,
    target_precision: float | None = None,
    target_coverage: float | None = None,
) -> dict[str, Any]:
    """The confidence threshold (keep a prediction when its confidence >= threshold) chosen on dev.

    Args:
        conf: Dev top-label confidences (calibrated, as the artifact predicts).
        correct: Whether each top label was right.
        target_precision: Keep the largest share of dev whose precision is at least this.
        target_coverage: Or: keep (at least) this share of dev, the most confident first.

    Returns:
        ``threshold``, the dev ``coverage`` and ``precision`` it gives, and ``met`` (False when no
        threshold reaches ``target_precision``: the threshold is then above every score, the model abstains
        on everything).
    """
    curve = precision_coverage(conf, correct)
    if not curve["threshold"]:
        return {"threshold": NEVER, "coverage": 0.0, "precision": 0.0, "met": False}
    points = list(zip(curve["threshold"], curve["coverage"], curve["precision"]))
    if target_coverage is not None:
        chosen = next((p for p in points if p[1] >= target_coverage - 1e-12), points[-1])
    else:
        meeting = [p for p in points if p[2] >= (target_precision or 0.0) - 1e-12]
        if not meeting:
            return {"threshold": NEVER, "coverage": 0.0, "precision": 0.0, "met": False}
        chosen = max(meeting, key=lambda p: p[1])
    return {"threshold": chosen[0], "coverage": round(chosen[1], 6), "precision": round(chosen[2], 6), "met": True}


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """Split-conformal threshold q̂ of nonconformity ``scores`` (1 - p(true label) on dev): the
    ⌈(n + 1)(1 - alpha)⌉-th smallest score, so that a new example's true label has
    1 - p <= q̂ with probability >= 1 - alpha. 1.0 (every label in every set) when dev is too small."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    k = math.ceil((len(s) + 1) * (1 - alpha))
    return 1.0 if k > len(s) else float(s[k - 1])


def prediction_set(probs: dict[str, float], qhat: float) -> list[str]:
    """The labels whose nonconformity 1 - p is at most ``qhat``, most probable first."""
    return [k for k, p in sorted(probs.items(), key=lambda kv: -kv[1]) if 1.0 - p <= qhat + 1e-12]

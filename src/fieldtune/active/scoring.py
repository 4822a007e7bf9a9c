"""How unsure a model is about each text, from the task-level predictions its predictor returns.

Every function returns one number per text, **higher = less sure = label it first**, so strategies
can be ranked the same way:

- single-label classification (``{label: prob}``): ``uncertainty`` 1 - max p; ``margin``
  1 - (p1 - p2) (the smallest top-two margin first); ``entropy`` the entropy over labels divided by
  log(labels), in [0, 1].
- multi-label (``{"scores", "threshold"}``): per label, closeness of p to the decision threshold
  ``1 - |p - t| / max(t, 1 - t)``; ``uncertainty`` its mean over labels, ``margin`` its max (the
  label nearest the threshold), ``entropy`` the mean binary entropy of the labels.
- NER (``(tags, per-word confidence)``): the encoder predictor exposes only each word's top tag
  probability p, so ``uncertainty`` is 1 - the least confident word's p; ``margin`` uses the bound
  p1 - p2 >= 2 p1 - 1 of that word (same order as uncertainty); ``entropy`` the mean over words of
  the binary entropy of p (top tag vs the rest).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UserError

STRATEGIES = ("uncertainty", "margin", "entropy", "diverse", "random")
SCORED = {"diverse": "uncertainty", "random": "uncertainty"}  # what their score column reports
EPS = 1e-12


def scores(task: str, predictions: list[Any], strategy: str) -> np.ndarray:
    """One score per prediction for ``strategy`` (diverse and random report plain uncertainty).

    Args:
        task: ``classification``, ``multilabel`` or ``ner``.
        predictions: The predictor's ``predict_examples`` output.
        strategy: One of :data:`STRATEGIES`.

    Returns:
        float64 array, higher = less sure.

    Raises:
        UserError: An unknown strategy, or a task without scores (generation).
    """
    if strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {strategy!r}", hint=f"use one of {', '.join(STRATEGIES)}")
    kind = SCORED.get(strategy, strategy)
    if not predictions:
        return np.zeros(0)
    if task == "classification":
        return _single_label(predictions, kind)
    if task == "multilabel":
        return _multi_label(predictions, kind)
    if task == "ner":
        return _tagger(predictions, kind)
    raise UserError(
        f"suggest does not support task {task!r}: its predictions carry no label probabilities",
        hint="use a classification, multilabel or NER model",
    )


def _single_label(predictions: list[dict[str, float]], kind: str) -> np.ndarray:
    probs = np.array([list(p.values()) for p in predictions], dtype=np.float64)
    top = -np.sort(-probs, axis=1)
    if kind == "uncertainty":
        return 1.0 - top[:, 0]
    if kind == "margin":
        second = top[:, 1] if probs.shape[1] > 1 else np.zeros(len(probs))
        return 1.0 - (top[:, 0] - second)
    entropy = -(probs * np.log(np.clip(probs, EPS, 1.0))).sum(axis=1)
    return entropy / max(np.log(probs.shape[1]), EPS)


def _multi_label(predictions: list[dict[str, Any]], kind: str) -> np.ndarray:
    probs = np.array([list(p["scores"].values()) for p in predictions], dtype=np.float64)
    if kind == "entropy":
        return _binary_entropy(probs).mean(axis=1)
    t = np.array([p["threshold"] for p in predictions], dtype=np.float64)[:, None]
    closeness = 1.0 - np.abs(probs - t) / np.maximum(t, 1.0 - t)
    return closeness.mean(axis=1) if kind == "uncertainty" else closeness.max(axis=1)


def _tagger(predictions: list[tuple[list[str], list[float]]], kind: str) -> np.ndarray:
    out = []
    for _, conf in predictions:
        p = np.asarray(conf if len(conf) else [1.0], dtype=np.float64)
        if kind == "entropy":
            out.append(float(_binary_entropy(p).mean()))
        elif kind == "margin":
            out.append(1.0 - float(np.clip(2 * p.min() - 1, 0.0, 1.0)))
        else:
            out.append(1.0 - float(p.min()))
    return np.array(out, dtype=np.float64)


def _binary_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy of Bernoulli(p) in bits (1 at p = 0.5)."""
    p = np.clip(p, EPS, 1 - EPS)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def guess(task: str, prediction: Any) -> Any:
    """The model's answer to pre-fill: a label, a list of labels, or IOB2 tags."""
    if task == "classification":
        return max(prediction, key=prediction.get)
    if task == "multilabel":
        return sorted(k for k, v in prediction["scores"].items() if v >= prediction["threshold"])
    return list(prediction[0])

"""Out-of-scope (OOS) detection for intent models: scores, a Mahalanobis detector, dev-chosen thresholds
and the metrics CLINC150 reports. Plain numpy / scipy / scikit-learn on arrays, no model in sight
(the detector's per-query products run in torch: see :meth:`MahalanobisDetector.distances`).

Every score follows one convention: **higher = more out-of-scope**, and a query is rejected (answered
"out of scope") when its score is strictly above the threshold (:func:`rejected`), so ``inf`` rejects
nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import logsumexp
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score

CHUNK = 2048  # queries per block in the distance computation: bounds the (block x classes) memory


def rejected(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Which queries are rejected as out-of-scope: ``score > threshold``."""
    return np.asarray(scores, dtype=np.float64) > threshold


def max_prob_score(probs: np.ndarray) -> np.ndarray:
    """``1 - max probability`` per row (Hendrycks & Gimpel's baseline, turned so higher = more OOS).

    Args:
        probs: ``(n, classes)`` probabilities; calibrated ones make the threshold mean what it says.

    Returns:
        ``(n,)`` scores in [0, 1].
    """
    return 1.0 - np.asarray(probs, dtype=np.float64).max(axis=-1)


def energy_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Free energy ``-T * logsumexp(logits / T)`` per row (Liu et al., 2020).

    Unlike the max probability it keeps the logits' scale: a query the model has no strong evidence for
    (all logits low) gets a high energy even when one logit happens to stand out from the others.

    Args:
        logits: ``(n, classes)`` raw logits.
        temperature: ``T``; 1 is the usual choice.

    Returns:
        ``(n,)`` energies, higher = more out-of-scope.
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    return -temperature * logsumexp(z, axis=-1)


class MahalanobisDetector:
    """Class-conditional Gaussians with one shared (tied) covariance on embeddings (Lee et al., 2018).

    The score of a query is its Mahalanobis distance to the nearest class mean. The covariance is the
    Ledoit-Wolf shrinkage estimate of the within-class scatter: embeddings have hundreds of dimensions and
    some classes few examples, so the plain estimate is ill-conditioned and its inverse noisy.

    Attributes:
        means: ``(classes, dim)`` class means.
        precision: ``(dim, dim)`` inverse of the shared covariance.
        classes: ``(classes,)`` class labels, in the order of ``means``.
    """

    def __init__(self, means: np.ndarray, precision: np.ndarray, classes: np.ndarray) -> None:
        self.means = np.asarray(means, dtype=np.float64)
        self.precision = np.asarray(precision, dtype=np.float64)
        self.classes = np.asarray(classes)
        # P m and m'P m of every class, computed once: per query only x'Px and x'Pm are left (with 150
        # classes of 1,536 features, recomputing P m took ~55 ms of a 60 ms one-question call)
        self._p = torch.from_numpy(self.precision)
        self._mp = self._p @ torch.from_numpy(self.means).T  # (dim, classes); P is symmetric
        self._mpm = (torch.from_numpy(self.means) * self._mp.T).sum(1)

    @classmethod
    def fit(cls, embeddings: np.ndarray, labels: np.ndarray | list[Any]) -> MahalanobisDetector:
        """Fit class means and the shrunk shared covariance on training embeddings.

        Args:
            embeddings: ``(n, dim)`` training embeddings.
            labels: ``(n,)`` their labels (any hashable values).

        Returns:
            The fitted detector.
        """
        x = np.asarray(embeddings, dtype=np.float64)
        classes, index = np.unique(np.asarray(labels), return_inverse=True)
        counts = np.bincount(index, minlength=len(classes)).astype(np.float64)
        means = np.zeros((len(classes), x.shape[1]))
        np.add.at(means, index, x)
        means /= counts[:, None]
        # the covariance of what is left once each class's mean is removed: the spread within classes
        centered = x - means[index]
        lw = LedoitWolf(assume_centered=True).fit(centered)
        return cls(means, lw.precision_, classes)

    def distances(self, embeddings: np.ndarray) -> np.ndarray:
        """``(n, classes)`` Mahalanobis distances of each query to each class mean.

        The products run in torch (float64), not numpy: in a server the detector runs between two
        forward passes of the intent model, and numpy's OpenBLAS threads, still spinning after a
        product, took the cores from torch's own threads (one-question support ``ask`` 58 -> 19 ms).
        """
        x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float64))
        out = torch.empty((len(x), len(self.means)), dtype=torch.float64)
        # (x - m)' P (x - m) = x'Px - 2 x'Pm + m'Pm: one matrix product per block instead of n x classes
        for start in range(0, len(x), CHUNK):
            block = x[start : start + CHUNK]
            xpx = ((block @ self._p) * block).sum(1)
            d2 = xpx[:, None] - 2.0 * block @ self._mp + self._mpm[None, :]
            out[start : start + CHUNK] = d2.clamp_min(0.0).sqrt()  # rounding can dip just below 0
        return out.numpy()

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """``(n,)`` distance to the nearest class mean, higher = more out-of-scope."""
        return self.distances(embeddings).min(axis=1)

    def nearest(self, embeddings: np.ndarray) -> np.ndarray:
        """``(n,)`` label of the nearest class mean (a classifier of its own, for inspection)."""
        return self.classes[self.distances(embeddings).argmin(axis=1)]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The detector as plain arrays (``means``, ``precision``, ``classes``)."""
        return {"means": self.means, "precision": self.precision, "classes": self.classes}

    def save(self, path: str | Path) -> Path:
        """Write the arrays to an ``.npz`` file (no pickles); its path."""
        path = Path(path)
        with path.open("wb") as f:  # a file object: np.savez would otherwise append ".npz" to the name
            np.savez(f, **self.to_arrays())
        return path

    @classmethod
    def load(cls, path: str | Path) -> MahalanobisDetector:
        """Read a detector written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as arrays:
            return cls(arrays["means"], arrays["precision"], arrays["classes"])


def threshold_for_in_scope_accuracy(scores_dev_in: np.ndarray, correct_dev_in: np.ndarray, target: float) -> float:
    """The lowest threshold (so the most rejections) whose in-scope accuracy on dev is at least ``target``.

    In-scope accuracy at threshold ``t`` is the share of in-scope queries that are right and not rejected
    (``score <= t``); it only grows with ``t``, so the answer is the score of the ``ceil(target * n)``-th
    correct query in score order.

    Args:
        scores_dev_in: ``(n,)`` scores of the in-scope dev queries.
        correct_dev_in: ``(n,)`` whether the classifier's label for each is right.
        target: Accuracy to keep, e.g. 0.90.

    Returns:
        The threshold; ``inf`` (reject nothing: the best accuracy there is) when even that stays below
        ``target`` because the classifier itself is less accurate.
    """
    scores = np.asarray(scores_dev_in, dtype=np.float64)
    correct = np.asarray(correct_dev_in, dtype=bool)
    need = math.ceil(target * len(scores) - 1e-9)  # the tolerance: 0.9 * 100 is 90.00000000000001
    if need <= 0:
        return -math.inf
    kept = np.sort(scores[correct])
    if need > len(kept):
        return math.inf
    return float(kept[need - 1])


def threshold_for_recall(scores_dev_oos: np.ndarray, target: float) -> float:
    """The highest threshold (so the fewest in-scope rejections) whose OOS recall on dev is at least ``target``.

    Args:
        scores_dev_oos: ``(m,)`` scores of the out-of-scope dev queries.
        target: Recall to reach, e.g. 0.80.

    Returns:
        The threshold: just below the ``ceil(target * m)``-th highest OOS score, so that query and all
        above it are rejected (``inf`` when ``target`` is 0).
    """
    scores = np.sort(np.asarray(scores_dev_oos, dtype=np.float64))[::-1]
    need = math.ceil(target * len(scores) - 1e-9)
    if need <= 0:
        return math.inf
    return float(np.nextafter(scores[min(need, len(scores)) - 1], -math.inf))


def rejection_metrics(rejected_in: np.ndarray, correct_in: np.ndarray, rejected_oos: np.ndarray) -> dict[str, float]:
    """CLINC150's metrics from rejection decisions (any rule: a threshold, or a trained ``oos`` class).

    Args:
        rejected_in: ``(n,)`` whether each in-scope query was rejected as out-of-scope.
        correct_in: ``(n,)`` whether the classifier's label for each in-scope query is right.
        rejected_oos: ``(m,)`` whether each out-of-scope query was rejected.

    Returns:
        ``in_scope_accuracy`` (right and not rejected, over all in-scope queries), ``oos_recall`` (rejected
        OOS over all OOS), ``oos_precision`` (OOS among the rejected; 0 when nothing was rejected) and
        ``in_scope_rejected`` (the share of in-scope queries rejected).
    """
    rej_in = np.asarray(rejected_in, dtype=bool)
    rej_oos = np.asarray(rejected_oos, dtype=bool)
    good = np.asarray(correct_in, dtype=bool) & ~rej_in
    n_rejected = int(rej_in.sum() + rej_oos.sum())
    return {
        "in_scope_accuracy": float(good.mean()) if len(good) else 0.0,
        "oos_recall": float(rej_oos.mean()) if len(rej_oos) else 0.0,
        "oos_precision": float(rej_oos.sum() / n_rejected) if n_rejected else 0.0,
        "in_scope_rejected": float(rej_in.mean()) if len(rej_in) else 0.0,
    }


def auroc(scores_in: np.ndarray, scores_oos: np.ndarray) -> float:
    """Area under the ROC curve of telling OOS (positive) from in-scope queries by the score."""
    y = np.r_[np.zeros(len(scores_in)), np.ones(len(scores_oos))]
    return float(roc_auc_score(y, np.r_[np.asarray(scores_in, float), np.asarray(scores_oos, float)]))


def oos_metrics(
    scores_in: np.ndarray, pred_correct_in: np.ndarray, scores_oos: np.ndarray, threshold: float
) -> dict[str, float]:
    """In-scope accuracy, OOS recall and precision at ``threshold``, plus the threshold-free AUROC.

    Args:
        scores_in: ``(n,)`` scores of the in-scope queries.
        pred_correct_in: ``(n,)`` whether the classifier's label for each in-scope query is right.
        scores_oos: ``(m,)`` scores of the out-of-scope queries.
        threshold: Reject queries scoring above it.

    Returns:
        :func:`rejection_metrics`' keys and ``auroc``.
    """
    out = rejection_metrics(rejected(scores_in, threshold), pred_correct_in, rejected(scores_oos, threshold))
    out["auroc"] = auroc(scores_in, scores_oos)
    return out

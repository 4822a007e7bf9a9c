"""The four drift checks of a window of logged predictions against a reference:

- ``label_shift``: PSI between the predicted-label distributions, with a chi-square p-value;
- ``confidence_drop``: how much lower the mean confidence is, with a KS p-value;
- ``embedding_shift``: an MMD² permutation test on sentence embeddings, and the cosine distance
  between the two centroids;
- ``unseen_vocabulary``: how much the rate of words never seen in training went up.

A check that cannot be computed says why (inputs logged as hashes have no text to embed; NER
predictions have no single label) rather than disappearing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import ks_2samp

from ..tasks import get_task
from .reference import Reference
from .stats import PERMUTATIONS, centroid_distance, chi2_pvalue, mmd_test, psi
from .text_features import embed, oov_rate, seeded_sample
from .thresholds import Thresholds

CHECKS = ("label_shift", "confidence_drop", "embedding_shift", "unseen_vocabulary")
MAX_EMBEDDINGS = 500  # window texts embedded for the MMD test (seeded sample)
HASHED = "the inputs were logged as sha256 hashes only (FIELDTUNE_LOG_INPUTS=hash): no text to"


@dataclass
class Check:
    """One check's verdict. ``reason`` is set when it could not be computed."""

    value: float | None
    threshold: float | None
    drifted: bool
    rule: str
    details: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    private: dict[str, Any] = field(default_factory=dict)  # report.md only: may quote user text

    @property
    def status(self) -> str:
        return "unavailable" if self.reason else ("drift" if self.drifted else "ok")

    def as_dict(self) -> dict[str, Any]:
        out = {
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "rule": self.rule,
        }
        if self.reason:
            out["reason"] = self.reason
        return {**out, **self.details}


def unavailable(threshold: float, rule: str, reason: str) -> Check:
    """The verdict of a check that could not be computed, and why."""
    return Check(None, threshold, False, rule, reason=reason)


class Embedder:
    """Embeds each distinct text once per run (the window is also the plot's last window)."""

    def __init__(self) -> None:
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, embed(missing)))
        return np.stack([self.cache[t] for t in texts])


def label_check(ref: Reference, rows: list[Any], t: Thresholds) -> Check:
    """PSI and chi-square between the reference's and the window's predicted labels."""
    rule = f"psi > {t.psi} and chi2_p < {t.label_p}"
    task = get_task(ref.task)
    if task.no_label_distribution:
        return unavailable(t.psi, rule, task.no_label_distribution)
    window: Counter = Counter()
    for row in rows:
        window.update(task.drift_labels(row.label) or [])
    if not window:
        return unavailable(t.psi, rule, "no predicted labels in the window")
    if not ref.label_counts:
        return unavailable(t.psi, rule, "the reference has no predicted labels")
    space = list(dict.fromkeys([*ref.labels, *ref.label_counts, *window]))
    r = np.array([ref.label_counts.get(x, 0) for x in space], dtype=np.float64)
    w = np.array([window.get(x, 0) for x in space], dtype=np.float64)
    value, p = psi(r, w), chi2_pvalue(r, w)
    rs, ws = r / r.sum(), w / w.sum()
    top = np.argsort(-np.abs(ws - rs))[:5]
    changes = [
        {"label": space[i], "reference": round(float(rs[i]), 4), "window": round(float(ws[i]), 4)}
        for i in top
        if ws[i] != rs[i]
    ]
    return Check(
        value,
        t.psi,
        value > t.psi and p < t.label_p,
        rule,
        {"psi": value, "chi2_p": p, "labels": len(space), "top_changes": changes},
    )


def confidence_check(ref: Reference, rows: list[Any], t: Thresholds) -> Check:
    """How far the window's mean confidence fell below the reference's (with a KS p-value)."""
    rule = f"reference mean - window mean > {t.confidence_drop}"
    window = np.array([row.confidence for row in rows if row.confidence is not None], dtype=np.float64)
    if len(window) < 2 or len(ref.confidences) < 2:
        side = "window" if len(window) < 2 else "reference"
        return unavailable(
            t.confidence_drop, rule, f"too few confidences in the {side} (NER without entities has none)"
        )
    ref_mean, win_mean = float(ref.confidences.mean()), float(window.mean())
    drop = ref_mean - win_mean
    details = {
        "reference_mean": ref_mean,
        "window_mean": win_mean,
        "ks_p": float(ks_2samp(ref.confidences, window).pvalue),
        "scored": int(len(window)),
    }
    return Check(drop, t.confidence_drop, drop > t.confidence_drop, rule, details)


def _texts_or_reason(rows: list[Any], t: Thresholds, what: str) -> tuple[list[str], str | None]:
    texts = [row.text for row in rows if row.text]
    if not texts:
        return texts, f"{HASHED} {what}"
    if len(texts) < t.min_predictions:
        return (
            texts,
            f"only {len(texts)} of {len(rows)} predictions were logged with their text (need {t.min_predictions})",
        )
    return texts, None


def embedding_check(
    ref: Reference,
    rows: list[Any],
    t: Thresholds,
    embedder: Embedder,
    *,
    max_embeddings: int = MAX_EMBEDDINGS,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
) -> Check:
    """The MMD permutation test between the reference's and a sample of the window's embeddings."""
    rule = f"mmd_p < {t.mmd_p}"
    texts, reason = _texts_or_reason(rows, t, "embed")
    if reason:
        return unavailable(t.mmd_p, rule, reason)
    if len(ref.embeddings) < 2:
        return unavailable(t.mmd_p, rule, "the reference has fewer than 2 embedded texts")
    sample = [texts[i] for i in seeded_sample(len(texts), max_embeddings, seed)]
    window = embedder(sample)
    mmd2, p = mmd_test(ref.embeddings, window, permutations, seed)
    details = {
        "p_value": p,
        "mmd2": mmd2,
        "centroid_cosine_distance": centroid_distance(ref.embeddings, window),
        "reference_n": int(len(ref.embeddings)),
        "window_n": len(sample),
        "permutations": permutations,
    }
    return Check(p, t.mmd_p, p < t.mmd_p, rule, details)


def vocabulary_check(ref: Reference, rows: list[Any], t: Thresholds) -> Check:
    """How much the window's rate of words unseen in training rose over the reference's."""
    rule = f"window rate - reference rate > {t.oov_increase}"
    texts, reason = _texts_or_reason(rows, t, "count words in")
    if reason:
        return unavailable(t.oov_increase, rule, reason)
    rate, unseen = oov_rate(texts, ref.vocab)
    increase = rate - ref.oov_rate
    details = {"window_rate": rate, "reference_rate": ref.oov_rate, "vocab_source": ref.vocab_source}
    private = {"top_unseen": unseen.most_common(15)}
    return Check(increase, t.oov_increase, increase > t.oov_increase, rule, details, private=private)


def run_checks(
    ref: Reference, rows: list[Any], t: Thresholds, embedder: Embedder, *, max_embeddings: int = MAX_EMBEDDINGS
) -> dict[str, Check]:
    """The four checks of ``rows`` (logged predictions) against ``ref``."""
    return {
        "label_shift": label_check(ref, rows, t),
        "confidence_drop": confidence_check(ref, rows, t),
        "embedding_shift": embedding_check(ref, rows, t, embedder, max_embeddings=max_embeddings),
        "unseen_vocabulary": vocabulary_check(ref, rows, t),
    }

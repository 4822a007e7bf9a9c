"""Which calibration an LLM zero-shot / in-context classifier uses, chosen on dev.

Candidates, simplest first (a dev tie goes to the earlier one):

none          the raw label log-scores
batch         less the log of the mean label distribution over real inputs: up to ``BATCH_SAMPLE``
              training texts (batch calibration, Zhou et al. 2024) — the model's bias as it shows on
              this data
content_free  less the log of the mean label distribution over "N/A", "" and "[MASK]" (contextual
              calibration, Zhao et al. 2021)

With ``auto`` each is also tried with the training labels' log-frequencies added back (``+label_prior``).
Every candidate is a shift of the same raw log-scores, so dev is scored once. With ``auto`` the best on
the dev selection metric is kept — so never below uncalibrated on dev. Measured with smollm2 (135M): on
Financial PhraseBank content-free calibration puts "neutral" at e^-4 and the model answers "positive"
for most statements of fact (0.287 test accuracy); uncalibrated it never says "neutral" (0.219); the batch
prior makes the answers balanced (0.404) and the label prior on top matches PhraseBank's 61% neutral (0.607).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .classify import LLMClassifier, log_mean_probability

CALIBRATIONS = ("none", "batch", "content_free")
BATCH_SAMPLE = 200  # training texts the batch prior is measured on (BANKING77 smollm2: ~1.2 s each on one thread)


def candidates(requested: str, in_context: bool) -> tuple[str, ...]:
    """The calibrations ``prompt.calibrate`` lets dev choose from (batch: not with in-context shots)."""
    if requested != "auto":
        return (requested,)
    return tuple(c for c in CALIBRATIONS if not (in_context and c == "batch"))


def batch_sample(texts: list[str], seed: int, limit: int = BATCH_SAMPLE) -> list[str]:
    """At most ``limit`` of ``texts``, a seeded random sample in their original order."""
    if len(texts) <= limit:
        return list(texts)
    keep = set(random.Random(seed).sample(range(len(texts)), limit))
    return [t for i, t in enumerate(texts) if i in keep]


def choose_calibration(
    clf: LLMClassifier,
    requested: str,
    train_texts: list[str],
    dev_texts: list[str],
    dev_metric: Callable[[np.ndarray], float],
    seed: int,
    label_counts: np.ndarray | None = None,
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Pick the calibration and set it (``calibrate``, ``prior``, ``label_prior``, ``calibration``) in
    ``clf.state``.

    Args:
        clf: The classifier; its state is updated in place (the artifact saves it).
        requested: ``prompt.calibrate``: auto, or one of :data:`CALIBRATIONS`.
        train_texts: Unlabelled inputs the batch prior is measured on (a sample of them).
        dev_texts: The dev inputs (may be empty: then auto takes batch when there are training texts).
        dev_metric: The dev selection metric of a ``(dev, labels)`` matrix of log-scores.
        seed: Seeds the batch sample.
        label_counts: The training labels' counts; with auto, each candidate is also tried with their
            log-frequencies added back (a label-shift correction: calibration alone makes every label
            about as frequent, wrong for skewed data such as PhraseBank's 61% neutral).

    Returns:
        The chosen calibration's dev log-scores (None without dev), to reuse instead of rescoring
        dev, and the numbers for metrics.json (seconds spent on priors).
    """
    in_context = clf.selector is not None
    modes = candidates(requested, in_context)
    if not train_texts:
        modes = tuple(m for m in modes if m != "batch") or ("none",)  # nothing to measure a batch prior on
    if not dev_texts and len(modes) > 1:
        modes = ("batch",) if "batch" in modes else ("none",)  # no dev to choose on: real inputs' prior
    tick = time.perf_counter()
    priors: dict[str, np.ndarray | None] = {"none": None}
    sample: list[str] = []
    if "batch" in modes:
        sample = batch_sample(train_texts, seed)
        priors["batch"] = log_mean_probability(clf.log_scores_raw(sample, [[] for _ in sample]))
    if "content_free" in modes:
        priors["content_free"] = clf.log_prior()
    prior_s = time.perf_counter() - tick
    targets: list[np.ndarray | None] = [None]
    if requested == "auto" and dev_texts and label_counts is not None:
        targets.append(np.log((label_counts + 1) / (label_counts + 1).sum()))
    dev, dev_scores = {}, {}
    if dev_texts:
        shots = clf.select_shots(dev_texts) if in_context else [[] for _ in dev_texts]
        raw = clf.log_scores_raw(dev_texts, shots)  # one forward pass; every candidate is a shift of it
        for t, target in enumerate(targets):  # the order is the tie-break: simplest first
            for m in modes:
                dev_scores[(m, t)] = clf.calibrated(raw, shots, m, priors[m], target)
                dev[(m, t)] = float(dev_metric(dev_scores[(m, t)]))
    chosen = max(dev, key=dev.get) if dev else (modes[0], 0)  # max keeps the first of equals
    mode, target = chosen[0], targets[chosen[1]]
    clf.state |= {
        "calibrate": mode,
        "prior": None if priors[mode] is None else priors[mode].tolist(),
        "label_prior": None if target is None else target.tolist(),
        "calibration": {
            "requested": requested,
            "dev_by_calibration": {_name(m, t): round(v, 6) for (m, t), v in dev.items()},
            "batch_texts": len(sample),
        },
    }
    clf.prior, clf.target = priors[mode], target
    return dev_scores.get(chosen), {"calibration_prior_s": round(prior_s, 2)}


def _name(mode: str, target: int) -> str:
    return f"{mode}+label_prior" if target else mode

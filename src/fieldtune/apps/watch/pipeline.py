"""Ingest: validate → store (idempotent on id) → score in claimed batches → collapse copies → detect.

Storing and scoring are two steps on purpose. Items are committed first, as ``new``; scoring then
claims batches in their own transactions (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so a process
killed mid-way loses nothing (its claimed batch rolls back to ``new``), re-sending a file adds
nothing, and several workers on one database share the pending items without double-counting.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...store.watch_store import WatchStore
from .alerts import run_detection
from .config import WatchConfig
from .dedup import find_duplicates
from .items import Item, Rejected

INSERT_CHUNK = 1000  # items per insert transaction: bounded memory on a 50,000-line file


@dataclass
class IngestReport:
    """What one ingest did: counts a person can check against the file they sent."""

    stored: int = 0  # new ids stored
    already_seen: int = 0  # ids stored before (re-sent file, or repeated within it)
    rejected: list[Rejected] = field(default_factory=list)
    scored: int = 0  # items scored by this process (may include other senders' pending items)
    duplicates: int = 0  # of those, near-duplicate copies of an earlier story
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON shape for the CLI (``--json``) and ``POST /v1/watch/items``."""
        return {
            "stored": self.stored,
            "already_seen": self.already_seen,
            "rejected": [{"where": r.where, "reason": r.reason} for r in self.rejected],
            "scored": self.scored,
            "duplicates": self.duplicates,
            "alerts": self.alerts,
        }


def store_items(store: WatchStore, parsed: Iterable[Item | Rejected], report: IngestReport) -> None:
    """Insert valid items in chunks (insert-if-absent); rejections are kept with their reasons."""
    chunk: list[Item] = []
    for entry in parsed:
        if isinstance(entry, Rejected):
            report.rejected.append(entry)
            continue
        chunk.append(entry)
        if len(chunk) >= INSERT_CHUNK:
            _insert(store, chunk, report)
            chunk = []
    if chunk:
        _insert(store, chunk, report)


def _insert(store: WatchStore, chunk: list[Item], report: IngestReport) -> None:
    new = store.add_items(chunk)
    report.stored += new
    report.already_seen += len(chunk) - new


def score_pending(
    cfg: WatchConfig, store: WatchStore, scorer: Any, on_batch: Callable[[int], None] | None = None
) -> tuple[int, int]:
    """Claim, score and save pending items until none are left; returns (scored, duplicates)."""
    scored = duplicates = 0
    while True:
        with store.claim(cfg.batch_size) as claim:
            items = list(claim)
            if not items:
                return scored, duplicates
            rows = scorer.score(items)
            if sorted(r["id"] for r in rows) != sorted(i.id for i in items):  # an unsaved item would be claimed forever
                raise RuntimeError(f"the scorer returned {len(rows)} rows for {len(items)} items")
            copies = _copies(cfg, store, items, rows)
            for row in rows:
                row["duplicate_of"] = copies.get(row["id"])
            claim.save_scores(rows)
        scored += len(items)
        duplicates += len(copies)
        if on_batch is not None:
            on_batch(len(items))


def _copies(cfg: WatchConfig, store: WatchStore, items: list[Item], rows: list[dict]) -> dict[str, str]:
    times = [item.time for item in items]
    titles = {item.id: item.title for item in items}
    for row in rows:
        row.setdefault("title", titles[row["id"]])  # figures in the title take part in the copy check
    recent = store.recent_events(min(times) - cfg.dedup_window, max(times))
    return find_duplicates(rows, recent, cfg.dedup_threshold, times=times, window=cfg.dedup_window)


def ingest(
    cfg: WatchConfig,
    store: WatchStore,
    scorer: Any,
    parsed: Iterable[Item | Rejected],
    detect: bool = True,
    on_batch: Callable[[int], None] | None = None,
    max_wait: float = 1.0,
) -> IngestReport:
    """Store, score and (by default) run the alert rules, chunk by chunk as items arrive.

    A chunk is up to :data:`INSERT_CHUNK` items, or what arrived within ``max_wait`` seconds of its
    first item: a slow stream (``tail -f news.jsonl | fieldtune watch ingest cfg -``) is scored and
    checked for alerts as it flows, not when it ends. See the module docstring for the guarantees.
    """
    report = IngestReport()
    for chunk in arrivals(parsed, INSERT_CHUNK, max_wait):
        store_items(store, chunk, report)
        scored, copies = score_pending(cfg, store, scorer, on_batch)
        report.scored += scored
        report.duplicates += copies
        if detect and scored:
            report.alerts += run_detection(store, cfg)
    return report


_END = object()


def arrivals(entries: Iterable[Any], size: int, max_wait: float) -> Iterator[list[Any]]:
    """Group ``entries`` into lists of up to ``size``, closing a list ``max_wait`` seconds after its
    first entry arrived. A reader thread pulls from ``entries`` (a blocking stdin among them); an
    error raised while reading is raised here, in the caller's thread."""
    box: queue.Queue = queue.Queue(maxsize=4 * size)

    def read() -> None:
        try:
            for entry in entries:
                box.put(entry)
        except BaseException as e:  # handed over, raised by the consumer
            box.put(e)
        box.put(_END)

    threading.Thread(target=read, daemon=True, name="watch-reader").start()
    held: Any = None  # an end or an error met while filling a chunk: handled after that chunk
    while True:
        first, held = (box.get() if held is None else held), None
        if first is _END:
            return
        if isinstance(first, BaseException):
            raise first
        chunk, deadline = [first], time.monotonic() + max_wait
        while len(chunk) < size:
            try:
                entry = box.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if entry is _END or isinstance(entry, BaseException):
                held = entry
                break
            chunk.append(entry)
        yield chunk


def follow_folder(
    cfg: WatchConfig,
    store: WatchStore,
    scorer: Any,
    folder: Path,
    read: Callable[[Path], Iterable[Item | Rejected]],
    on_report: Callable[[Path, IngestReport], None],
    interval: float = 2.0,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Ingest every ``*.jsonl`` / ``*.csv`` in ``folder`` now and whenever one appears or changes.

    A file is read again when its size or modification time changes; ids already stored are skipped
    by the store, so a file being appended to is safe to re-read.
    """
    seen: dict[Path, tuple[int, int]] = {}
    while not stop():
        for path in sorted([*folder.glob("*.jsonl"), *folder.glob("*.csv")]):
            stat = path.stat()
            if seen.get(path) == (stat.st_size, stat.st_mtime_ns):
                continue
            seen[path] = (stat.st_size, stat.st_mtime_ns)
            on_report(path, ingest(cfg, store, scorer, read(path)))
        time.sleep(interval)

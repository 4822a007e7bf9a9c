"""Replay a file of items as if it arrived live, bucket by bucket, ``--speed 60x`` faster than real time.

Items are sorted by time and fed one bucket at a time; the alert rules run after each bucket, so
alerts appear in the order, and at the moment (scaled), they would have in production. ``speed=None``
replays as fast as the machine scores (demos, tests, benchmarks).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from itertools import groupby
from typing import Any

from ...store.watch_store import WatchStore
from .alerts import run_detection
from .config import WatchConfig
from .items import Item, Rejected
from .pipeline import IngestReport, score_pending, store_items


def parse_speed(value: str) -> float | None:
    """``"60x"`` / ``"60"`` → 60.0; ``"max"`` → None (no waiting)."""
    text = value.strip().lower()
    if text in ("max", "inf", "0"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)x?", text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"--speed {value!r}: use e.g. 60x (60 times real time) or max")
    return float(match.group(1))


def replay(
    cfg: WatchConfig,
    store: WatchStore,
    scorer: Any,
    parsed: Iterable[Item | Rejected],
    speed: float | None = None,
    on_alert: Callable[[dict[str, Any]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> IngestReport:
    """Feed ``parsed`` bucket by bucket (sleeping ``bucket / speed`` between buckets), detecting after each."""
    report = IngestReport()
    items: list[Item] = []
    for entry in parsed:
        (report.rejected.append if isinstance(entry, Rejected) else items.append)(entry)
    items.sort(key=lambda item: (item.time, item.id))
    step = cfg.bucket.total_seconds()
    for _, group in groupby(items, key=lambda item: _bucket_index(item.time, step)):
        started = time.monotonic()
        store_items(store, group, report)
        scored, copies = score_pending(cfg, store, scorer)
        report.scored += scored
        report.duplicates += copies
        for alert in run_detection(store, cfg):
            report.alerts.append(alert)
            if on_alert is not None:
                on_alert(alert)
        if speed is not None:
            sleep(max(0.0, step / speed - (time.monotonic() - started)))
    return report


def _bucket_index(t: datetime, step: float) -> int:
    return int(t.astimezone(timezone.utc).timestamp() // step)

"""Which logged predictions drift judges: time parsing, the window (the last N, or a time range),
and the consecutive earlier windows of the same size that the plot shows over time."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import UserError
from ..utils.times import utc
from .checks import Check, Embedder, run_checks
from .reference import Reference
from .thresholds import Thresholds

WINDOW = 500  # the default window: the last 500 predictions
HISTORY_EMBEDDINGS = 100  # per earlier window of the plot: keeps 20 windows to seconds of CPU


def parse_time(value: str | None, now: datetime | None = None) -> datetime | None:
    """An ISO date/time (naive means UTC) or a duration back from now: ``30m``, ``24h``, ``7d``."""
    if not value:
        return None
    now = now or datetime.now(timezone.utc)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*", value)
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
        return now - timedelta(**{unit: float(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            f"not a time: {value!r}", hint="use ISO 8601 (2024-05-01T12:00) or a duration (24h, 7d)"
        ) from None
    return utc(parsed)


def iso(dt: datetime) -> str:
    """``2024-05-01T12:00:00Z``."""
    return utc(dt).isoformat(timespec="seconds").replace("+00:00", "Z")


def select_window(
    store: Any,
    version: str,
    *,
    window: int | None,
    since: datetime | None,
    until: datetime | None,
    minimum: int,
) -> tuple[list[Any], dict[str, Any]]:
    """The logged predictions to judge: the last ``window``, or those in [since, until) (the last
    ``window`` of them when both are given); and what was selected, for the report.

    Raises:
        UserError: The window is smaller than ``minimum``, or fewer predictions were logged.
    """
    if window is not None and window < minimum:
        raise UserError(
            f"a window of {window} predictions is too small to judge drift",
            hint=f"use --window {minimum} or more (threshold min_predictions={minimum})",
        )
    ranged = since is not None or until is not None
    last = window if window is not None else (None if ranged else WINDOW)
    rows = store.predictions(
        model_version=version,
        since=since.astimezone(timezone.utc) if since else None,
        until=until.astimezone(timezone.utc) if until else None,
        last=last,
    )
    if len(rows) < minimum:
        where = (
            f" between {iso(since) if since else 'the start'} and {iso(until) if until else 'now'}" if ranged else ""
        )
        raise UserError(
            f"only {len(rows)} logged predictions of model {version}{where}; drift needs at least {minimum}",
            hint="wait for more traffic, widen the window (--since 7d), or check --version / --db",
        )
    selection = f"last {last}" if last else "all"
    if since or until:
        selection += f" in [{iso(since) if since else '-'}, {iso(until) if until else 'now'})"
    info = {
        "selection": selection,
        "predictions": len(rows),
        "texts": sum(1 for r in rows if r.text),
        "from": iso(rows[0].created_at),
        "to": iso(rows[-1].created_at),
    }
    return rows, info


def history_points(
    store: Any,
    version: str,
    rows: list[Any],
    ref: Reference,
    t: Thresholds,
    embedder: Embedder,
    chunks: int,
    current: dict[str, Check],
) -> list[dict[str, Any]]:
    """The statistics over up to ``chunks`` consecutive windows of ``len(rows)`` predictions,
    oldest first, the last being the current window (whose ``current`` checks are reused).
    Earlier windows embed a sample of ``HISTORY_EMBEDDINGS`` texts each."""
    size = len(rows)
    windows: list[list[Any]] = []
    if chunks > 1:
        older = store.predictions(model_version=version, until=rows[0].created_at, last=(chunks - 1) * size)
        for end in range(len(older), 0, -size):
            part = older[max(0, end - size) : end]
            if len(part) >= t.min_predictions:
                windows.insert(0, part)
    out = []
    for part in windows:
        out.append(_point(part, run_checks(ref, part, t, embedder, max_embeddings=HISTORY_EMBEDDINGS)))
    out.append(_point(rows, current))
    return out


def _point(rows: list[Any], checks: dict[str, Check]) -> dict[str, Any]:
    point: dict[str, Any] = {
        "from": iso(rows[0].created_at),
        "to": iso(rows[-1].created_at),
        "predictions": len(rows),
    }
    for name, check in checks.items():
        point[name] = {"value": check.value, "drifted": check.drifted} if check.reason is None else None
    return point

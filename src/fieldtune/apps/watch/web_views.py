"""What the dashboard and the JSON routes show, built from a ``WatchStore`` (no HTTP here).

Every chart of one dashboard shares the same buckets (epoch-aligned, see :mod:`.series`) and the
same time range, so a surge in one key lines up with the others at a glance. A range that would
give more than :data:`MAX_POINTS` buckets is drawn in a coarser bucket from :data:`BUCKET_LADDER`
(the alert rules still run on the configured one; the page says which bucket it shows).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from ...utils.times import utc
from .alerts import KINDS, json_ready
from .series import Bucket, bucket_start, bucketize

MAX_POINTS = 1500  # buckets per chart: beyond this bars are thinner than a pixel on a laptop screen
MAX_SERIES_BUCKETS = 20_000  # per JSON series request: bounds the response and the work behind it
BUCKET_LADDER = [
    timedelta(minutes=m) for m in (1, 5, 15, 30, 60, 120, 360, 720, 1440, 10080)
]  # the display buckets a long range falls back to
CONTEXT_AFTER = 6  # buckets shown after an alert's bucket on its page (did the surge last?)
_OFFSET = re.compile(r"[+-]\d\d:?\d\d$")


def parse_when(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 date or date-time as tz-aware UTC; naive values are taken as UTC.

    Args:
        value: ``2024-05-01``, ``2024-05-01T10:00``, ``2024-05-01T10:00:00Z``, ``...+08:00`` or
            empty/None (no bound).
        name: The parameter's name, for the error message.

    Returns:
        The time in UTC, or None for an empty value.

    Raises:
        ValueError: The value is not ISO 8601 (the message names the parameter).
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not an ISO 8601 date or time (e.g. 2024-05-01T09:30Z)") from None
    return utc(parsed)


def display_bucket(configured: timedelta, start: datetime, end: datetime) -> timedelta:
    """The configured bucket, or the finest coarser one that keeps a chart under MAX_POINTS."""
    span = max(end - start, timedelta(0))
    if span / configured <= MAX_POINTS:
        return configured
    for step in BUCKET_LADDER:
        if step >= configured and span / step <= MAX_POINTS:
            return step
    return BUCKET_LADDER[-1]


def bucket_label(bucket: timedelta) -> str:
    """``5min``, ``1h``, ``1d`` (the config's own notation) for a bucket length."""
    seconds = int(bucket.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def safe_url(url: str | None) -> str | None:
    """The item's link if it is http(s); anything else (``javascript:``...) is not linked."""
    if not url:
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url.strip() if scheme in ("http", "https") else None


def finite(value: Any) -> float | None:
    """A float for JSON and the charts: None for missing or NaN (a gap, not a zero)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def data_range(
    rows: Mapping[tuple[str, str], list[Any]], start: datetime | None, end: datetime | None, bucket: timedelta
) -> tuple[datetime, datetime] | None:
    """(start, end) of the dashboard: the bounds asked for, else the span of the rows (end exclusive)."""
    times = [utc(r[0]) for key_rows in rows.values() for r in key_rows]
    if start is None and not times:
        return None
    lo = start if start is not None else min(times)
    hi = end if end is not None else (bucket_start(max(times), bucket) + bucket if times else lo + bucket)
    return (lo, hi) if hi > lo else None


def chart(kind: str, key: str, buckets: list[Bucket], alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """One key's chart data: uPlot columns (x in Unix seconds) and the numbers of its card."""
    volume = sum(b.volume for b in buckets)
    negatives = sum(b.negatives for b in buckets)
    latest = max((utc(a["bucket_start"]) for a in alerts), default=None)
    return {
        "kind": kind,
        "key": key,
        "volume": volume,
        "negatives": negatives,
        "neg_share": negatives / volume if volume else None,
        "alerts": len(alerts),
        "last_alert": latest.isoformat() if latest else None,
        "last_alert_ts": latest.timestamp() if latest else None,
        "x": [int(b.start.timestamp()) for b in buckets],
        "volumes": [b.volume for b in buckets],
        "neg_share_series": [b.neg_share if b.volume else None for b in buckets],
        "net_series": [round(b.net, 4) if b.volume else None for b in buckets],
        "alert_x": sorted({int(utc(a["bucket_start"]).timestamp()) for a in alerts}),
    }


def _sort_key(c: dict[str, Any]) -> tuple:
    # keys that alerted most recently first, then the busiest: where an analyst should look first
    last = c["last_alert_ts"]
    return (last is None, -(last or 0), -c["volume"], c["kind"], c["key"])


def dashboard_view(
    store: Any,
    bucket: timedelta,
    start: datetime | None,
    end: datetime | None,
    watched: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Charts (one per topic and entity with mentions) and alerts for the range, newest alert first.

    Args:
        store: A ``WatchStore``.
        bucket: The configured bucket (a long range is drawn coarser, see :func:`display_bucket`).
        start: First instant (UTC) or None for the start of the data.
        end: End (exclusive, UTC) or None for the end of the data.
        watched: ``{"topic": [...], "entity": [...]}`` of the config: those without news in the
            range are named under the charts (silence about a watched name is news too).

    Returns:
        ``{"start", "end", "bucket", "bucket_label", "charts", "alerts", "quiet"}``; ``start`` is
        None when there is nothing in the range.
    """
    keys, watched = store.keys(), watched or {}
    pairs = [(kind, key) for kind in KINDS for key in dict.fromkeys([*keys.get(kind, []), *watched.get(kind, [])])]
    rows = {pair: store.mentions(pair[0], pair[1], start, end) for pair in pairs}
    span = data_range(rows, start, end, bucket)
    if span is None:
        empty: dict[str, Any] = {"start": start, "end": end, "charts": [], "alerts": [], "quiet": []}
        return {**empty, "bucket": bucket, "bucket_label": bucket_label(bucket)}
    lo, hi = span
    shown = display_bucket(bucket, lo, hi)
    alerts = store.alerts(lo, hi)
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for a in alerts:
        by_key.setdefault((a["kind"], a["key"]), []).append(a)
    charts = [chart(k, key, bucketize(rows[(k, key)], shown, lo, hi), by_key.get((k, key), [])) for k, key in pairs]
    busy = sorted((c for c in charts if c["volume"]), key=_sort_key)
    return {
        "start": lo,
        "end": hi,
        "bucket": shown,
        "bucket_label": bucket_label(shown),
        "charts": busy,
        "alerts": [alert_row(a) for a in sorted(alerts, key=_newest_first)],
        "quiet": [f"{c['kind']} {c['key']}" for c in charts if not c["volume"]],
    }


def _newest_first(a: dict[str, Any]) -> tuple:
    return (-utc(a["bucket_start"]).timestamp(), -int(a["id"]))


def alert_row(a: dict[str, Any]) -> dict[str, Any]:
    """An alert for the list and the page: the stored row with times as UTC datetimes."""
    row = dict(a)
    row["bucket_start"] = utc(a["bucket_start"])
    row["created_at"] = utc(a["created_at"]) if a.get("created_at") else None
    row["sent_at"] = utc(a["sent_at"]) if a.get("sent_at") else None
    row["items"] = list(a.get("items") or [])
    row["details"] = dict(a.get("details") or {})
    return row


def headline(item: dict[str, Any]) -> dict[str, Any]:
    """An item as the alert page and the JSON show it (no embedding; a link only when http(s))."""
    out = {k: v for k, v in item.items() if k not in ("embedding", "status")}
    out["time"] = utc(item["time"]) if item.get("time") else None
    out["url"] = safe_url(item.get("url"))
    out["probs"] = {label: finite(item.get(f"p_{label}")) for label in ("negative", "neutral", "positive")}
    for name in ("topics", "entities", "orgs"):
        out[name] = list(item.get(name) or [])
    out["copies"] = int(item.get("copies") or 0)
    return out


def alert_view(store: Any, bucket: timedelta, window: int, alert_id: int) -> dict[str, Any] | None:
    """An alert with its headlines and its key's series around it, or None for an unknown id.

    The chart spans the ``window`` buckets the rules compared against, the alert's bucket and
    :data:`CONTEXT_AFTER` buckets after it.
    """
    row = store.alert(alert_id)
    if row is None:
        return None
    alert = alert_row(row)
    heads = [headline(i) for i in store.items(alert["items"])] if alert["items"] else []  # in the alert's order
    lo = alert["bucket_start"] - window * bucket
    hi = alert["bucket_start"] + (CONTEXT_AFTER + 1) * bucket
    rows = store.mentions(alert["kind"], alert["key"], lo, hi)
    if rows:  # no empty buckets after the latest news: they would read as "quiet", not "not yet"
        latest_end = bucket_start(rows[-1][0], bucket) + bucket  # rows come oldest first
        hi = max(min(hi, latest_end), alert["bucket_start"] + bucket)
    same_key = [a for a in store.alerts(lo, hi) if a["kind"] == alert["kind"] and a["key"] == alert["key"]]
    context = chart(alert["kind"], alert["key"], bucketize(rows, bucket, lo, hi), same_key)
    baseline = store.baselines().get((alert["kind"], alert["key"]))
    return {"alert": alert, "headlines": heads, "chart": context, "baseline": utc(baseline) if baseline else None}


def alert_json(alert: dict[str, Any], heads: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An alert in the issue's JSON shape (plus id, created_at, sent_at, details, headlines if given)."""
    out = json_ready(alert_row(alert))
    if heads is not None:
        out["headlines"] = [json_ready(h) for h in heads]
    return out


def series_json(buckets: list[Bucket], with_items: bool) -> list[dict[str, Any]]:
    """Buckets as JSON (NaN-free), item ids only when asked."""
    return [b.as_json(with_items) for b in buckets]


def utc_text(value: datetime | str | None, minutes: bool = True) -> str:
    """``2024-05-03 14:00`` in UTC (the dashboard's one time zone), or an empty string.

    ISO strings (as alert details keep times) are accepted; one that does not parse is shown as is.
    """
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = parse_when(value, "time")
        except ValueError:
            return value
    return utc(value).strftime("%Y-%m-%d %H:%M" if minutes else "%Y-%m-%d")


def input_value(value: datetime | None) -> str:
    """A ``datetime-local`` input's value (UTC wall time)."""
    return utc(value).strftime("%Y-%m-%dT%H:%M") if value else ""

"""Time-bucketed series of one topic or entity: volume, negative share and net sentiment per bucket.

Buckets are aligned to the Unix epoch in UTC (``start = epoch + n * bucket``), so the series of
every key share the same boundaries and a 1-day bucket runs from midnight to midnight UTC whatever
time zone the items were stamped in. Empty buckets are part of the series (volume 0): a quiet hour
is information, and the alert rules count their rolling window in buckets, not in items.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ...utils.times import utc

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
NEGATIVE = "negative"

# One row of ``WatchStore.mentions``: (time, p_negative, p_positive, sentiment label, item id).
MentionRow = tuple[datetime, float, float, str, str]


@dataclass
class Bucket:
    """One time bucket of a key's series.

    Attributes:
        start: Start of the bucket (UTC, tz-aware); the bucket is ``[start, start + bucket)``.
        volume: Events in the bucket (near-duplicate copies are not mentions, so never counted).
        negatives: Events whose sentiment label is ``negative``.
        neg_share: ``negatives / volume`` (0.0 for an empty bucket).
        net: Mean of P(positive) - P(negative) over the bucket's events (0.0 for an empty bucket).
        items: Ids of the bucket's events, in time order.
        negative_items: Ids of its negative events (what an alert on this bucket points at).
    """

    start: datetime
    volume: int = 0
    negatives: int = 0
    neg_share: float = 0.0
    net: float = 0.0
    items: list[str] = field(default_factory=list)
    negative_items: list[str] = field(default_factory=list)

    def as_json(self, with_items: bool = False) -> dict[str, Any]:
        """A JSON-ready dict (``start`` as ISO 8601); item ids only when asked (they can be many)."""
        out: dict[str, Any] = {
            "start": self.start.isoformat(),
            "volume": self.volume,
            "negatives": self.negatives,
            "neg_share": self.neg_share,
            "net": self.net,
        }
        if with_items:
            out["items"] = list(self.items)
            out["negative_items"] = list(self.negative_items)
        return out


def bucket_start(t: datetime, bucket: timedelta) -> datetime:
    """Start of the epoch-aligned bucket that holds ``t``.

    Args:
        t: Any datetime (naive = UTC).
        bucket: Bucket length (positive).

    Returns:
        The UTC start of the bucket ``[start, start + bucket)`` containing ``t``.
    """
    return EPOCH + ((utc(t) - EPOCH) // bucket) * bucket


def bucketize(
    rows: Iterable[Sequence[Any]],
    bucket: timedelta,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Bucket]:
    """Group mention rows into consecutive epoch-aligned buckets, empty ones included.

    Args:
        rows: ``(time, p_negative, p_positive, sentiment, item_id)`` rows as ``WatchStore.mentions``
            returns them, in any order.
        bucket: Bucket length, e.g. ``timedelta(hours=1)``.
        start: First instant of interest (default: the earliest row); the series starts at the
            bucket holding it.
        end: End of the range, exclusive (default: just after the latest row); rows at or after it
            are left out.

    Returns:
        One :class:`Bucket` per bucket from ``start``'s to the last one starting before ``end``
        (or holding the latest row); an empty list when there is nothing to show.

    Raises:
        ValueError: A bucket that is not a positive duration.
    """
    if bucket <= timedelta(0):
        raise ValueError(f"bucket must be a positive duration, not {bucket}")
    lo = utc(start) if start is not None else None
    hi = utc(end) if end is not None else None
    kept = sorted(
        ((utc(r[0]), r) for r in rows if (lo is None or utc(r[0]) >= lo) and (hi is None or utc(r[0]) < hi)),
        key=lambda pair: (pair[0], str(pair[1][4])),
    )
    if not kept and (lo is None or hi is None):
        return []  # no data and an open range: there is no span to show
    first = bucket_start(lo if lo is not None else kept[0][0], bucket)
    last = bucket_start(hi - timedelta(microseconds=1), bucket) if hi is not None else bucket_start(kept[-1][0], bucket)
    if last < first:
        return []
    series = [Bucket(start=first + i * bucket) for i in range((last - first) // bucket + 1)]
    sums = [0.0] * len(series)
    for t, (_, p_neg, p_pos, label, item_id) in kept:
        i = (t - first) // bucket
        b = series[i]
        b.volume += 1
        b.items.append(str(item_id))
        sums[i] += float(p_pos or 0.0) - float(p_neg or 0.0)
        if label == NEGATIVE:
            b.negatives += 1
            b.negative_items.append(str(item_id))
    for b, total in zip(series, sums, strict=True):
        if b.volume:
            b.neg_share = b.negatives / b.volume
            b.net = total / b.volume
    return series

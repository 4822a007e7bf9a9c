"""Times: everything stored and compared is aware UTC."""

from __future__ import annotations

from datetime import datetime, timezone


def utc(dt: datetime) -> datetime:
    """``dt`` in UTC; a naive one is taken as UTC (SQLite hands back naive datetimes, and items'
    times without a zone are UTC by rule)."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)

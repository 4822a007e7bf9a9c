"""``WatchStore``: every read and write of the ``fieldtune watch`` tables, each in one transaction.

Items go in idempotently (insert-if-absent on the id), wait as ``new``, and are scored by workers
that *claim* a batch: the claim is one transaction that selects the oldest ``new`` items, lets the
caller score them, writes the scores and commits. Several workers share one PostgreSQL database
without scoring an item twice (``FOR UPDATE SKIP LOCKED``: each skips the rows another holds); on
SQLite the claim takes the single write lock (``BEGIN IMMEDIATE``), so workers take turns. A worker
that dies mid-claim (even ``kill -9``) commits nothing, so its items are still ``new`` for the next.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from ..errors import UserError
from ..utils.times import utc
from .db import safe_url
from .models import utcnow
from .store import Store
from .watch_models import WatchAlert, WatchBaseline, WatchItem, WatchMention

ITEMS = WatchItem.__table__
MENTIONS = WatchMention.__table__
ALERTS = WatchAlert.__table__
BASELINES = WatchBaseline.__table__
# what a reader sees of an item: every column but the embedding (bytes, for dedup only)
ITEM_COLUMNS = [c for c in ITEMS.c if c.name != "embedding"]
CHUNK = 500  # ids per IN (...) list: far below every driver's parameter limit


@dataclass(frozen=True)
class ClaimedItem:
    """A pending item as a claim hands it out: the fields of ``fieldtune.apps.watch.items.Item``
    (the store layer cannot import the app's class; a scorer reads either the same way)."""

    id: str
    time: datetime
    source: str
    title: str
    text: str = ""
    url: str | None = None


class Claim(list):
    """The items of one claim (a list of :class:`ClaimedItem`) and the way to record their scores.

    Only items passed to :meth:`save_scores` are marked ``done`` when the claim commits; the others
    stay ``new`` for a later claim (an item is never marked done without its scores).
    """

    def __init__(self, conn: Connection, items: list[ClaimedItem]) -> None:
        super().__init__(items)
        self._conn = conn
        self._times = {item.id: item.time for item in items}
        self.saved: set[str] = set()

    def save_scores(self, rows: Iterable[dict[str, Any]]) -> None:
        """Write scores for claimed items (in the claim's transaction) and their mentions.

        Args:
            rows: dicts with ``id`` and the score columns of ``watch_items`` (``sentiment``,
                ``p_positive``, ``p_negative``, ``p_neutral``, ``embedding`` (float32 array),
                ``topics``, ``entities``, ``orgs``, ``model_versions``, ``duplicate_of``). Missing
                keys are stored as NULL. Event heads (no ``duplicate_of``) get one ``watch_mentions``
                row per topic and entity; copies get none, so a syndicated story counts once.

        Raises:
            ValueError: a row's id is not one of this claim's items.
        """
        rows = list({r["id"]: r for r in rows}.values())  # one row per id (the last), or its mentions would clash
        unknown = [r["id"] for r in rows if r["id"] not in self._times]
        if unknown:
            raise ValueError(f"save_scores got ids this claim does not hold: {unknown[:5]}")
        if not rows:
            return
        now = utcnow()
        # executemany UPDATE: SET takes the keys of each dict, the WHERE binds "b_id"
        self._conn.execute(update(ITEMS).where(ITEMS.c.id == bindparam("b_id")), [_score_values(r, now) for r in rows])
        ids = [r["id"] for r in rows]
        again = [i for i in ids if i in self.saved]  # a `new` item has no mentions yet: only a re-save has some
        if again:
            self._conn.execute(delete(MENTIONS).where(MENTIONS.c.item_id.in_(again)))
        mentions = [
            {"item_id": r["id"], "kind": kind, "key": key, "time": self._times[r["id"]]}
            for r in rows
            if not _head_of(r)
            for kind, field in (("topic", "topics"), ("entity", "entities"))
            for key in _names(r.get(field))
        ]
        if mentions:
            self._conn.execute(MENTIONS.insert(), mentions)
        self.saved.update(ids)


class WatchStore:
    """News items, their scores, mentions, alerts and baselines; ``.store`` is the plain
    :class:`~fieldtune.store.Store` on the same database (feedback goes there).

    ``WatchStore(url)`` opens the database and migrates it like ``Store(url)``.
    """

    def __init__(self, url: str | None = None) -> None:
        self.store = Store(url)
        self.url, self.engine = self.store.url, self.store.engine
        self.dialect = self.engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise UserError(f"fieldtune watch needs SQLite or PostgreSQL, not {self.dialect} ({safe_url(self.url)})")

    def __repr__(self) -> str:
        return f"WatchStore({safe_url(self.url)})"

    def close(self) -> None:
        self.store.close()

    def _insert(self, table):
        """The dialect's INSERT, which has ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
        return pg_insert(table) if self.dialect == "postgresql" else sqlite_insert(table)

    # --- items -------------------------------------------------------------------------------
    def add_items(self, items: Iterable[Any]) -> int:
        """Store items not seen before (by id), all in one transaction; returns how many were new.

        Args:
            items: objects with ``id``, ``time``, ``source``, ``title``, ``text``, ``url``
                (``fieldtune.apps.watch.items.Item``). A repeated id, in this call or any earlier
                one, is left as it was.
        """
        now, rows, seen = utcnow(), [], set()
        for item in items:
            if item.id not in seen:
                seen.add(item.id)
                rows.append(
                    {
                        **{k: getattr(item, k) for k in ("id", "source", "title", "url")},
                        "text": item.text or "",
                        "time": utc(item.time),
                        "received_at": now,
                        "status": "new",
                    }
                )
        if not rows:
            return 0
        # RETURNING lists only the rows really inserted (the conflicting ones did nothing)
        stmt = self._insert(ITEMS).on_conflict_do_nothing(index_elements=["id"]).returning(ITEMS.c.id)
        with self.engine.begin() as conn:
            return len(conn.execute(stmt, rows).all())

    @contextmanager
    def claim(self, batch: int) -> Iterator[Claim]:
        """Claim up to ``batch`` of the oldest ``new`` items for scoring, in one transaction.

        Use as ``with store.claim(64) as items: items.save_scores(score(items))``. Leaving the block
        normally commits (the saved items become ``done``); an exception, or the process dying,
        rolls everything back and the items stay ``new``.

        Yields:
            A :class:`Claim`: the items (oldest first, then by id), empty when nothing is pending.
        """
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock now: no two claims read the same rows
            q = (
                select(*[ITEMS.c[k] for k in ("id", "time", "source", "title", "text", "url")])
                .where(ITEMS.c.status == "new")
                .order_by(ITEMS.c.time, ITEMS.c.id)
                .limit(batch)
            )
            if self.dialect == "postgresql":
                q = q.with_for_update(skip_locked=True)  # rows another worker holds are skipped, not waited on
            try:
                rows = conn.execute(q).all()
                yield Claim(conn, [ClaimedItem(r.id, _aware(r.time), r.source, r.title, r.text, r.url) for r in rows])
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    def item(self, item_id: str) -> dict[str, Any] | None:
        """One item with its scores and ``copies`` (how many near-duplicates point at it), or None."""
        found = self.items([item_id])
        return found[0] if found else None

    def items(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Items by id, in the order asked (unknown ids left out), with scores and ``copies``."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for part in _chunks(wanted):
                for row in conn.execute(select(*ITEM_COLUMNS).where(ITEMS.c.id.in_(part))):
                    found[row.id] = {**_row_dict(row), "copies": 0}
                counts = select(ITEMS.c.duplicate_of, func.count()).where(ITEMS.c.duplicate_of.in_(part))
                for head, n in conn.execute(counts.group_by(ITEMS.c.duplicate_of)):
                    if head in found:
                        found[head]["copies"] = n
        return [found[i] for i in wanted if i in found]

    def copies(self, item_id: str) -> list[dict[str, Any]]:
        """The near-duplicates of an event's first item, oldest first."""
        q = select(*ITEM_COLUMNS).where(ITEMS.c.duplicate_of == item_id).order_by(ITEMS.c.time, ITEMS.c.id)
        with self.engine.connect() as conn:
            return [{**_row_dict(r), "copies": 0} for r in conn.execute(q)]

    def recent_events(
        self, since: datetime, until: datetime
    ) -> list[tuple[str, np.ndarray, list[str], str | None, str]]:
        """``(id, embedding, entities, sentiment, title)`` of scored event heads with ``since <= time <= until``
        (both ends included: a copy often carries its original's exact time), oldest first."""
        q = (
            select(ITEMS.c.id, ITEMS.c.embedding, ITEMS.c.entities, ITEMS.c.sentiment, ITEMS.c.title)
            .where(ITEMS.c.status == "done", ITEMS.c.duplicate_of.is_(None), ITEMS.c.embedding.is_not(None))
            .where(ITEMS.c.time >= utc(since), ITEMS.c.time <= utc(until))
            .order_by(ITEMS.c.time, ITEMS.c.id)
        )
        with self.engine.connect() as conn:
            return [
                (i, np.frombuffer(blob, dtype=np.float32).copy(), list(entities or []), sentiment, title)  # writable
                for i, blob, entities, sentiment, title in conn.execute(q)
            ]

    def span(self) -> tuple[datetime, datetime] | None:
        """The earliest and latest item time, or None when there are no items."""
        with self.engine.connect() as conn:
            first, last = conn.execute(select(func.min(ITEMS.c.time), func.max(ITEMS.c.time))).one()
        return None if first is None else (_aware(first), _aware(last))

    def counts(self) -> dict[str, int]:
        """``items`` (all), ``events`` (scored first items), ``duplicates`` (copies), ``pending`` (new)."""
        c = ITEMS.c
        q = select(
            func.count(),
            func.count().filter((c.status == "done") & c.duplicate_of.is_(None)),
            func.count().filter(c.duplicate_of.is_not(None)),
            func.count().filter(c.status == "new"),
        )
        with self.engine.connect() as conn:
            n = conn.execute(q).one()
        return {"items": n[0], "events": n[1], "duplicates": n[2], "pending": n[3]}

    # --- mentions ----------------------------------------------------------------------------
    def mentions(
        self, kind: str, key: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[tuple[datetime, float, float, str, str]]:
        """Scored event heads mentioning ``key``, as ``(time, p_negative, p_positive, sentiment,
        item_id)``, oldest first, with ``since <= time < until`` (either bound optional)."""
        q = (
            select(MENTIONS.c.time, ITEMS.c.p_negative, ITEMS.c.p_positive, ITEMS.c.sentiment, ITEMS.c.id)
            .join(ITEMS, ITEMS.c.id == MENTIONS.c.item_id)
            .where(MENTIONS.c.kind == kind, MENTIONS.c.key == key)
            .order_by(MENTIONS.c.time, MENTIONS.c.item_id)
        )
        if since is not None:
            q = q.where(MENTIONS.c.time >= utc(since))
        if until is not None:
            q = q.where(MENTIONS.c.time < utc(until))
        with self.engine.connect() as conn:
            return [(_aware(t), _num(neg), _num(pos), s, i) for t, neg, pos, s, i in conn.execute(q)]

    def keys(self) -> dict[str, list[str]]:
        """The topics and entities that have mentions: ``{"topic": [...], "entity": [...]}``, sorted."""
        out: dict[str, list[str]] = {"topic": [], "entity": []}
        q = select(MENTIONS.c.kind, MENTIONS.c.key).distinct().order_by(MENTIONS.c.kind, MENTIONS.c.key)
        with self.engine.connect() as conn:
            for kind, key in conn.execute(q):
                out.setdefault(kind, []).append(key)
        return out

    # --- alerts and baselines ----------------------------------------------------------------
    def add_alerts(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store alerts not stored before (unique on key, kind, bucket_start, rule); returns the new ones.

        Args:
            rows: dicts with ``key``, ``kind``, ``bucket_start``, ``rule``, ``value``, ``threshold``,
                ``items`` (ids) and optionally ``details`` (a JSON-able dict).
        """
        now, new_ids = utcnow(), []
        with self.engine.begin() as conn:
            for row in rows:
                values = {k: row[k] for k in ("key", "kind", "rule")}
                values |= {"bucket_start": utc(row["bucket_start"]), "value": float(row["value"])}
                values |= {"threshold": float(row["threshold"]), "items": [str(i) for i in row.get("items", [])]}
                values |= {"details": _json_safe(row.get("details") or {}), "created_at": now}
                stmt = self._insert(ALERTS).values(**values).on_conflict_do_nothing().returning(ALERTS.c.id)
                new_id = conn.execute(stmt).scalar()
                if new_id is not None:
                    new_ids.append(new_id)
        return [a for a in (self.alert(i) for i in new_ids) if a is not None]

    def alerts(self, since: datetime | None = None, until: datetime | None = None) -> list[dict[str, Any]]:
        """Stored alerts with ``since <= bucket_start < until`` (either optional), oldest bucket first."""
        q = select(ALERTS).order_by(ALERTS.c.bucket_start, ALERTS.c.id)
        if since is not None:
            q = q.where(ALERTS.c.bucket_start >= utc(since))
        if until is not None:
            q = q.where(ALERTS.c.bucket_start < utc(until))
        with self.engine.connect() as conn:
            return [_row_dict(r) for r in conn.execute(q)]

    def alert(self, alert_id: int) -> dict[str, Any] | None:
        """One alert by id, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(ALERTS).where(ALERTS.c.id == alert_id)).first()
        return None if row is None else _row_dict(row)

    def mark_sent(self, alert_id: int) -> None:
        """Record that the webhook accepted the alert (``sent_at`` = now)."""
        with self.engine.begin() as conn:
            conn.execute(update(ALERTS).where(ALERTS.c.id == alert_id).values(sent_at=utcnow()))

    def set_baseline(self, kind: str, key: str, since: datetime) -> None:
        """Accept a new baseline: the rules ignore ``key``'s buckets before ``since`` (replaces any earlier one)."""
        stmt = self._insert(BASELINES).values(kind=kind, key=key, since=utc(since))
        stmt = stmt.on_conflict_do_update(index_elements=["key", "kind"], set_={"since": stmt.excluded.since})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def baselines(self) -> dict[tuple[str, str], datetime]:
        """``{(kind, key): since}`` for every accepted baseline."""
        with self.engine.connect() as conn:
            return {(kind, key): _aware(since) for key, kind, since in conn.execute(select(BASELINES))}


# --- helpers -----------------------------------------------------------------------------------
def _aware(dt: datetime | None) -> datetime | None:
    return None if dt is None else utc(dt)  # SQLite gives naive UTC back, PostgreSQL the session's zone


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


def _head_of(row: dict[str, Any]) -> str | None:
    head = row.get("duplicate_of")
    return None if head in (None, "", row["id"]) else str(head)


def _names(values: Iterable[Any] | None) -> list[str]:
    return list(dict.fromkeys(str(v) for v in values or ()))  # unique, order kept


def _score_values(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A save_scores row as the UPDATE's parameters (numpy scalars and arrays made plain)."""
    embedding = row.get("embedding")
    return {
        "b_id": row["id"],
        "status": "done",
        "scored_at": now,
        "duplicate_of": _head_of(row),
        "embedding": None if embedding is None else np.asarray(embedding, dtype=np.float32).tobytes(),
        "sentiment": None if row.get("sentiment") is None else str(row["sentiment"]),
        **{k: _num(row.get(k)) for k in ("p_positive", "p_negative", "p_neutral")},
        **{k: _names(row.get(k)) for k in ("topics", "entities", "orgs")},
        "model_versions": _json_safe(row.get("model_versions") or {}),
    }


def _row_dict(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for k, v in out.items():
        if isinstance(v, datetime):
            out[k] = _aware(v)
    return out


def _json_safe(value: Any) -> Any:
    """Plain JSON: numpy numbers made Python ones, times ISO 8601, NaN/inf null (PostgreSQL's JSON rejects them)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]

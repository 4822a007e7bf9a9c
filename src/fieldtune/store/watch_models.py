"""The ``fieldtune watch`` tables: news items with their scores, mentions, alerts and baselines.

Declared on the same :class:`~fieldtune.store.models.Base` as the other tables, so one metadata
(and one Alembic history) covers the whole database. The schema is created by the migration
``0002_watch``; these classes must match it (``tests/test_store.py`` checks that they do).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base

ID_LENGTH = 200  # item ids, sources, topic / entity names
ITEM_STATUSES = ("new", "done")
MENTION_KINDS = ("topic", "entity")


class WatchItem(Base):
    """One headline / article. ``status`` is ``new`` until a worker's claim commits its scores.

    ``duplicate_of`` names the first item of the event (NULL for that first item itself), so a
    syndicated copy is stored and scored but counted once. ``embedding`` is float32 bytes.
    """

    __tablename__ = "watch_items"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    source: Mapped[str] = mapped_column(String(ID_LENGTH))
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(10))
    duplicate_of: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    sentiment: Mapped[str | None] = mapped_column(String(50))
    p_positive: Mapped[float | None] = mapped_column(Float)
    p_negative: Mapped[float | None] = mapped_column(Float)
    p_neutral: Mapped[float | None] = mapped_column(Float)
    topics: Mapped[Any] = mapped_column(JSON, nullable=True)
    entities: Mapped[Any] = mapped_column(JSON, nullable=True)
    orgs: Mapped[Any] = mapped_column(JSON, nullable=True)
    model_versions: Mapped[Any] = mapped_column(JSON, nullable=True)
    scored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # a claim reads "status = 'new' ORDER BY time, id": this index answers it without a sort
    __table_args__ = (Index("ix_watch_items_status_time", "status", "time", "id"),)


class WatchMention(Base):
    """A topic or entity of a scored event head (copies have none): what the series count."""

    __tablename__ = "watch_mentions"

    item_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("watch_items.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    key: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the item's, so a series needs no join

    __table_args__ = (Index("ix_watch_mentions_kind_key_time", "kind", "key", "time"),)


class WatchAlert(Base):
    """A fired rule. Unique per (key, kind, bucket, rule): re-running detection never duplicates."""

    __tablename__ = "watch_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(ID_LENGTH))
    kind: Mapped[str] = mapped_column(String(10))
    bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    rule: Mapped[str] = mapped_column(String(20))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    items: Mapped[Any] = mapped_column(JSON)
    details: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # NULL until the webhook said OK

    __table_args__ = (UniqueConstraint("key", "kind", "bucket_start", "rule", name="uq_watch_alerts_bucket_rule"),)


class WatchBaseline(Base):
    """Accept a new baseline ("accept new baseline"): the rules ignore this key's buckets before ``since``."""

    __tablename__ = "watch_baselines"

    key: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))

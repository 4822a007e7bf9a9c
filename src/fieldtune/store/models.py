"""The tables: predictions, feedback, the model registry and its decisions (SQLAlchemy 2 ORM).

The schema itself is created and changed only by the Alembic migrations in ``migrations/``;
these classes must match them (``tests/test_store.py`` checks that they do).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

STAGES = ("champion", "challenger", "archived", "rejected")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Prediction(Base):
    """One served prediction. ``text`` is NULL when inputs are logged as hashes only (privacy)."""

    __tablename__ = "predictions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    text: Mapped[str | None] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64), index=True)
    output: Mapped[Any] = mapped_column(JSON)
    label: Mapped[str | None] = mapped_column(String(200))  # top label (classification) for quick counts
    confidence: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float)


class Feedback(Base):
    """A correction: for a logged prediction (``prediction_id``) or for a raw text.

    ``label`` is a label (classification), a list of labels (multilabel) or a list of
    ``{"start", "end", "label"}`` entities (NER). ``split`` is assigned the first time a retrain
    sees the row (``train`` or ``holdout``) and never changes, so holdouts stay frozen.
    """

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prediction_id: Mapped[str | None] = mapped_column(String(32), index=True)
    model_version: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[Any] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="accepted")
    split: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ModelVersion(Base):
    """A registered model. At most one row has stage ``champion`` (a partial unique index)."""

    __tablename__ = "models"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    stage: Mapped[str] = mapped_column(String(20))
    task: Mapped[str] = mapped_column(String(40))
    path: Mapped[str] = mapped_column(Text)
    parent: Mapped[str | None] = mapped_column(String(64))
    data_fingerprint: Mapped[str] = mapped_column(String(64))
    checksum: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "one_champion",
            "stage",
            unique=True,
            sqlite_where=text("stage = 'champion'"),
            postgresql_where=text("stage = 'champion'"),
        ),
    )


class Decision(Base):
    """Every registry change and retraining verdict, with its numbers (an append-only log)."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    action: Mapped[str] = mapped_column(String(20))  # register | promote | rollback | reject | archive
    version: Mapped[str | None] = mapped_column(String(64))
    previous: Mapped[str | None] = mapped_column(String(64))  # the champion before
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[Any] = mapped_column(JSON)

"""The ``fieldtune support`` tables: chat sessions, their turns, handoffs to agents and the knowledge base.

Declared on the same :class:`~fieldtune.store.models.Base` as the other tables, so one metadata
(and one Alembic history) covers the whole database. The schema is created by the migration
``0003_support``; these classes must match it (``tests/test_store.py`` checks that they do).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base

ID_LENGTH = 200  # KB item ids, intents, agent names
SESSION_ID_LENGTH = 32  # uuid4 hex
ROLES = ("user", "assistant", "agent")
HANDOFF_STATUSES = ("open", "claimed", "resolved")
KB_KINDS = ("template", "passage")


class SupportSession(Base):
    """One customer conversation; its id is what the chat client sends back with each message."""

    __tablename__ = "support_sessions"

    id: Mapped[str] = mapped_column(String(SESSION_ID_LENGTH), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SupportTurn(Base):
    """One message of a session: the customer's (``user``), the assistant's or an agent's.

    ``reply`` is the assistant's full decision (intent, score, sources, guesses) for its turns.
    """

    __tablename__ = "support_turns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        String(SESSION_ID_LENGTH), ForeignKey("support_sessions.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(String(10))
    text: Mapped[str] = mapped_column(Text)
    reply: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    # a session's turns in order (and its last N) come from this index without a sort
    __table_args__ = (Index("ix_support_turns_session_id", "session_id", "id"),)


class SupportHandoff(Base):
    """A conversation handed to a human: ``open`` → ``claimed`` (by ``agent``) → ``resolved``.

    ``question`` is the customer's message that was handed off (what the feedback row learns from);
    ``feedback_id`` is the row the resolution wrote into ``feedback`` (NULL without an intent).
    """

    __tablename__ = "support_handoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        String(SESSION_ID_LENGTH), ForeignKey("support_sessions.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text)
    question: Mapped[str] = mapped_column(Text)
    guesses: Mapped[Any] = mapped_column(JSON)
    agent: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    intent: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    template_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    answer: Mapped[str | None] = mapped_column(Text)
    feedback_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # the agent queue reads "status = 'open' ORDER BY id"
    __table_args__ = (Index("ix_support_handoffs_status_id", "status", "id"),)


class SupportKbItem(Base):
    """A knowledge-base entry: an answer template or a document passage, with its embedding.

    ``embedding`` is float32 bytes (NULL until the assistant embeds it, e.g. an agent's new answer);
    ``origin`` is ``build`` for what ``support build`` wrote and ``agent`` for answers agents added.
    """

    __tablename__ = "support_kb"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    intent: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    origin: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

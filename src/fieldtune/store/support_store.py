"""``SupportStore``: every read and write of the ``fieldtune support`` tables, each in one transaction.

Sessions hold the turns of a conversation; a handoff is a conversation waiting for a human. Agents
*claim* a handoff with one conditional ``UPDATE ... WHERE status = 'open'``: on PostgreSQL the second
of two racing claims waits for the first's row lock, re-reads the row and matches nothing; on SQLite
the write lock serialises them the same way. So exactly one agent wins, and the other is told who.

Resolving writes the agent's answer into the conversation and, when the intent is known, a
correction into the store's ``feedback`` table (source ``support``: the customer's question labelled
with the right intent), which ``fieldtune retrain --source support`` trains on. A new answer (no
template) joins the knowledge base as ``agent-<handoff id>``, with its embedding when the caller
passes the assistant's ``embed`` (so a running assistant re-reads the KB without embedding anything).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from ..errors import UserError
from ..utils.times import utc
from . import support_models as schema
from .db import safe_url, transaction
from .models import utcnow
from .store import Store
from .support_models import HANDOFF_STATUSES, KB_KINDS, ROLES

SESSIONS = schema.SupportSession.__table__
TURNS = schema.SupportTurn.__table__
HANDOFFS = schema.SupportHandoff.__table__
KB = schema.SupportKbItem.__table__
PENDING = ("open", "claimed")
FEEDBACK_SOURCE = "support"
CHUNK = 500  # ids per IN (...) list: far below every driver's parameter limit


class UnknownSession(UserError):
    """No session with that id (404 in the web API)."""


class UnknownHandoff(UserError):
    """No handoff with that id (404 in the web API)."""


class HandoffConflict(UserError):
    """The handoff is claimed by another agent or already resolved (409 in the web API)."""


class SupportStore:
    """Sessions, turns, handoffs and KB items; ``.store`` is the plain :class:`~fieldtune.store.Store`
    on the same database (the feedback table).

    ``SupportStore(url)`` opens the database and migrates it like ``Store(url)`` (SQLite by default,
    PostgreSQL by URL).
    """

    def __init__(self, url: str | None = None) -> None:
        self.store = Store(url)
        self.url, self.engine = self.store.url, self.store.engine

    def __repr__(self) -> str:
        return f"SupportStore({safe_url(self.url)})"

    def close(self) -> None:
        self.store.close()

    # --- sessions and turns -------------------------------------------------------------------
    def new_session(self) -> str:
        """Start a conversation; returns its id (32 hex characters)."""
        session_id, now = uuid.uuid4().hex, utcnow()
        with transaction(self.engine) as conn:
            conn.execute(insert(SESSIONS).values(id=session_id, created_at=now, updated_at=now))
        return session_id

    def add_turn(self, session_id: str, role: str, text: str, reply: dict[str, Any] | None = None) -> int:
        """Append a message (``role``: ``user`` (the customer), ``assistant`` or ``agent``; ``reply``: the
        assistant's decision behind its message) to a session; returns the turn's id (increasing).

        Raises:
            UnknownSession: No such session.
            ValueError: ``role`` is not one of :data:`ROLES`.
        """
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        with transaction(self.engine) as conn:
            _touch(conn, session_id)
            return _insert_turn(conn, session_id, role, text, reply)

    def turns(self, session_id: str, last: int | None = None, after: int | None = None) -> list[dict[str, Any]]:
        """A session's turns (none for an unknown one), oldest first, as ``{"id", "role", "text", "reply",
        "time"}``: only the newest ``last`` (an assistant's context), only those with an id above
        ``after`` (what a polling page has not shown yet)."""
        q = select(TURNS).where(TURNS.c.session_id == session_id).order_by(TURNS.c.id.desc())
        if after is not None:
            q = q.where(TURNS.c.id > after)
        if last is not None:
            q = q.limit(last)
        with self.engine.connect() as conn:
            return [_turn(r) for r in reversed(conn.execute(q).all())]

    def session(self, session_id: str) -> dict[str, Any] | None:
        """``{"id", "created_at", "updated_at", "turns", "handoff"}`` (the latest handoff's summary or
        None), or None for an unknown session."""
        with self.engine.connect() as conn:
            row = conn.execute(select(SESSIONS).where(SESSIONS.c.id == session_id)).first()
            if row is None:
                return None
            q = select(HANDOFFS).where(HANDOFFS.c.session_id == session_id).order_by(HANDOFFS.c.id.desc())
            handoff = conn.execute(q.limit(1)).first()
        summary = None if handoff is None else {k: _plain_row(handoff)[k] for k in ("id", "status", "agent")}
        return {**_plain_row(row), "turns": self.turns(session_id), "handoff": summary}

    # --- handoffs -----------------------------------------------------------------------------
    def open_handoff(self, session_id: str, reason: str, guesses: Sequence[dict[str, Any]]) -> int:
        """Hand a session to the agents; returns the handoff's id (status ``open``).

        The question handed off is the session's last customer turn. A session that already waits
        for an agent keeps its one handoff (its id is returned): the agent sees the new turns anyway.

        Raises:
            UnknownSession: No such session.
        """
        with transaction(self.engine) as conn:
            _touch(conn, session_id)  # locks the session row: two racing calls cannot both open one
            mine = HANDOFFS.c.session_id == session_id
            pending = conn.execute(select(HANDOFFS.c.id).where(mine, HANDOFFS.c.status.in_(PENDING))).scalar()
            if pending is not None:
                return pending
            asked = select(TURNS.c.text).where(TURNS.c.session_id == session_id, TURNS.c.role == "user")
            question = conn.execute(asked.order_by(TURNS.c.id.desc()).limit(1)).scalar()
            values = {"session_id": session_id, "status": "open", "reason": reason, "question": question or ""}
            values |= {"guesses": plain(list(guesses)), "created_at": utcnow()}
            return conn.execute(insert(HANDOFFS).values(**values).returning(HANDOFFS.c.id)).scalar_one()

    def handoffs(self, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Handoffs, oldest first (the queue's order), at most ``limit``, each with its conversation
        (``turns``); ``status``: ``open``, ``claimed``, ``resolved``, ``pending`` (open or claimed) or None."""
        q = select(HANDOFFS).order_by(HANDOFFS.c.id)
        if status == "pending":
            q = q.where(HANDOFFS.c.status.in_(PENDING))
        elif status is not None:
            if status not in HANDOFF_STATUSES:
                raise UserError(f"status must be one of {[*HANDOFF_STATUSES, 'pending']}, not {status!r}")
            q = q.where(HANDOFFS.c.status == status)
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            rows = [_plain_row(r) for r in conn.execute(q)]
            turns = _turns_of(conn, [r["session_id"] for r in rows])
        return [{**r, "turns": turns.get(r["session_id"], [])} for r in rows]

    def handoff(self, handoff_id: int) -> dict[str, Any]:
        """One handoff with its conversation (``turns``); UnknownHandoff if there is none."""
        with self.engine.connect() as conn:
            row = _handoff_row(conn, handoff_id)
            turns = _turns_of(conn, [row["session_id"]])
        return {**row, "turns": turns.get(row["session_id"], [])}

    def claim(self, handoff_id: int, agent: str) -> dict[str, Any]:
        """Take an open handoff (claiming one's own claim again is a no-op); returns it.

        Raises:
            UnknownHandoff: No such handoff.
            HandoffConflict: Another agent holds it, or it is resolved.
        """
        agent = _agent(agent)
        stmt = update(HANDOFFS).where(HANDOFFS.c.id == handoff_id, _open_or_held_by(agent))
        stmt = stmt.values(status="claimed", agent=agent, claimed_at=func.coalesce(HANDOFFS.c.claimed_at, utcnow()))
        with transaction(self.engine) as conn:
            if conn.execute(stmt).rowcount == 0:
                _refuse(_handoff_row(conn, handoff_id), agent)
        return self.handoff(handoff_id)

    def resolve(
        self,
        handoff_id: int,
        agent: str,
        intent: str | None = None,
        template_id: str | None = None,
        answer: str | None = None,
        embed: Callable[[str], Sequence[float]] | None = None,
    ) -> dict[str, Any]:
        """Answer a handoff (open, or claimed by ``agent``) with a template or a new answer.

        Args:
            handoff_id: The handoff.
            agent: Who answers.
            intent: The question's right intent (default: the template's). With an intent, a
                ``feedback`` row (source ``support``) labels the question with it.
            template_id: The template answered with. Its text comes from the KB unless ``answer``
                is given too (the caller's own copy of the template).
            answer: A new answer; without a template it is added to the KB as ``agent-<handoff id>``.
            embed: The new answer's text to its KB embedding (the assistant's encoder); without it the
                item is stored with none (the assistant then embeds it when it reads the KB).

        Returns:
            The resolved handoff (``feedback_id`` set when feedback was written).

        Raises:
            UnknownHandoff, HandoffConflict: As for :meth:`claim`.
            UserError: Neither a template nor an answer, or an unknown template.
        """
        agent = _agent(agent)
        template = self._find_kb(template_id) if template_id else None
        if template_id and not answer and template is None:
            raise UserError(f"no knowledge-base item {template_id!r}", hint="use the id of one of the templates")
        text = (answer or (template or {}).get("text") or "").strip()
        if not text:
            raise UserError("resolve needs a template_id or an answer", hint="pick a suggested template or type one")
        intent = (intent or "").strip() or (template or {}).get("intent")
        # before the transaction: a model call must not hold the database's write lock
        embedding = embed(text) if embed is not None and not template_id else None
        with transaction(self.engine) as conn:
            row = _record_resolution(conn, handoff_id, agent, intent, template_id, text, embedding)
        # after the resolution commits (the feedback table is the plain Store's, in its own transaction):
        # a crash in between leaves feedback_id NULL, which shows what is missing
        if intent and row["question"]:
            feedback = {"text": row["question"], "label": intent, "source": FEEDBACK_SOURCE}
            [feedback_id] = self.store.add_feedback([feedback])
            with transaction(self.engine) as conn:
                conn.execute(update(HANDOFFS).where(HANDOFFS.c.id == handoff_id).values(feedback_id=feedback_id))
        return self.handoff(handoff_id)

    # --- knowledge base -----------------------------------------------------------------------
    def replace_kb(self, rows: Iterable[dict[str, Any]], keep_agent: bool = True) -> int:
        """Replace the knowledge base (what ``support build`` writes) in one transaction.

        Args:
            rows: ``{"id", "kind" ("template"|"passage"), "intent", "title", "text", "embedding"}``
                (``embedding``: a float vector or None; missing keys are None).
            keep_agent: Keep the answers agents added (unless a row reuses the id), so rebuilding
                from the original templates does not lose what the agents taught.

        Returns:
            How many rows were written.
        """
        now = utcnow()
        values = [_kb_values(r, str(r.get("origin") or "build"), now) for r in rows]
        ids = [v["id"] for v in values]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            hint = "every template and passage needs its own id"
            raise UserError(f"duplicate knowledge-base ids: {dupes[:5]}", hint=hint)
        with transaction(self.engine) as conn:
            if keep_agent:
                conn.execute(delete(KB).where(KB.c.origin != "agent"))
                for part in _chunks(ids):
                    conn.execute(delete(KB).where(KB.c.id.in_(part)))
            else:
                conn.execute(delete(KB))
            if values:
                conn.execute(insert(KB), values)
        return len(values)

    def kb_items(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The KB, ordered by id: ``{"id", "kind", "intent", "title", "text", "embedding" (list of
        float or None), "origin" ("build"|"agent"), "created_at"}``."""
        q = select(KB).order_by(KB.c.id)
        if kind is not None:
            q = q.where(KB.c.kind == kind)
        with self.engine.connect() as conn:
            return [_kb_item(r) for r in conn.execute(q)]

    def add_kb_item(self, row: dict[str, Any]) -> dict[str, Any]:
        """Add one KB item (``origin`` defaults to ``agent``); returns it. UserError: the id exists
        already, or the row is incomplete."""
        values = _kb_values(row, str(row.get("origin") or "agent"), utcnow())
        with transaction(self.engine) as conn:
            if conn.execute(select(KB.c.id).where(KB.c.id == values["id"])).first() is not None:
                raise UserError(f"the knowledge base already has an item {values['id']!r}", hint="use a new id")
            conn.execute(insert(KB).values(**values))
        return self._find_kb(values["id"]) or {}

    def _find_kb(self, item_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(KB).where(KB.c.id == item_id)).first()
        return None if row is None else _kb_item(row)


# --- helpers -----------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """Plain JSON: numpy numbers made Python ones, times ISO 8601, NaN/inf null (PostgreSQL's JSON rejects them)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _touch(conn: Connection, session_id: str) -> None:
    """Mark the session active (and lock its row until commit); UnknownSession if there is none."""
    stmt = update(SESSIONS).where(SESSIONS.c.id == session_id).values(updated_at=utcnow())
    if conn.execute(stmt).rowcount == 0:
        raise UnknownSession(f"no support session {session_id!r}", hint="start a new one (send no session_id)")


def _insert_turn(conn: Connection, session_id: str, role: str, text: str, reply: dict[str, Any] | None) -> int:
    values = {"session_id": session_id, "role": role, "text": text, "created_at": utcnow()}
    values["reply"] = None if reply is None else plain(reply)
    return conn.execute(insert(TURNS).values(**values).returning(TURNS.c.id)).scalar_one()


def _agent(agent: str) -> str:
    name = (agent or "").strip()
    if not name or len(name) > 200:
        raise UserError("the agent's name must be 1 to 200 characters", hint='e.g. {"agent": "maria"}')
    return name


def _open_or_held_by(agent: str) -> Any:
    """The handoffs ``agent`` may claim or resolve: open ones and its own claims."""
    return or_(HANDOFFS.c.status == "open", (HANDOFFS.c.status == "claimed") & (HANDOFFS.c.agent == agent))


def _refuse(row: dict[str, Any], agent: str) -> None:
    """Why a claim or resolve matched nothing: resolved already, or another agent's."""
    if row["status"] == "resolved":
        raise HandoffConflict(f"handoff {row['id']} is already resolved by {row['agent']}")
    raise HandoffConflict(
        f"handoff {row['id']} is claimed by {row['agent']}, not {agent}", hint="pick another one from the queue"
    )


def _record_resolution(
    conn: Connection,
    handoff_id: int,
    agent: str,
    intent: str | None,
    template_id: str | None,
    text: str,
    embedding: Sequence[float] | None,
) -> dict[str, Any]:
    """Mark the handoff resolved (refused unless open or ``agent``'s), add the agent's turn and, for
    a new answer, its KB item (with ``embedding``); returns the handoff row."""
    now = utcnow()
    values = {"status": "resolved", "agent": agent, "intent": intent, "template_id": template_id, "answer": text}
    values |= {"resolved_at": now, "claimed_at": func.coalesce(HANDOFFS.c.claimed_at, now)}
    stmt = update(HANDOFFS).where(HANDOFFS.c.id == handoff_id, _open_or_held_by(agent)).values(**values)
    if conn.execute(stmt).rowcount == 0:
        _refuse(_handoff_row(conn, handoff_id), agent)
    row = _handoff_row(conn, handoff_id)
    _touch(conn, row["session_id"])
    _insert_turn(conn, row["session_id"], "agent", text, {"agent": agent, "template_id": template_id})
    if not template_id:
        item = {"id": f"agent-{handoff_id}", "kind": "template", "intent": intent, "text": text, "embedding": embedding}
        conn.execute(delete(KB).where(KB.c.id == item["id"]))  # a re-resolve replaces its own
        conn.execute(insert(KB).values(**_kb_values(item, "agent", now)))
    return row


def _handoff_row(conn: Connection, handoff_id: int) -> dict[str, Any]:
    row = conn.execute(select(HANDOFFS).where(HANDOFFS.c.id == handoff_id)).first()
    if row is None:
        raise UnknownHandoff(f"no handoff {handoff_id}", hint="GET /v1/support/handoffs lists them")
    return _plain_row(row)


def _turns_of(conn: Connection, session_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for part in _chunks(list(dict.fromkeys(session_ids))):
        for r in conn.execute(select(TURNS).where(TURNS.c.session_id.in_(part)).order_by(TURNS.c.id)):
            out.setdefault(r.session_id, []).append(_turn(r))
    return out


def _turn(row: Any) -> dict[str, Any]:
    return {"id": row.id, "role": row.role, "text": row.text, "reply": row.reply, "time": utc(row.created_at)}


def _plain_row(row: Any) -> dict[str, Any]:
    """A row as a dict, times aware UTC (SQLite gives naive UTC back, PostgreSQL the session's zone)."""
    return {k: utc(v) if isinstance(v, datetime) else v for k, v in row._mapping.items()}


def _kb_values(row: dict[str, Any], origin: str, now: datetime) -> dict[str, Any]:
    item_id, kind, text = str(row.get("id") or "").strip(), row.get("kind") or "template", row.get("text")
    if not item_id or len(item_id) > 200:
        raise UserError(f"a knowledge-base item needs an id of 1 to 200 characters, got {item_id!r}")
    if kind not in KB_KINDS:
        raise UserError(f"knowledge-base item {item_id!r}: kind must be one of {KB_KINDS}, not {kind!r}")
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"knowledge-base item {item_id!r} has no text")
    embedding = row.get("embedding")
    blob = None if embedding is None else np.asarray(embedding, dtype=np.float32).tobytes()
    values = {"id": item_id, "kind": kind, "intent": row.get("intent"), "title": row.get("title"), "text": text}
    return values | {"embedding": blob, "origin": origin, "created_at": now}


def _kb_item(row: Any) -> dict[str, Any]:
    out = _plain_row(row)
    blob = out["embedding"]
    out["embedding"] = None if blob is None else np.frombuffer(blob, dtype=np.float32).tolist()
    return out


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]

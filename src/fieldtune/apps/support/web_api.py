"""The ``/v1/support/*`` JSON routes (and ``/health``) of the support app.

Routes that call the assistant or the database are plain ``def``: FastAPI runs them in its thread
pool, so a slow model or a locked database never blocks the event loop.
(No ``from __future__ import annotations``: FastAPI reads the route functions' annotations.)
"""

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from ...errors import UserError
from ...serving.errors import ApiError, JSONBodyRoute
from ...serving.limits import clean_text
from ...store.support_store import HandoffConflict, UnknownHandoff, UnknownSession, plain
from ..web_app import token_check

if TYPE_CHECKING:
    from .web import SupportState

MAX_MESSAGE_CHARS = 2000  # a customer's message; a longer one is a document, not a question
MAX_ANSWER_CHARS = 10_000
SUGGESTIONS = 3
HANDOFF_TEXT = "I'm passing your question to a colleague: an agent will reply here shortly."
HINT_CHAT = 'e.g. {"message": "my card has not arrived"} or {"session_id": "...", "message": "and now?"}'
HINT_RESOLVE = 'send {"agent", "template_id"} (one click) or {"agent", "answer", "intent"} (a new answer)'
ERROR = {"description": 'the error body {"error": {"type", "message", "hint"}}'}


class ChatBody(BaseModel):
    """A customer's message; without ``session_id`` a new conversation starts."""

    model_config = ConfigDict(extra="forbid")
    message: StrictStr = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    session_id: Optional[StrictStr] = Field(None, min_length=1, max_length=64)
    stream: bool = Field(
        False,
        description="answer as server-sent events: with a reply writer `delta` ({text}) per written sentence; "
        "then `reply` (the JSON) and `done`",
    )


class ClaimBody(BaseModel):
    """The agent taking the handoff."""

    model_config = ConfigDict(extra="forbid")
    agent: StrictStr = Field(min_length=1, max_length=200)


class ResolveBody(BaseModel):
    """The agent's answer: a template (its intent labels the question) or a new answer with its intent."""

    model_config = ConfigDict(extra="forbid")
    agent: StrictStr = Field(min_length=1, max_length=200)
    intent: Optional[StrictStr] = Field(None, max_length=200)
    template_id: Optional[StrictStr] = Field(None, max_length=200)
    answer: Optional[StrictStr] = Field(None, max_length=MAX_ANSWER_CHARS)


def api_routes(state: "SupportState") -> APIRouter:
    """``/health`` (always open) and the ``/v1/support/*`` routes (behind the token when one is set)."""

    router = APIRouter(route_class=JSONBodyRoute, tags=["support"], responses={422: ERROR})

    @router.get("/health", summary="the process is alive")
    def health() -> dict[str, Any]:
        return {"status": "ok"}

    guarded = APIRouter(
        route_class=JSONBodyRoute, tags=["support"], dependencies=[Depends(token_check(state.authorized))]
    )
    _add_chat(guarded, state)
    _add_handoffs(guarded, state)
    _add_resolve(guarded, state)
    router.include_router(guarded, responses={401: ERROR, 422: ERROR})
    return router


def converse(state: "SupportState", session_id: Optional[str], message: str) -> dict[str, Any]:
    """One exchange: store the customer's turn, ask the assistant, store its turn, hand off if it says so.

    Returns:
        The assistant's reply fields plus ``session_id``, ``text`` (what the customer is shown),
        ``turn_id`` (the assistant's turn) and, when handed off, ``handoff_id``.
    """
    session_id, history = _customer_turn(state, session_id, message)
    return _assistant_turn(state, session_id, _ask(state, message, history))


def _customer_turn(state: "SupportState", session_id: Optional[str], message: str) -> tuple[str, list[dict]]:
    """Store the customer's message (in a new session when ``session_id`` is None); returns the session
    and its earlier turns."""
    store = state.store
    if session_id is None:
        session_id, history = store.new_session(), []
    else:
        history = [{k: t[k] for k in ("role", "text", "reply")} for t in store.turns(session_id, last=state.history)]
    try:
        store.add_turn(session_id, "user", message)
    except UnknownSession as e:
        raise ApiError(404, "unknown_session", e.message, "send no session_id to start a new conversation") from None
    return session_id, history


def _ask(state: "SupportState", message: str, history: list[dict], **options: Any) -> dict[str, Any]:
    try:
        return plain(state.assistant.ask(message, history, **options))
    except UserError as e:
        raise ApiError(422, "invalid_request", e.message, e.hint) from None


def _assistant_turn(state: "SupportState", session_id: str, reply: dict[str, Any]) -> dict[str, Any]:
    """Store the assistant's reply (and open the handoff it asks for); returns what the client gets."""
    store = state.store
    text = HANDOFF_TEXT if reply.get("handoff") else str(reply.get("answer") or "")
    out = {**reply, "session_id": session_id, "text": text}
    out["turn_id"] = store.add_turn(session_id, "assistant", text, reply)
    if reply.get("handoff"):
        reason = str(reply.get("reason") or "handed off")
        out["handoff_id"] = store.open_handoff(session_id, reason, reply.get("guesses") or [])
    return out


def _sse(out: dict[str, Any]) -> Iterator[str]:
    yield f"event: reply\ndata: {json.dumps(out, ensure_ascii=False)}\n\n"
    yield "event: done\ndata: {}\n\n"


def _written_sse(state: "SupportState", session_id: str, reply: dict[str, Any], message: str) -> Iterator[str]:
    """A written answer as server-sent events: ``delta`` (``{"text"}``, each checked sentence as the
    writer produces it), then ``reply`` (the stored reply: the answer, or the handoff) and ``done``."""
    for event in state.assistant.write_stream(reply, message):
        if "delta" in event:
            yield f"event: delta\ndata: {json.dumps({'text': event['delta']}, ensure_ascii=False)}\n\n"
        else:
            yield from _sse(_assistant_turn(state, session_id, plain(event["reply"])))


def _add_chat(router: APIRouter, state: "SupportState") -> None:
    @router.post(
        "/v1/support/chat",
        summary="answer a customer's message or hand the conversation to an agent; "
        "stream=true or Accept: text/event-stream answers server-sent events",
        responses={404: ERROR, 413: ERROR, 415: ERROR},
    )
    def chat(body: ChatBody, request: Request) -> Response:
        message = clean_text(body.message).strip()
        if not message:
            raise ApiError(422, "invalid_request", "message: only whitespace or control characters", HINT_CHAT)
        streamed = body.stream or "text/event-stream" in request.headers.get("accept", "")
        if streamed and getattr(state.assistant, "writer", None) is not None:  # the answer streams as written
            session_id, history = _customer_turn(state, body.session_id, message)
            events = _written_sse(state, session_id, _ask(state, message, history, write=False), message)
            return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        out = converse(state, body.session_id, message)
        if streamed:
            return StreamingResponse(_sse(out), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        return JSONResponse(out)

    @router.get("/v1/support/sessions/{session_id}", summary="a conversation's turns", responses={404: ERROR})
    def session(
        session_id: str, after: Optional[int] = Query(None, ge=0, description="only turns with a higher id")
    ) -> JSONResponse:
        got = state.store.session(session_id)
        if got is None:
            message = f"no support session {session_id!r}"
            raise ApiError(404, "unknown_session", message, "POST /v1/support/chat starts one")
        turns = [t for t in got["turns"] if after is None or t["id"] > after]
        return JSONResponse(plain({"session_id": session_id, "turns": turns, "handoff": got["handoff"]}))

    @router.get("/v1/support/templates", summary="the assistant's answer templates")
    def templates() -> JSONResponse:
        rows = state.assistant.templates()
        return JSONResponse([{"id": t.id, "intent": t.intent, "title": t.title, "answer": t.answer} for t in rows])


def handoff_or_error(state: "SupportState", handoff_id: int) -> dict[str, Any]:
    """The handoff, or the 404 error."""
    try:
        return state.store.handoff(handoff_id)
    except UnknownHandoff as e:
        raise ApiError(404, "unknown_handoff", e.message, e.hint) from None


def suggestions(state: "SupportState", handoff: dict[str, Any]) -> list[dict[str, Any]]:
    """The assistant's templates for the handoff's question (the console's one-click answers)."""
    text = handoff["question"] or next((t["text"] for t in reversed(handoff["turns"]) if t["role"] == "user"), "")
    return plain(state.assistant.suggest(text, k=SUGGESTIONS)) if text else []


def _add_handoffs(router: APIRouter, state: "SupportState") -> None:
    @router.get("/v1/support/handoffs", summary="handoffs with their conversations, oldest first")
    def handoffs(
        status: Optional[str] = Query(None, description="open, claimed, resolved or pending (open or claimed)"),
        limit: int = Query(200, ge=1, le=1000),
    ) -> JSONResponse:
        try:
            rows = state.store.handoffs(status, limit)
        except UserError as e:
            raise ApiError(422, "invalid_request", e.message, "status=open, claimed, resolved or pending") from None
        return JSONResponse(plain(rows))

    @router.get(
        "/v1/support/handoffs/{handoff_id}", summary="one handoff with suggested templates", responses={404: ERROR}
    )
    def handoff(handoff_id: int) -> JSONResponse:
        row = handoff_or_error(state, handoff_id)
        return JSONResponse(plain({**row, "suggestions": suggestions(state, row)}))

    @router.post(
        "/v1/support/handoffs/{handoff_id}/claim", summary="take a handoff", responses={404: ERROR, 409: ERROR}
    )
    def claim(handoff_id: int, body: ClaimBody) -> JSONResponse:
        return JSONResponse(plain(_act(lambda: state.store.claim(handoff_id, body.agent))))


def _act(action: Any) -> dict[str, Any]:
    """Run a store action, its errors as API errors (404 unknown, 409 taken, 422 bad request)."""
    try:
        return action()
    except UnknownHandoff as e:
        raise ApiError(404, "unknown_handoff", e.message, e.hint) from None
    except HandoffConflict as e:
        raise ApiError(409, "handoff_taken", e.message, e.hint or "reload the queue") from None
    except UserError as e:
        raise ApiError(422, "invalid_request", e.message, e.hint or HINT_RESOLVE) from None


def _add_resolve(router: APIRouter, state: "SupportState") -> None:
    @router.post(
        "/v1/support/handoffs/{handoff_id}/resolve",
        summary="answer a handoff with a template or a new answer (labels the question for retraining)",
        responses={404: ERROR, 409: ERROR},
    )
    def resolve(handoff_id: int, body: ResolveBody) -> JSONResponse:
        answer, intent = (body.answer or "").strip() or None, (body.intent or "").strip() or None
        if body.template_id:
            template = state.template(body.template_id)
            if template is None:
                raise ApiError(
                    422, "unknown_template", f"no template {body.template_id!r}", "GET /v1/support/templates lists them"
                )
            answer, intent = answer or template.answer, intent or template.intent
        elif not answer:
            raise ApiError(422, "invalid_request", "send a template_id or an answer", HINT_RESOLVE)
        embed = state.embedder()
        row = _act(lambda: state.store.resolve(handoff_id, body.agent, intent, body.template_id or None, answer, embed))
        if not body.template_id:
            state.learned()  # the new answer is a KB item now
        return JSONResponse(plain(row))

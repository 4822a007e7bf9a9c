"""The ``fieldtune support serve`` app: the customer chat, the agent console and the ``/v1/support/*`` API.

Pages (:mod:`.web_pages`): ``GET /`` (the customer's chat), ``GET /agent`` (the queue of handoffs) and
``GET /agent/handoffs/{id}`` (one conversation, the model's guesses, suggested templates, answer).
API (:mod:`.web_api`): ``POST /v1/support/chat`` (JSON or SSE), ``GET /v1/support/sessions/{id}``,
``GET /v1/support/handoffs``, ``GET /v1/support/handoffs/{id}``, ``POST .../claim``, ``POST .../resolve``,
``GET /v1/support/templates``; ``GET /health``.

Errors are the server's JSON shape ``{"error": {"type", "message", "hint"}}``. With a token (argument
or ``FIELDTUNE_API_TOKEN``) every route but ``/health`` and ``/static`` needs it: as a bearer header
(scripts) or as the cookie a browser gets by opening any page once with ``?token=...``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, Request

from ...serving.settings import token_from_env
from ...store.support_store import SupportStore
from ..web_app import application, has_token
from .web_api import api_routes
from .web_pages import TOKEN_COOKIE, page_routes

HERE = Path(__file__).parent
MAX_BODY_BYTES = 200_000  # a chat message or an agent's answer; far more is not a conversation
HISTORY_TURNS = 6  # earlier turns the assistant reads (follow-ups, "asked again")
POLL_SECONDS = 3.0  # how often a waiting customer's page asks for the agent's answer
HINTS = {
    "/v1/support/chat": 'send {"message": "..."} (and the "session_id" of the reply to continue)',
    "/v1/support/handoffs": 'claim: {"agent": "name"}; '
    'resolve: {"agent", "template_id"} or {"agent", "answer", "intent"}',
    "/v1/support/sessions": "GET /v1/support/sessions/{session_id}?after=TURN_ID",
}


class SupportAssistant(Protocol):
    """What the app needs of an assistant (``fieldtune.apps.support.assistant.Assistant`` has it)."""

    def ask(self, message: str, history: list[dict[str, Any]]) -> dict[str, Any]: ...

    def templates(self) -> list[Any]: ...

    def suggest(self, text: str, k: int = 3) -> list[dict[str, Any]]: ...


class SupportState:
    """What the routes share: the assistant, the store, the token and the page settings."""

    def __init__(
        self, assistant: SupportAssistant, store: SupportStore, token: str | None, poll_seconds: float
    ) -> None:
        self.assistant, self.store, self.token, self.poll_seconds = assistant, store, token, poll_seconds
        self.history = HISTORY_TURNS

    def template(self, template_id: str) -> Any | None:
        """The assistant's template with this id (``id``, ``answer``, ``intent``, ``title``), or None."""
        return next((t for t in self.assistant.templates() if t.id == template_id), None)

    def intents(self) -> list[str]:
        """The intents the templates answer, sorted (what an agent picks from)."""
        return sorted({t.intent for t in self.assistant.templates() if t.intent})

    def embedder(self) -> Callable[[str], list[float]] | None:
        """The assistant's ``embed_answer``, if it has one: an agent's new answer is stored with its
        embedding, so that :meth:`learned` re-reads the KB without embedding it again."""
        embed = getattr(self.assistant, "embed_answer", None)
        return embed if callable(embed) else None

    def learned(self) -> None:
        """An agent's new answer joined the KB: let an assistant that can re-read it do so."""
        reload_kb = getattr(self.assistant, "reload_kb", None)
        if callable(reload_kb):
            reload_kb()

    def authorized(self, request: Request) -> bool:
        """True without a token, else when the bearer header or the cookie carries it."""
        return has_token(request, self.token, TOKEN_COOKIE)


def create_app(
    assistant: SupportAssistant,
    store: SupportStore,
    token: str | None = None,
    *,
    poll_seconds: float = POLL_SECONDS,
) -> FastAPI:
    """The customer chat, the agent console and the support API over one assistant and one database.

    Args:
        assistant: Has ``ask(message, history)``, ``templates()`` and ``suggest(text, k)``
            (:class:`SupportAssistant`); ``reload_kb()`` too, if it can learn agents' answers live,
            and ``embed_answer(text)`` to store a new answer's embedding with it.
        store: The ``SupportStore`` holding sessions, handoffs and the knowledge base.
        token: Require this token on every route but ``/health`` and ``/static`` (default: env
            ``FIELDTUNE_API_TOKEN``; none: open, for a trusted network only).
        poll_seconds: How often a customer waiting for an agent checks for the answer.

    Returns:
        The FastAPI app (OpenAPI at ``/openapi.json``).
    """
    state = SupportState(assistant, store, token or token_from_env(), poll_seconds)
    routers = [api_routes(state), page_routes(state)]
    app = application(
        "fieldtune support", "Customer-service assistant.", HERE / "static", HINTS, routers, MAX_BODY_BYTES
    )
    app.state.support = state
    return app

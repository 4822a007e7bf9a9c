"""The support app's HTML pages, rendered with Jinja2 (autoescaped): ``GET /`` (the customer's chat),
``GET /agent`` (the queue) and ``GET /agent/handoffs/{id}`` (one handoff).

The pages work without a build step: ``static/chat.js`` and ``static/agent.js`` post JSON to the
``/v1/support/*`` routes through ``static/api.js`` (the token cookie goes along) and poll for what changes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader

from ...serving.errors import ApiError
from ...version import __version__
from .web_api import handoff_or_error, suggestions

if TYPE_CHECKING:
    from .web import SupportState

TEMPLATES = Path(__file__).parent / "templates"
TOKEN_COOKIE = "fieldtune_support_token"
MAX_QUEUE = 200  # handoffs on the queue page; an agent works from the oldest


def when(value: datetime | None) -> str:
    """``2024-05-01 09:30 UTC`` (``–`` for none)."""
    if value is None:
        return "–"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def percent(value: Any) -> str:
    """``0.183`` → ``18%`` (``–`` for none)."""
    return "–" if value is None else f"{100 * float(value):.0f}%"


def templates() -> Jinja2Templates:
    """The page templates, autoescaped whatever their file name (customer text is never markup)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=when, pct=percent)
    return Jinja2Templates(env=env)


def _context(request: Request, state: SupportState, **values: Any) -> dict[str, Any]:
    root = request.scope.get("root_path", "")
    static = lambda path: f"{root}/static/{path}?v={__version__}"  # noqa: E731  (a version busts caches)
    return {"root": root, "static": static, "poll_ms": int(state.poll_seconds * 1000), **values}


def _gate(request: Request, state: SupportState, pages: Jinja2Templates) -> Response | None:
    """None when the page may be shown; else the cookie-setting redirect or a 401 page.

    A browser cannot send a bearer header when it follows a link, so ``?token=`` once sets an
    HttpOnly, SameSite=Strict cookie (the pages' own JSON posts then carry it) and is removed from
    the address bar at once, keeping it out of the history and of Referer headers.
    """
    given = request.query_params.get("token")
    if given is not None and state.token:
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        response = RedirectResponse(request.url.path + (f"?{urlencode(rest)}" if rest else ""), status_code=303)
        response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return response
    if state.authorized(request):
        return None
    message = "This page needs the server's token: open it once with ?token=YOUR_TOKEN."
    return pages.TemplateResponse(request, "error.html", _context(request, state, message=message), status_code=401)


def handoff_values(state: SupportState, handoff: dict[str, Any]) -> dict[str, Any]:
    """The handoff template's values: the conversation, guesses, suggestions, templates, intents."""
    all_templates = sorted(state.assistant.templates(), key=lambda t: ((t.intent or "").lower(), t.id))
    guesses = [g for g in handoff.get("guesses") or [] if isinstance(g, dict)]
    return {
        "h": handoff,
        "guesses": guesses,
        "suggestions": suggestions(state, handoff) if handoff["status"] != "resolved" else [],
        "all_templates": all_templates,
        "intents": sorted({*state.intents(), *(str(g.get("intent")) for g in guesses if g.get("intent"))}),
    }


def page_routes(state: SupportState) -> APIRouter:
    """``GET /`` (chat), ``GET /agent`` (queue) and ``GET /agent/handoffs/{handoff_id}``."""
    pages = templates()
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    def chat(request: Request) -> Response:
        gate = _gate(request, state, pages)
        if gate is not None:
            return gate
        return pages.TemplateResponse(request, "chat.html", _context(request, state, page="chat"))

    @router.get("/agent", response_class=HTMLResponse)
    def queue(request: Request) -> Response:
        gate = _gate(request, state, pages)
        if gate is not None:
            return gate
        pending = state.store.handoffs("pending", MAX_QUEUE)
        values = {"page": "agent", "pending": pending, "max_queue": MAX_QUEUE}
        return pages.TemplateResponse(request, "queue.html", _context(request, state, **values))

    @router.get("/agent/handoffs/{handoff_id}", response_class=HTMLResponse)
    def handoff_page(request: Request, handoff_id: int) -> Response:
        gate = _gate(request, state, pages)
        if gate is not None:
            return gate
        try:
            handoff = handoff_or_error(state, handoff_id)
        except ApiError:
            message = f"There is no handoff {handoff_id}."
            return pages.TemplateResponse(
                request, "error.html", _context(request, state, message=message), status_code=404
            )
        values = {"page": "agent", **handoff_values(state, handoff)}
        return pages.TemplateResponse(request, "handoff.html", _context(request, state, **values))

    return router

"""The dashboard's HTML pages: ``GET /`` and ``GET /alerts/{id}``, rendered with Jinja2 (autoescaped).

The chart data goes into the page as JSON (Jinja's ``tojson``, safe inside ``<script>``) and
``static/watch.js`` draws it with the vendored uPlot, so a page is one request plus cached files.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader

from ...version import __version__
from .web_views import alert_view, bucket_label, dashboard_view, input_value, parse_when, utc_text

if TYPE_CHECKING:
    from .web import WatchState

TEMPLATES = Path(__file__).parent / "templates"
TOKEN_COOKIE = "fieldtune_watch_token"
MAX_ALERTS = 200  # rows in the dashboard's alert list; older ones are a narrower period away
RULES = {  # what each rule's value and threshold mean, in the analyst's words
    "zscore": "robust z-score of the negative share against the previous buckets (median/MAD), "
    "confirmed by a one-sided binomial test",
    "cusum": "cumulative excess of the negative share over its rolling median (CUSUM)",
}


def number(value: Any, digits: int = 3) -> str:
    """A value and a threshold side by side: 3 significant digits (``6.21``, ``0.5``), ``–`` for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{float(value):.{digits}g}"


def percent(value: Any) -> str:
    """``0.183`` → ``18%`` (``–`` for none)."""
    return "–" if value is None else f"{100 * float(value):.0f}%"


def templates() -> Jinja2Templates:
    """The page templates, autoescaped whatever their file name (user text is never markup)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(utc=utc_text, num=number, pct=percent)
    return Jinja2Templates(env=env)


def _context(request: Request, **values: Any) -> dict[str, Any]:
    root = request.scope.get("root_path", "")
    return {"root": root, "static": lambda path: f"{root}/static/{path}?v={__version__}", "rules": RULES, **values}


def _gate(request: Request, state: WatchState, pages: Jinja2Templates) -> Response | None:
    """None when the page may be shown; else the cookie-setting redirect or a 401 page.

    A browser cannot send a bearer header when it follows a link, so ``?token=`` once sets an
    HttpOnly, SameSite=Strict cookie (the page's own JSON posts then carry it) and is removed from
    the address bar at once, keeping it out of the history and of Referer headers.
    """
    given = request.query_params.get("token")
    if given is not None and state.token:
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        secure = request.url.scheme == "https"
        response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict", secure=secure)
        return response
    if state.authorized(request):
        return None
    message = "This dashboard needs the server's token: open it once as /?token=YOUR_TOKEN."
    return pages.TemplateResponse(request, "error.html", _context(request, message=message), status_code=401)


def _bound(value: str | None, name: str, errors: list[str]) -> datetime | None:
    try:
        return parse_when(value, name)
    except ValueError as e:
        errors.append(str(e))
        return None


def _end_text(start: datetime, bucket: timedelta) -> str:
    """The end of a bucket as ``17:00``, with the date only when it is not the start's."""
    end = start + bucket
    return utc_text(end)[11:] if utc_text(end)[:10] == utc_text(start)[:10] else utc_text(end)


def _columns(chart: dict[str, Any]) -> dict[str, Any]:
    """What the browser needs of a chart (the rest is rendered into the card's HTML)."""
    return {k: chart[k] for k in ("key", "kind", "x", "volumes", "neg_share_series", "net_series", "alert_x")}


def dashboard_values(state: WatchState, request: Request) -> dict[str, Any]:
    """The dashboard template's values for the ``from`` / ``to`` of the request (bad ones are reported)."""
    errors: list[str] = []
    start = _bound(request.query_params.get("from"), "from", errors)
    end = _bound(request.query_params.get("to"), "to", errors)
    if start is not None and end is not None and end <= start:
        errors.append("'to' must be after 'from': showing everything from 'from' on")
        end = None
    watched = {"topic": state.topic_names, "entity": list(state.cfg.entities)}
    view = dashboard_view(state.store, state.cfg.bucket, start, end, watched)
    return {
        "view": view,
        "errors": errors,
        "counts": state.store.counts(),
        "max_alerts": MAX_ALERTS,
        "configured_bucket": bucket_label(state.cfg.bucket),
        "from_value": input_value(view["start"]),
        "to_value": input_value(view["end"]),
        "chart_data": {"charts": [_columns(c) for c in view["charts"]], "bucket": int(view["bucket"].total_seconds())},
    }


def alert_values(state: WatchState, view: dict[str, Any]) -> dict[str, Any]:
    """The alert template's values for an :func:`~.web_views.alert_view`."""
    bucket, start = state.cfg.bucket, view["alert"]["bucket_start"]
    chart_data = {
        "charts": [_columns(view["chart"])],
        "bucket": int(bucket.total_seconds()),
        "highlight": int(start.timestamp()),
    }
    return {
        **view,
        "bucket_label": bucket_label(bucket),
        "bucket_end_text": _end_text(start, bucket),
        "labels": state.sentiment_labels,
        "topic_names": state.topic_names,
        "chart_data": chart_data,
    }


def page_routes(state: WatchState) -> APIRouter:
    """``GET /`` (dashboard) and ``GET /alerts/{alert_id}`` (one alert's headlines)."""
    pages = templates()
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    def dashboard(request: Request) -> Response:
        gate = _gate(request, state, pages)
        if gate is not None:
            return gate
        return pages.TemplateResponse(request, "dashboard.html", _context(request, **dashboard_values(state, request)))

    @router.get("/alerts/{alert_id}", response_class=HTMLResponse)
    def alert_page(request: Request, alert_id: int) -> Response:
        gate = _gate(request, state, pages)
        if gate is not None:
            return gate
        view = alert_view(state.store, state.cfg.bucket, state.cfg.alerts.window, alert_id)
        if view is None:
            message = f"There is no alert {alert_id}."
            return pages.TemplateResponse(request, "error.html", _context(request, message=message), status_code=404)
        return pages.TemplateResponse(request, "alert.html", _context(request, **alert_values(state, view)))

    return router

"""The ``fieldtune watch serve`` app: the dashboard pages and the ``/v1/watch/*`` JSON API.

Pages (:mod:`.web_pages`): ``GET /`` (trends per topic and entity, alert list, time-range filter) and
``GET /alerts/{id}`` (the headlines behind an alert, corrections, "accept new baseline"). API
(:mod:`.web_api`): ``GET /v1/watch/series``, ``GET /v1/watch/alerts``, ``GET /v1/watch/alerts/{id}``,
``POST /v1/watch/items``, ``POST /v1/watch/feedback``, ``POST /v1/watch/baseline``; ``GET /health``.

Errors are the server's JSON shape ``{"error": {"type", "message", "hint"}}``. With a token (argument
or ``FIELDTUNE_API_TOKEN``) every route but ``/health`` and ``/static`` needs it: as a bearer header
(scripts) or as the cookie a browser gets by opening any page once with ``?token=...``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

from ...artifacts import find_model_dir, read_meta
from ...errors import UserError
from ...serving.settings import token_from_env
from ...store.watch_store import WatchStore
from ..web_app import application, has_token
from .config import WatchConfig
from .items import Item, Rejected
from .pipeline import IngestReport, ingest
from .web_api import api_routes
from .web_pages import TOKEN_COOKIE, page_routes

HERE = Path(__file__).parent
MAX_BODY_BYTES = 10_000_000  # a batch of 1,000 long articles; more is a file for `watch ingest`
SENTIMENT_LABELS = ("negative", "neutral", "positive")
HINTS = {
    "/v1/watch/items": 'send {"items": [{"id", "time" (ISO 8601), "source", "title", "text"?, "url"?}, ...]}',
    "/v1/watch/feedback": 'send {"item_id": "...", "sentiment": "negative"} and/or "topics": ["..."]',
    "/v1/watch/baseline": 'send {"kind": "topic" or "entity", "key": "..."} (optionally "since": ISO 8601)',
    "/v1/watch/series": "GET /v1/watch/series?key=NAME&kind=topic|entity&start=ISO&end=ISO&bucket=1h",
    "/v1/watch/alerts": "GET /v1/watch/alerts?since=ISO&until=ISO&kind=topic|entity&key=NAME",
}


def default_scorer_factory(cfg: WatchConfig) -> Any:
    """``Scorer.from_config(cfg)``, imported here so that serving the pages never imports torch."""
    from .scoring import Scorer  # heavy (torch, the models): only when items are first posted

    return Scorer.from_config(cfg)


class WatchState:
    """What the routes share: the config, the store, the token and the scorer (built on first use).

    One ingest runs at a time: the scorer is not thread-safe, and on SQLite the store has one writer.
    """

    def __init__(
        self, cfg: WatchConfig, store: WatchStore, scorer_factory: Callable[[WatchConfig], Any], token: str | None
    ) -> None:
        self.cfg, self.store, self.token = cfg, store, token
        self._factory = scorer_factory
        self._scorer: Any = None
        self._lock = threading.Lock()
        self._labels: tuple[str, ...] | None = None

    def ingest(self, parsed: list[Item | Rejected]) -> IngestReport:
        """Store, score and detect (blocking: call it in a thread)."""
        with self._lock:
            if self._scorer is None:
                self._scorer = self._factory(self.cfg)
            return ingest(self.cfg, self.store, self._scorer, parsed)

    @property
    def sentiment_labels(self) -> tuple[str, ...]:
        """The sentiment model's labels, read from its ``fieldtune.json`` (the weights are not loaded)."""
        if self._labels is None:
            self._labels = _model_labels(self.cfg.sentiment) or SENTIMENT_LABELS
        return self._labels

    @property
    def topic_names(self) -> tuple[str, ...]:
        """The topics an item may be corrected to: the config's example topics or the model's labels."""
        topics = self.cfg.topics
        return tuple(topics) if isinstance(topics, dict) else _model_labels(topics)

    def authorized(self, request: Request) -> bool:
        """True without a token, else when the bearer header or the cookie carries it."""
        return has_token(request, self.token, TOKEN_COOKIE)


def _model_labels(folder: Path | None) -> tuple[str, ...]:
    """A model folder's labels, or () when it cannot be read (the page still works without them)."""
    if folder is None:
        return ()
    try:
        return tuple(str(label) for label in read_meta(find_model_dir(folder)).get("labels") or ())
    except (UserError, OSError, ValueError):
        return ()


def create_watch_app(
    cfg: WatchConfig,
    store: WatchStore | None = None,
    scorer_factory: Callable[[WatchConfig], Any] | None = None,
    *,
    token: str | None = None,
) -> FastAPI:
    """The dashboard and the watch API over one watch database.

    Args:
        cfg: The watch config (``db``, ``bucket``, ``alerts``, models for scoring).
        store: An open ``WatchStore`` (default: ``WatchStore(cfg.db)``).
        scorer_factory: Builds the scorer on the first ``POST /v1/watch/items`` (default
            ``Scorer.from_config``), so the pages and the read routes never load a model.
        token: Require this token on every route but ``/health`` and ``/static`` (default: env
            ``FIELDTUNE_API_TOKEN``; none: open, for a trusted network only).

    Returns:
        The FastAPI app (OpenAPI at ``/openapi.json``).
    """
    state = WatchState(
        cfg, store or WatchStore(cfg.db), scorer_factory or default_scorer_factory, token or token_from_env()
    )
    routers = [api_routes(state), page_routes(state)]
    app = application("fieldtune watch", "Financial news monitoring.", HERE / "static", HINTS, routers, MAX_BODY_BYTES)
    app.state.watch = state
    return app

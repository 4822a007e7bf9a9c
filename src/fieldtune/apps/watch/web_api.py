"""The ``/v1/watch/*`` JSON routes (and ``/health``) of the watch app.

(No ``from __future__ import annotations``: FastAPI reads the route functions' annotations.)
"""

import asyncio
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, Optional

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from ...errors import UserError
from ...serving.errors import ApiError, JSONBodyRoute
from ...utils.times import utc
from ..web_app import token_check
from .alerts import KINDS, json_ready
from .config import MIN_BUCKET, parse_duration
from .items import parse_item
from .series import bucket_start, bucketize
from .web_views import MAX_SERIES_BUCKETS, alert_json, bucket_label, headline, parse_when, series_json

if TYPE_CHECKING:
    from .web import WatchState

MAX_ITEMS = 1000  # items per POST: one request stays one short transaction and one scoring run
HINT_SERIES = "GET /v1/watch/series?key=NAME&start=ISO&end=ISO"
HINT_FEEDBACK = 'e.g. {"item_id": "n-17", "sentiment": "negative"} or {"item_id": "n-17", "topics": ["legal"]}'
ERROR = {"description": 'the error body {"error": {"type", "message", "hint"}}'}


class ItemsBody(BaseModel):
    """A batch of news items; each is validated like a line of a JSONL file (bad ones are reported)."""

    model_config = ConfigDict(extra="forbid")
    items: list[Any] = Field(description='[{"id", "time" (ISO 8601), "source", "title", "text"?, "url"?}, ...]')


class FeedbackBody(BaseModel):
    """An analyst's correction of one item: its sentiment, its topics, or both."""

    model_config = ConfigDict(extra="forbid")
    item_id: StrictStr = Field(min_length=1, max_length=200)
    sentiment: Optional[StrictStr] = Field(None, min_length=1, max_length=50)
    topics: Optional[list[StrictStr]] = Field(None, max_length=200, description="the item's full topic list")


class BaselineBody(BaseModel):
    """Accept the current level of a key as normal from ``since`` (default: its last alert, else now)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["topic", "entity"]
    key: StrictStr = Field(min_length=1, max_length=200)
    since: Optional[StrictStr] = Field(None, description="ISO 8601; default: the key's last alert bucket, else now")


def api_routes(state: "WatchState") -> APIRouter:
    """``/health`` (always open) and the ``/v1/watch/*`` routes (behind the token when one is set)."""

    router = APIRouter(route_class=JSONBodyRoute, tags=["watch"], responses={422: ERROR})

    @router.get("/health", summary="the process is alive")
    def health() -> dict[str, Any]:
        return {"status": "ok"}

    guarded = APIRouter(
        route_class=JSONBodyRoute, tags=["watch"], dependencies=[Depends(token_check(state.authorized))]
    )
    _add_reads(guarded, state)
    _add_items(guarded, state)
    _add_feedback(guarded, state)
    _add_baseline(guarded, state)
    router.include_router(guarded, responses={401: ERROR, 422: ERROR})
    return router


def _when(value: Optional[str], name: str) -> Optional[datetime]:
    try:
        return parse_when(value, name)
    except ValueError as e:
        raise ApiError(422, "invalid_request", str(e), "ISO 8601, e.g. 2024-05-01 or 2024-05-01T09:30:00Z") from None


def _kind_of(state: "WatchState", key: str, kind: Optional[str]) -> str:
    """The kind asked for, or the only kind ``key`` has; 404 for a key the watch does not know."""
    if kind is not None and kind not in KINDS:
        raise ApiError(
            422, "invalid_request", f"kind: {kind!r} is not one of {list(KINDS)}", "kind=topic or kind=entity"
        )
    known = state.store.keys()
    configured = {"topic": state.topic_names, "entity": tuple(state.cfg.entities)}
    kinds = [k for k in KINDS if key in known.get(k, []) or key in configured[k]]
    if kind is None and len(kinds) > 1:
        raise ApiError(
            422, "invalid_request", f"{key!r} is both a topic and an entity", "add kind=topic or kind=entity"
        )
    if not kinds or (kind is not None and kind not in kinds):
        names = ", ".join(f"{k} {n}" for k in KINDS for n in known.get(k, [])[:10]) or "none yet"
        what = kind or "topic or entity"
        raise ApiError(404, "unknown_key", f"no {what} {key!r} in this watch", f"known keys: {names}")
    return kind or kinds[0]


def _bucket(value: Optional[str], default: timedelta) -> timedelta:
    if not value:
        return default
    try:
        bucket = parse_duration(value)
    except ValueError as e:
        raise ApiError(422, "invalid_request", f"bucket: {e}", "bucket=5min, 15min, 1h or 1d") from None
    if bucket < MIN_BUCKET:
        raise ApiError(422, "invalid_request", f"bucket: {value!r} is shorter than {MIN_BUCKET}", "bucket=5min or more")
    return bucket


def _add_reads(router: APIRouter, state: "WatchState") -> None:
    store = state.store

    @router.get("/v1/watch/series", summary="a topic's or entity's buckets: volume, negative share, net sentiment")
    def series(
        key: str = Query(..., min_length=1, max_length=200, description="topic or entity name"),
        kind: Optional[str] = Query(None, description="topic or entity (needed only when a name is both)"),
        start: Optional[str] = Query(None, description="ISO 8601 (default: the key's first mention)"),
        end: Optional[str] = Query(None, description="ISO 8601, exclusive (default: after its last mention)"),
        bucket: Optional[str] = Query(None, description="5min ... 1d (default: the config's)"),
        items: bool = Query(False, description="include each bucket's item ids"),
    ) -> JSONResponse:
        kind = _kind_of(state, key, kind)
        lo, hi, step = _when(start, "start"), _when(end, "end"), _bucket(bucket, state.cfg.bucket)
        if lo is not None and hi is not None and hi <= lo:
            raise ApiError(422, "invalid_request", "end must be after start", HINT_SERIES)
        rows = store.mentions(kind, key, lo, hi)
        first = lo or (utc(rows[0][0]) if rows else None)
        last = hi or (utc(rows[-1][0]) + step if rows else None)
        if first is not None and last is not None and (last - bucket_start(first, step)) / step > MAX_SERIES_BUCKETS:
            raise ApiError(
                422,
                "too_many_buckets",
                f"the range holds more than {MAX_SERIES_BUCKETS} buckets of {bucket_label(step)}",
                "ask for a shorter range (start, end) or a larger bucket",
            )
        body = {"key": key, "kind": kind, "bucket": bucket_label(step)}
        body["buckets"] = series_json(bucketize(rows, step, lo, hi), items)
        return JSONResponse(body)

    @router.get("/v1/watch/alerts", summary="alerts so far, oldest bucket first")
    def alerts(
        since: Optional[str] = Query(None, description="ISO 8601: alerts whose bucket starts at or after"),
        until: Optional[str] = Query(None, description="ISO 8601: alerts whose bucket starts before"),
        kind: Optional[str] = Query(None, description="topic or entity"),
        key: Optional[str] = Query(None, description="one topic or entity"),
    ) -> JSONResponse:
        rows = store.alerts(_when(since, "since"), _when(until, "until"))
        rows = [a for a in rows if (kind is None or a["kind"] == kind) and (key is None or a["key"] == key)]
        return JSONResponse([alert_json(a) for a in rows])

    @router.get("/v1/watch/alerts/{alert_id}", summary="one alert with its headlines", responses={404: ERROR})
    def alert(alert_id: int) -> JSONResponse:
        row = store.alert(alert_id)
        if row is None:
            raise ApiError(404, "unknown_alert", f"no alert with id {alert_id}", "GET /v1/watch/alerts lists them")
        heads = [headline(i) for i in store.items(list(row.get("items") or []))]
        return JSONResponse(alert_json(row, heads))


def _add_items(router: APIRouter, state: "WatchState") -> None:
    @router.post(
        "/v1/watch/items",
        summary="score and store a batch of items (idempotent on id); bad items are reported, not stored",
        responses={413: ERROR, 503: ERROR},
    )
    async def post_items(body: ItemsBody) -> JSONResponse:
        if not body.items:
            raise ApiError(422, "invalid_request", "items: the list is empty", "send at least one item")
        if len(body.items) > MAX_ITEMS:
            raise ApiError(
                413,
                "payload_too_large",
                f"{len(body.items)} items exceed the limit of {MAX_ITEMS} per request",
                f"send at most {MAX_ITEMS} items per request, or a file with `fieldtune watch ingest`",
            )
        parsed = [parse_item(obj, f"request item {i}") for i, obj in enumerate(body.items)]
        try:
            report = await asyncio.to_thread(state.ingest, parsed)
        except UserError as e:  # a model folder gone or broken since the config was loaded
            raise ApiError(
                503, "models_unavailable", f"the scoring models could not be loaded: {e.message}", e.hint
            ) from None
        return JSONResponse(json_ready(report.as_dict()))


def _add_feedback(router: APIRouter, state: "WatchState") -> None:
    @router.post("/v1/watch/feedback", status_code=201, summary="store an analyst's correction", responses={404: ERROR})
    async def feedback(body: FeedbackBody) -> JSONResponse:
        if body.sentiment is None and body.topics is None:
            raise ApiError(422, "invalid_request", "send a sentiment, topics or both", HINT_FEEDBACK)
        labels, topics = state.sentiment_labels, state.topic_names
        if body.sentiment is not None and body.sentiment not in labels:
            raise ApiError(422, "invalid_label", f"sentiment: {body.sentiment!r} is not one of {list(labels)}")
        unknown = [t for t in body.topics or [] if t not in topics]
        if unknown:
            raise ApiError(422, "invalid_label", f"topics: {unknown} are not topics of this watch ({list(topics)})")
        item = await asyncio.to_thread(state.store.item, body.item_id)
        if item is None:
            raise ApiError(404, "unknown_item", f"no item with id {body.item_id!r}", "use an id the watch stored")
        rows = _feedback_rows(item, body)
        ids = await asyncio.to_thread(state.store.store.add_feedback, rows)
        out = {"ids": ids, "item_id": body.item_id, "sentiment": body.sentiment, "topics": body.topics}
        return JSONResponse(out, status_code=201)


def _feedback_rows(item: dict[str, Any], body: FeedbackBody) -> list[dict[str, Any]]:
    """Feedback rows: the text the model read (title, then body) with the corrected label.

    Topic corrections carry source ``watch:topics`` so a retrain of the sentiment model can tell
    them from sentiment corrections (``watch``) in the one feedback table.
    """
    text = item["title"] + (f"\n{item['text']}" if item.get("text") else "")
    versions = item.get("model_versions") or {}
    rows = []
    if body.sentiment is not None:
        rows.append(
            {"text": text, "label": body.sentiment, "model_version": versions.get("sentiment"), "source": "watch"}
        )
    if body.topics is not None:
        topics = list(dict.fromkeys(body.topics))
        rows.append({"text": text, "label": topics, "model_version": versions.get("topics"), "source": "watch:topics"})
    return rows


def _add_baseline(router: APIRouter, state: "WatchState") -> None:
    @router.post("/v1/watch/baseline", summary="accept a key's new level as its baseline", responses={404: ERROR})
    def baseline(body: BaselineBody) -> JSONResponse:
        kind = _kind_of(state, body.key, body.kind)
        since = _when(body.since, "since")
        if since is None:
            mine = [a for a in state.store.alerts() if a["kind"] == kind and a["key"] == body.key]
            since = utc(mine[-1]["bucket_start"]) if mine else datetime.now(timezone.utc)
        state.store.set_baseline(kind, body.key, since)
        return JSONResponse({"kind": kind, "key": body.key, "since": since.isoformat()})

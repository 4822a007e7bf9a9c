"""The FastAPI app: ``create_app(model_dir, ...)`` builds one server for one model.

Routes: ``POST /v1/predict``, ``POST /v1/feedback`` (with a store), ``POST /v1/chat/completions``
(causal LMs only; 404 otherwise), ``GET /health``, ``GET /ready``, ``GET /metadata``,
``GET /metrics``. OpenAPI at ``/openapi.json``.

(No ``from __future__ import annotations`` here: FastAPI reads the route functions' annotations,
and the request model is built per app.)
"""

import asyncio
import contextlib
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .. import __version__
from ..errors import UserError
from ..monitoring.feedback import check_correction
from .errors import ApiError, JSONBodyRoute, install_error_handlers
from .limits import _CONTROL, _SURROGATE, BodyLimitMiddleware, clean_texts
from .metrics import MetricsMiddleware, ServingMetrics
from .model import CAUSAL_LM_TASKS, check_model_dir, is_onnx, json_safe, model_version
from .schemas import (
    ChatRequest,
    ChatResponse,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    Metadata,
    PredictResponse,
    Readiness,
    predict_request_model,
)
from .service import LOG_INPUTS, Limits, ModelService
from .settings import BACKEND_ENV, MODEL_DIR_ENV, limits_from_env, log_inputs_from_env, token_from_env

ERROR = {"model": ErrorResponse}


def create_app(
    model_dir: str | Path | None,
    *,
    backend: str = "auto",
    max_batch: int = 32,
    max_wait_ms: float = 5,
    max_inputs: int = 64,
    max_chars: int = 10_000,
    max_body_bytes: int = 1_000_000,
    token: str | None = None,
    batching: bool | None = None,
    inference_threads: int | None = None,
    predictor: Any = None,
    background_load: bool = True,
    store: Any = None,
    log_inputs: str = "text",
    reload_interval: float = 2.0,
) -> FastAPI:
    """A server for the model in ``model_dir`` (a run folder or its ``model/``).

    Raises a ``UserError`` at once if the folder is not a fieldtune model. The weights load when
    the app starts (its lifespan), in the background unless ``background_load=False``; pass an
    already-loaded ``predictor`` to skip loading. ``token`` (default: env ``FIELDTUNE_API_TOKEN``)
    turns on bearer auth for ``/v1/*`` and ``/metadata``. ``batching=False`` runs every request as
    its own model call; the default (None) batches for PyTorch and not for ONNX Runtime, which on a
    CPU gains more from ``inference_threads`` single-text calls at once (default: one per core)
    than from padded batches.

    With a ``store`` (:class:`fieldtune.store.Store`) every prediction is logged (``log_inputs``:
    ``text``, ``hash`` for privacy, or ``off``) and ``POST /v1/feedback`` stores corrections.
    ``model_dir=None`` serves the store's registry champion and hot-reloads it whenever another
    version is promoted (checked every ``reload_interval`` seconds).
    """
    if log_inputs not in LOG_INPUTS:
        raise UserError(f"log_inputs must be one of {LOG_INPUTS}, not {log_inputs!r}")
    watch = model_dir is None
    if watch:
        model_dir = _champion_dir(store)
    model_dir, meta = check_model_dir(model_dir, backend)
    token = token if token is not None else token_from_env()
    onnx = is_onnx(model_dir, backend)
    if batching is None:
        batching = not onnx
    if inference_threads is None:
        inference_threads = 1 if batching else (os.cpu_count() or 1) if onnx else 1
    if batching:
        inference_threads = 1  # one batch at a time: the batch is the parallelism
    limits = Limits(max_inputs, max_chars, max_body_bytes, max_batch, max_wait_ms, batching, inference_threads)
    version = model_version(meta)
    metrics = ServingMetrics(version, meta["task"])
    service = ModelService(
        model_dir,
        meta,
        backend=backend,
        limits=limits,
        metrics=metrics,
        predictor=predictor,
        background_load=background_load,
        store=store,
        log_inputs=log_inputs,
        watch_registry=watch,
        reload_interval=reload_interval,
    )
    app = FastAPI(
        title="fieldtune",
        version=__version__,
        lifespan=service.lifespan,
        description=f"Serving a {meta['task']} model, version {version}.",  # no server paths
    )
    app.state.service, app.state.metrics, app.state.model_version = service, metrics, version
    install_error_handlers(app, metrics.count_error)
    app.include_router(_probe_routes(service, metrics))
    app.include_router(_api_routes(service, token))
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes, count=metrics.count_error)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees every final status
    return app


def app_from_env() -> FastAPI:
    """Uvicorn factory (``fieldtune.serving.app:app_from_env``, ``factory=True``) for
    ``--workers N``: the model folder and backend come from ``FIELDTUNE_MODEL_DIR`` and
    ``FIELDTUNE_BACKEND``, the limits from their variables (see ``settings``)."""
    if MODEL_DIR_ENV not in os.environ:
        raise RuntimeError(f"{MODEL_DIR_ENV} is not set; start the server with `fieldtune serve MODEL`")
    model = os.environ[MODEL_DIR_ENV] or None  # empty: the registry's champion
    store = None
    if os.environ.get(STORE_ENV) == "1":
        from ..store import Store

        store = Store()
    return create_app(
        model,
        backend=os.environ.get(BACKEND_ENV, "auto"),
        store=store,
        log_inputs=log_inputs_from_env(),
        **limits_from_env(),
    )


STORE_ENV = "FIELDTUNE_SERVE_STORE"


def _champion_dir(store: Any) -> str:
    if store is None:
        raise UserError("no model folder and no store to take the registry's champion from")
    champion = store.champion()
    if champion is None:
        raise UserError(
            "the registry has no champion to serve",
            hint="fieldtune registry add RUN_DIR --promote (or pass a model folder to serve)",
        )
    return champion.path


def _probe_routes(service: ModelService, metrics: ServingMetrics) -> APIRouter:
    """/health, /ready, /metrics: always open (orchestrators and scrapers carry no token)."""
    router = APIRouter(tags=["operations"])

    @router.get("/health", response_model=Health, summary="the process is alive")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/ready",
        response_model=Readiness,
        summary="200 once the model is loaded, 503 before",
        responses={503: {"model": Readiness}},
    )
    async def ready() -> JSONResponse:
        body = {"status": service.state, "model_version": service.version, "error": service.error}
        return JSONResponse(body, status_code=200 if service.ready else 503)

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def prometheus() -> Response:
        content, content_type = metrics.render()
        return Response(content, media_type=content_type)

    return router


def _bearer(token: str) -> Any:
    """A dependency that requires ``Authorization: Bearer <token>`` (401 otherwise)."""
    scheme = HTTPBearer(auto_error=False, description="the server's FIELDTUNE_API_TOKEN")

    async def check(credentials: HTTPAuthorizationCredentials | None = Depends(scheme)) -> None:  # noqa: B008
        given = credentials.credentials.encode() if credentials else b""
        if not secrets.compare_digest(given, token.encode()):
            raise ApiError(
                401,
                "unauthorized",
                "missing or wrong bearer token",
                "send the header `Authorization: Bearer <token>` with the server's FIELDTUNE_API_TOKEN",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def _api_routes(service: ModelService, token: str | None) -> APIRouter:
    """/metadata, /v1/predict, /v1/feedback, /v1/chat/completions; behind the bearer token when set."""
    deps = [Depends(_bearer(token))] if token else []
    auth_error = {401: ERROR} if token else {}
    router = APIRouter(dependencies=deps, route_class=JSONBodyRoute, responses=auth_error)
    _add_metadata(router, service)
    _add_predict(router, service)
    _add_feedback(router, service)
    _add_chat(router, service)
    return router


def _add_metadata(router: APIRouter, service: ModelService) -> None:
    @router.get("/metadata", response_model=Metadata, tags=["model"], summary="what this server serves")
    async def metadata() -> JSONResponse:
        meta = service.meta
        body = {
            "task": meta["task"],
            "labels": meta["labels"],
            "model_version": service.version,
            "base_model": meta.get("base_model"),
            "metrics": meta.get("metrics") or {},
            "created": meta.get("created"),
            "fieldtune_version": meta.get("fieldtune_version"),
            "max_length": meta.get("max_length"),
            "backend": _backend_name(service),
            "causal_lm": meta["task"] in CAUSAL_LM_TASKS,
            "limits": service.limits.as_dict(),
        }
        return JSONResponse(json_safe(body))


def _backend_name(service: ModelService) -> str:
    """The backend the loaded Predictor reports, else the one asked for."""
    return str(getattr(service.predictor, "backend", None) or service.backend)


def _add_predict(router: APIRouter, service: ModelService) -> None:
    limits = service.limits
    request_model = predict_request_model(limits.max_inputs, limits.max_chars)

    @router.post(
        "/v1/predict",
        response_model=PredictResponse,
        tags=["model"],
        summary="predict one text or a list (Hugging Face Inference API shapes)",
        responses={413: ERROR, 415: ERROR, 422: ERROR, 503: ERROR},
    )
    async def predict(body: request_model) -> JSONResponse:  # type: ignore[valid-type]
        texts = clean_texts(body.inputs, limits.max_inputs, limits.max_chars)
        version, outputs, ids = await service.predict(texts, body.parameters.top_k)
        return JSONResponse({"model_version": version, "predictions": json_safe(outputs), "ids": ids})


def _add_feedback(router: APIRouter, service: ModelService) -> None:
    limits = service.limits

    @router.post(
        "/v1/feedback",
        status_code=201,
        response_model=FeedbackResponse,
        tags=["feedback"],
        summary="store a correction for a logged prediction (by id) or for a text",
        responses={404: ERROR, 413: ERROR, 415: ERROR, 422: ERROR, 503: ERROR},
    )
    async def feedback(body: FeedbackRequest) -> JSONResponse:
        if service.store is None:
            raise ApiError(
                404,
                "feedback_disabled",
                "this server has no store to keep feedback in",
                "start it with `fieldtune serve` (which opens FIELDTUNE_DB_URL or runs/fieldtune.db)",
            )
        text, version = body.text, service.version
        if text is not None:
            text = clean_texts(text, 1, limits.max_chars)[0]
        if body.prediction_id is not None:
            logged = await service.find_prediction(body.prediction_id)
            if logged is None:
                raise ApiError(
                    404,
                    "unknown_prediction",
                    f"no logged prediction with id {body.prediction_id!r}",
                    "use an id from a /v1/predict response of this server, or send the text instead",
                )
            version = logged.model_version
            if text is None:
                text = logged.text  # None when inputs are logged as hashes
        elif text is None:
            raise ApiError(
                422, "invalid_request", "send a prediction_id or a text", "one of them says what is corrected"
            )
        try:
            label = check_correction(service.meta["task"], service.meta["labels"], text, body.correction())
        except UserError as e:
            raise ApiError(422, "invalid_label", e.message, e.hint) from None
        row = {
            "prediction_id": body.prediction_id,
            "model_version": version,
            "text": text,
            "label": label,
            "source": body.source,
        }
        if text is None and body.prediction_id:
            row["text_hash"] = "prediction:" + body.prediction_id  # the text only exists as a hash
        [fid] = await asyncio.to_thread(service.store.add_feedback, [row])
        return JSONResponse(
            {"id": fid, "prediction_id": body.prediction_id, "model_version": version, "label": label},
            status_code=201,
        )


MAX_CHAT_TOKENS = 512  # new tokens per chat completion at most, whatever the request asks


def _add_chat(router: APIRouter, service: ModelService) -> None:
    task = service.meta["task"]

    async def causal_lm_only() -> None:
        if task not in CAUSAL_LM_TASKS:
            raise ApiError(
                404,
                "not_a_causal_lm",
                f"this server's model is a {task} model, not a causal LM; "
                "/v1/chat/completions serves causal LM artifacts only",
                "use POST /v1/predict for this model",
            )

    @router.post(
        "/v1/chat/completions",
        response_model=ChatResponse,
        tags=["model"],
        summary="OpenAI-style chat completion (causal LM artifacts only; 404 for other models); "
        "stream=true answers text/event-stream chat.completion.chunk events",
        dependencies=[Depends(causal_lm_only)],
        responses={404: ERROR, 413: ERROR, 415: ERROR, 422: ERROR, 503: ERROR},
    )
    async def chat(body: ChatRequest) -> Any:
        if not service.ready:
            raise service.not_ready()
        messages = _chat_messages(body, service.limits.max_chars)
        predictor = service.predictor
        max_tokens = min(body.max_tokens or predictor.max_new_tokens, MAX_CHAT_TOKENS)
        temperature, top_p = float(body.temperature or 0.0), float(body.top_p or 1.0)
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": service.version}
        if body.stream:
            chunks = _chat_stream(predictor, messages, max_tokens, temperature, top_p, head)
            return StreamingResponse(chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        try:
            text, reason, usage = await asyncio.to_thread(predictor.chat, messages, max_tokens, temperature, top_p)
        except UserError as e:
            raise ApiError(422, "invalid_request", e.message, e.hint) from None
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}
        return JSONResponse({**head, "object": "chat.completion", "choices": [choice], "usage": usage})


def _chat_messages(body: ChatRequest, max_chars: int) -> list[dict[str, str]]:
    """The conversation, checked: a user turn, not ending with the assistant, no empty message,
    at most ``max_chars`` characters in all (413), control characters and lone surrogates made safe."""
    messages = [{"role": m.role, "content": m.content} for m in body.messages]
    total = sum(len(m["content"]) for m in messages)
    if total > max_chars:
        raise ApiError(
            413,
            "payload_too_large",
            f"the messages have {total} characters, over the limit of {max_chars}",
            "shorten the conversation (drop old turns), or raise FIELDTUNE_MAX_CHARS on the server",
        )
    for i, m in enumerate(messages):
        m["content"] = _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", m["content"]))
        if not m["content"].strip():
            raise ApiError(422, "invalid_request", f"messages[{i}] is empty", "give every message some content")
    if not any(m["role"] == "user" for m in messages) or messages[-1]["role"] == "assistant":
        raise ApiError(
            422,
            "invalid_request",
            "the conversation needs a user message and must not end with the assistant",
            "end the messages with the user turn the model should answer",
        )
    return messages


async def _chat_stream(
    predictor: Any, messages: list[dict[str, str]], max_tokens: int, temperature: float, top_p: float, head: dict
) -> AsyncIterator[str]:
    """Server-sent events: a role chunk, content chunks as tokens come, a finish chunk with usage,
    ``[DONE]``. Generation runs in a thread; a client that goes away stops it (``cancel``)."""
    loop, queue, cancel = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()

    def put(event: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening any more
            loop.call_soon_threadsafe(queue.put_nowait, event)

    def work() -> None:
        try:
            for event in predictor.stream(messages, max_tokens, temperature, top_p, cancel=cancel):
                put(event)
        except Exception as e:  # noqa: BLE001 - sent to the client as an error event
            put({"error": str(e) or type(e).__name__})
        finally:
            put(None)

    def sse(delta: dict, finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return f"data: {json.dumps({**head, 'object': 'chat.completion.chunk', 'choices': [choice], **extra})}\n\n"

    worker = loop.run_in_executor(None, work)
    try:
        yield sse({"role": "assistant", "content": ""})
        while (event := await queue.get()) is not None:
            if "delta" in event:
                yield sse({"content": event["delta"]})
            elif "error" in event:
                error = {"type": "generation_failed", "message": event["error"], "hint": "retry; see the server log"}
                yield f"data: {json.dumps({'error': error})}\n\n"
            else:
                yield sse({}, event["finish_reason"], usage=event["usage"])
        yield "data: [DONE]\n\n"
        await worker
    finally:
        cancel.set()

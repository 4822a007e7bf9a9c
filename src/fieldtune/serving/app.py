"""The FastAPI app: ``create_app(model_dir, ...)`` builds one server for one model.

Routes: ``POST /v1/predict``, ``POST /v1/chat/completions`` (causal LMs only; 404 otherwise),
``GET /health``, ``GET /ready``, ``GET /metadata``, ``GET /metrics``. OpenAPI at ``/openapi.json``.

(No ``from __future__ import annotations`` here: FastAPI reads the route functions' annotations,
and the request model is built per app.)
"""

import os
import secrets
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .. import __version__
from .errors import ApiError, JSONBodyRoute, install_error_handlers
from .limits import BodyLimitMiddleware, clean_texts
from .metrics import MetricsMiddleware, ServingMetrics
from .model import CAUSAL_LM_TASKS, check_model_dir, json_safe, model_version
from .schemas import (
    ChatRequest,
    ChatResponse,
    ErrorResponse,
    Health,
    Metadata,
    PredictResponse,
    Readiness,
    predict_request_model,
)
from .service import Limits, ModelService
from .settings import BACKEND_ENV, MODEL_DIR_ENV, limits_from_env, token_from_env

ERROR = {"model": ErrorResponse}


def create_app(
    model_dir: str | Path,
    *,
    backend: str = "auto",
    max_batch: int = 32,
    max_wait_ms: float = 5,
    max_inputs: int = 64,
    max_chars: int = 10_000,
    max_body_bytes: int = 1_000_000,
    token: str | None = None,
    batching: bool = True,
    predictor: Any = None,
    background_load: bool = True,
) -> FastAPI:
    """A server for the model in ``model_dir`` (a run folder or its ``model/``).

    Raises a ``UserError`` at once if the folder is not a fieldtune model. The weights load when
    the app starts (its lifespan), in the background unless ``background_load=False``; pass an
    already-loaded ``predictor`` to skip loading. ``token`` (default: env ``FIELDTUNE_API_TOKEN``)
    turns on bearer auth for ``/v1/*`` and ``/metadata``. ``batching=False`` runs every request as
    its own model call.
    """
    model_dir, meta = check_model_dir(model_dir, backend)
    token = token if token is not None else token_from_env()
    limits = Limits(max_inputs, max_chars, max_body_bytes, max_batch, max_wait_ms, batching)
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
    )
    app = FastAPI(
        title="fieldtune",
        version=__version__,
        lifespan=service.lifespan,
        description=f"Serving a {meta['task']} model, version {version}.",  # no server paths
    )
    app.state.service, app.state.metrics, app.state.model_version = service, metrics, version
    install_error_handlers(app, metrics.count_error)
    app.include_router(_probe_routes(service, metrics, version))
    app.include_router(_api_routes(service, version, token))
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes, count=metrics.count_error)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees every final status
    return app


def app_from_env() -> FastAPI:
    """Uvicorn factory (``fieldtune.serving.app:app_from_env``, ``factory=True``) for
    ``--workers N``: the model folder and backend come from ``FIELDTUNE_MODEL_DIR`` and
    ``FIELDTUNE_BACKEND``, the limits from their variables (see ``settings``)."""
    if MODEL_DIR_ENV not in os.environ:
        raise RuntimeError(f"{MODEL_DIR_ENV} is not set; start the server with `fieldtune serve MODEL`")
    return create_app(os.environ[MODEL_DIR_ENV], backend=os.environ.get(BACKEND_ENV, "auto"), **limits_from_env())


def _probe_routes(service: ModelService, metrics: ServingMetrics, version: str) -> APIRouter:
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
        body = {"status": service.state, "model_version": version, "error": service.error}
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


def _api_routes(service: ModelService, version: str, token: str | None) -> APIRouter:
    """/metadata, /v1/predict, /v1/chat/completions; behind the bearer token when one is set."""
    deps = [Depends(_bearer(token))] if token else []
    auth_error = {401: ERROR} if token else {}
    router = APIRouter(dependencies=deps, route_class=JSONBodyRoute, responses=auth_error)
    _add_metadata(router, service, version)
    _add_predict(router, service, version)
    _add_chat(router, service)
    return router


def _add_metadata(router: APIRouter, service: ModelService, version: str) -> None:
    meta = service.meta

    @router.get("/metadata", response_model=Metadata, tags=["model"], summary="what this server serves")
    async def metadata() -> JSONResponse:
        body = {
            "task": meta["task"],
            "labels": meta["labels"],
            "model_version": version,
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


def _add_predict(router: APIRouter, service: ModelService, version: str) -> None:
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
        outputs = await service.predict(texts, body.parameters.top_k)
        ids = [uuid.uuid4().hex for _ in texts]
        return JSONResponse({"model_version": version, "predictions": json_safe(outputs), "ids": ids})


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
        summary="OpenAI-style chat completion (causal LM artifacts only; 404 for other models)",
        dependencies=[Depends(causal_lm_only)],
        responses={404: ERROR, 415: ERROR, 422: ERROR, 501: ERROR},
    )
    async def chat(body: ChatRequest) -> ChatResponse:
        raise ApiError(
            501,
            "not_implemented",
            "chat generation is not implemented in this fieldtune version",
            "use POST /v1/predict",
        )

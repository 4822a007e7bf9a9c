"""The routes of a server: probes (/health, /ready, /metrics, always open) and the API
(/metadata, /v1/models, /v1/predict, /v1/explain, /v1/feedback, /v1/chat/completions), behind a
bearer token when one is set.

(No ``from __future__ import annotations`` here: FastAPI reads the route functions' annotations,
and the request model is built per app.)
"""

import asyncio
import secrets
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..errors import UserError
from ..tasks import get_task
from ..utils.jsonsafe import json_safe
from .chat import add_chat
from .errors import ApiError, JSONBodyRoute
from .explain import add_explain
from .limits import clean_texts
from .metrics import ServingMetrics
from .schemas import (
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    Metadata,
    PredictResponse,
    Readiness,
    predict_request_model,
)
from .service import ModelService

ERROR = {"model": ErrorResponse}


def probe_routes(service: ModelService, metrics: ServingMetrics) -> APIRouter:
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


def api_routes(service: ModelService, token: str | None) -> APIRouter:
    """/metadata, /v1/predict, /v1/feedback, /v1/chat/completions; behind the bearer token when set."""
    deps = [Depends(_bearer(token))] if token else []
    auth_error = {401: ERROR} if token else {}
    router = APIRouter(dependencies=deps, route_class=JSONBodyRoute, responses=auth_error)
    _add_metadata(router, service)
    _add_models(router, service)
    _add_predict(router, service)
    _add_feedback(router, service)
    add_explain(router, service)
    add_chat(router, service)
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
            "causal_lm": get_task(meta["task"]).chat,
            "limits": service.limits.as_dict(),
        }
        return JSONResponse(json_safe(body))


def _add_models(router: APIRouter, service: ModelService) -> None:
    """``GET /v1/models`` (+ ``/v1/models/{id}``) in OpenAI's shape: many OpenAI clients list models
    before their first chat call. The id is the model version, as ``model`` in chat completions."""

    def card() -> dict[str, Any]:
        try:
            created = int(datetime.fromisoformat(str(service.meta.get("created"))).timestamp())
        except ValueError:
            created = 0
        return {"id": service.version, "object": "model", "created": created, "owned_by": "fieldtune"}

    @router.get("/v1/models", tags=["model"], summary="OpenAI-style list of the served model (one)")
    async def models() -> JSONResponse:
        return JSONResponse({"object": "list", "data": [card()]})

    @router.get("/v1/models/{model_id}", tags=["model"], summary="OpenAI-style model card", responses={404: ERROR})
    async def model(model_id: str) -> JSONResponse:
        if model_id != service.version:
            raise ApiError(
                404, "model_not_found", f"this server serves {service.version}, not {model_id}", "GET /v1/models"
            )
        return JSONResponse(card())


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
            label = get_task(service.meta["task"]).check_correction(service.meta["labels"], text, body.correction())
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

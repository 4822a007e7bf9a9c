"""``POST /v1/explain``: per-word attributions for one text from the served model, the same JSON as
``fieldtune explain MODEL TEXT --json`` plus ``model_version``.

(No ``from __future__ import annotations`` here: FastAPI reads the route functions' annotations,
and the request model is built per app.)
"""

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..errors import UserError
from ..explain import explain
from ..utils.jsonsafe import json_safe
from .errors import ApiError
from .limits import clean_texts
from .schemas import ErrorResponse, ExplainResponse, explain_request_model
from .service import ModelService

ERROR = {"model": ErrorResponse}


def add_explain(router: APIRouter, service: ModelService) -> None:
    """Add ``/v1/explain`` to ``router``."""
    limits = service.limits
    request_model = explain_request_model(limits.max_chars)

    @router.post(
        "/v1/explain",
        response_model=ExplainResponse,
        response_model_exclude_none=True,
        tags=["model"],
        summary="per-word attributions for one text (integrated gradients or occlusion)",
        responses={413: ERROR, 415: ERROR, 422: ERROR, 503: ERROR},
    )
    async def explain_text(body: request_model) -> JSONResponse:  # type: ignore[valid-type]
        if not service.ready:
            raise service.not_ready()
        [text] = clean_texts(body.inputs, 1, limits.max_chars)
        served = service.current  # the model that explains, even if a hot reload swaps it meanwhile
        span = tuple(body.span) if body.span else None
        try:
            result = await asyncio.to_thread(
                explain, served.predictor, text, label=body.label, method=body.method, steps=body.steps, span=span
            )
        except UserError as e:
            raise ApiError(422, "invalid_request", e.message, e.hint) from None
        return JSONResponse(json_safe({"model_version": served.version, **result}))

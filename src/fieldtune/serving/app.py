"""The FastAPI app: ``create_app(model_dir, ...)`` builds one server for one model.

Routes (:mod:`.routes`, :mod:`.chat`): ``POST /v1/predict``, ``POST /v1/feedback`` (with a store),
``POST /v1/chat/completions`` (causal LMs only; 404 otherwise), ``GET /health``, ``GET /ready``,
``GET /metadata``, ``GET /metrics``. OpenAPI at ``/openapi.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from ..artifacts import model_version
from ..errors import UserError
from ..store import Store
from ..version import __version__
from .errors import install_error_handlers
from .limits import BodyLimitMiddleware
from .metrics import MetricsMiddleware, ServingMetrics
from .model import check_served_model, is_onnx
from .routes import api_routes, probe_routes
from .service import LOG_INPUTS, Limits, ModelService
from .settings import BACKEND_ENV, MODEL_DIR_ENV, limits_from_env, log_inputs_from_env, token_from_env

STORE_ENV = "FIELDTUNE_SERVE_STORE"


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
    model_dir, meta = check_served_model(champion_dir(store) if watch else model_dir, backend)
    token = token if token is not None else token_from_env()
    batching, inference_threads = _parallelism(is_onnx(model_dir, backend), batching, inference_threads)
    limits = Limits(max_inputs, max_chars, max_body_bytes, max_batch, max_wait_ms, batching, inference_threads)
    metrics = ServingMetrics(model_version(meta), meta["task"])
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
    return _app(service, metrics, token)


def _parallelism(onnx: bool, batching: bool | None, inference_threads: int | None) -> tuple[bool, int]:
    """(batching, inference threads): batches for PyTorch; for ONNX Runtime one call per core."""
    if batching is None:
        batching = not onnx
    if inference_threads is None:
        inference_threads = 1 if batching else (os.cpu_count() or 1) if onnx else 1
    if batching:
        inference_threads = 1  # one batch at a time: the batch is the parallelism
    return batching, inference_threads


def _app(service: ModelService, metrics: ServingMetrics, token: str | None) -> FastAPI:
    """The FastAPI app around ``service``: routes, error shapes, body limit and metrics middleware."""
    version = service.version
    app = FastAPI(
        title="fieldtune",
        version=__version__,
        lifespan=service.lifespan,
        description=f"Serving a {service.meta['task']} model, version {version}.",  # no server paths
    )
    app.state.service, app.state.metrics, app.state.model_version = service, metrics, version
    install_error_handlers(app, metrics.count_error)
    app.include_router(probe_routes(service, metrics))
    app.include_router(api_routes(service, token))
    app.add_middleware(BodyLimitMiddleware, max_bytes=service.limits.max_body_bytes, count=metrics.count_error)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees every final status
    return app


def app_from_env() -> FastAPI:
    """Uvicorn factory (``fieldtune.serving.app:app_from_env``, ``factory=True``) for
    ``--workers N``: the model folder and backend come from ``FIELDTUNE_MODEL_DIR`` and
    ``FIELDTUNE_BACKEND``, the limits from their variables (see ``settings``)."""
    if MODEL_DIR_ENV not in os.environ:
        raise RuntimeError(f"{MODEL_DIR_ENV} is not set; start the server with `fieldtune serve MODEL`")
    model = os.environ[MODEL_DIR_ENV] or None  # empty: the registry's champion
    store = Store() if os.environ.get(STORE_ENV) == "1" else None
    return create_app(
        model,
        backend=os.environ.get(BACKEND_ENV, "auto"),
        store=store,
        log_inputs=log_inputs_from_env(),
        **limits_from_env(),
    )


def champion_dir(store: Any) -> str:
    """The registry champion's folder, or a UserError when there is no store or no champion."""
    if store is None:
        raise UserError("no model folder and no store to take the registry's champion from")
    champion = store.champion()
    if champion is None:
        raise UserError(
            "the registry has no champion to serve",
            hint="fieldtune registry add RUN_DIR --promote (or pass a model folder to serve)",
        )
    return champion.path

"""The model behind the routes: loading (in the background, so /health answers at once and
/ready says when the model is in), the micro-batcher, draining on shutdown, and, with a store,
prediction logging, feedback and hot-reloading the registry's champion."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..artifacts import model_version
from ..errors import UserError
from ..predict import load_predictor
from ..store.registry import verify
from ..tasks import Task, get_task
from ..utils.hashing import text_sha256
from .batcher import BatcherClosed, MicroBatcher
from .errors import ApiError
from .metrics import ServingMetrics
from .model import check_served_model
from .recorder import PredictionRecorder

log = logging.getLogger("fieldtune.serving")


@dataclass(frozen=True)
class Limits:
    """Per-request limits and batching settings of one server."""

    max_inputs: int = 64
    max_chars: int = 10_000
    max_body_bytes: int = 1_000_000
    max_batch: int = 32
    max_wait_ms: float = 5.0
    batching: bool = True
    inference_threads: int = 1  # model calls that may run at once (batching off only)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Served:
    """The model being served; swapped as a whole on a hot reload."""

    model_dir: Path
    meta: dict[str, Any]
    version: str
    predictor: Any = None

    @property
    def task(self) -> Task:
        """The model's task: it summarises the outputs for the prediction log."""
        return get_task(self.meta["task"])


LOG_INPUTS = ("text", "hash", "off")


class ModelService:
    """Owns the Predictor and the batcher of one app."""

    def __init__(
        self,
        model_dir: Path,
        meta: dict[str, Any],
        *,
        backend: str,
        limits: Limits,
        metrics: ServingMetrics,
        predictor: Any = None,
        background_load: bool = True,
        drain_timeout: float = 30.0,
        store: Any = None,
        log_inputs: str = "text",
        watch_registry: bool = False,
        reload_interval: float = 2.0,
    ) -> None:
        self.current = Served(model_dir, meta, model_version(meta), predictor)
        self.backend, self.limits, self.metrics = backend, limits, metrics
        self.background_load, self.drain_timeout = background_load, drain_timeout
        self.state, self.error = ("ready" if predictor is not None else "loading"), None
        self.store, self.log_inputs = store, log_inputs
        self.watch_registry, self.reload_interval = watch_registry, reload_interval
        self.recorder = (
            PredictionRecorder(store, on_error=metrics.count_error) if store and log_inputs != "off" else None
        )
        self.batcher = MicroBatcher(
            self._predict,
            max_batch=limits.max_batch,
            max_wait_ms=limits.max_wait_ms,
            batching=limits.batching,
            on_batch=metrics.observe_batch,
            workers=limits.inference_threads,
        )
        self._loader: asyncio.Task | None = None
        self._watcher: asyncio.Task | None = None
        self._failed_versions: set[str] = set()
        self.reloads = 0

    @property
    def meta(self) -> dict[str, Any]:
        return self.current.meta

    @property
    def version(self) -> str:
        return self.current.version

    @property
    def predictor(self) -> Any:
        return self.current.predictor

    @property
    def model_dir(self) -> Path:
        return self.current.model_dir

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """FastAPI lifespan: start the batcher and the model load; at shutdown drain the work."""
        await self.batcher.start()
        if self.recorder is not None:
            await self.recorder.start()
        if self.watch_registry:
            self._watcher = asyncio.create_task(self._watch(), name="fieldtune-registry-watch")
        if self.predictor is None:
            if self.background_load:
                self._loader = asyncio.create_task(self._load(), name="fieldtune-load")
            else:
                await self._load()
        try:
            yield
        finally:
            for task in (self._loader, self._watcher):
                if task is not None and not task.done():
                    task.cancel()
            await self.batcher.stop(self.drain_timeout)
            if self.recorder is not None:
                await self.recorder.stop()

    async def _load(self) -> None:
        """Load and warm up the model in a thread; failures are kept for /ready, never raised."""
        try:
            predictor = await asyncio.to_thread(self._load_and_warm, self.model_dir)
            self.current = replace(self.current, predictor=predictor)
            self.state = "ready"
            log.info("model %s loaded", self.model_dir)
        except Exception as e:  # noqa: BLE001 - reported by /ready and /v1/predict
            self.state, self.error = "failed", str(e) or type(e).__name__
            log.error("cannot load model %s: %s", self.model_dir, self.error)

    def _load_and_warm(self, model_dir: Path) -> Any:
        threads = max(1, (os.cpu_count() or 1) // self.limits.inference_threads)  # no oversubscription
        predictor = load_predictor(model_dir, backend=self.backend, threads=threads)
        predictor.predict(["warm up"])  # first-call costs (allocations, kernels) off the first request
        return predictor

    def _predict(self, texts: list[str], top_k: int | None) -> list[Any]:
        """Runs in the inference thread (the batcher's). Each output carries the served model that
        made it (its version, and its task to summarise it): a hot reload between two batches is
        visible per prediction."""
        served = self.current
        return [(served, out) for out in served.predictor.predict(texts, top_k=top_k)]

    async def predict(self, texts: list[str], top_k: int | None) -> tuple[str, list[Any], list[str]]:
        """(model version, outputs, prediction ids) for ``texts``, through the batcher; 503 while
        loading or shutting down. With a store, the predictions are queued for logging."""
        if not self.ready:
            raise self.not_ready()
        started = time.perf_counter()
        try:
            tagged = await self.batcher.submit(texts, top_k)
        except BatcherClosed as e:
            raise ApiError(
                503,
                "shutting_down",
                str(e),
                "retry against another replica or after the restart",
                headers={"Retry-After": "1"},
            ) from None
        except UserError as e:
            raise ApiError(422, "invalid_request", e.message, e.hint) from None
        latency_ms = (time.perf_counter() - started) * 1000
        ids = [uuid.uuid4().hex for _ in texts]
        outputs = [out for _, out in tagged]
        if self.recorder is not None:
            self.recorder.add(self._log_rows(ids, texts, tagged, latency_ms))
        return tagged[0][0].version, outputs, ids

    def _log_rows(self, ids: list[str], texts: list[str], tagged: list[Any], latency_ms: float) -> list[dict]:
        now = datetime.now(timezone.utc)
        rows = []
        for pid, text, (served, out) in zip(ids, texts, tagged):
            label, confidence = served.task.summarize(out)
            rows.append(
                {
                    "id": pid,
                    "model_version": served.version,
                    "created_at": now,
                    "text": text if self.log_inputs == "text" else None,
                    "text_hash": text_sha256(text),
                    "output": out,
                    "label": label,
                    "confidence": confidence,
                    "latency_ms": round(latency_ms / len(texts), 3),
                }
            )
        return rows

    async def find_prediction(self, prediction_id: str) -> Any:
        """The logged prediction (written first if it is still queued), or None."""
        if self.recorder is not None and self.recorder.pending(prediction_id):
            await self.recorder.flush()
        return await asyncio.to_thread(self.store.prediction, prediction_id)

    async def _watch(self) -> None:
        """Poll the registry; when the champion changes, load it beside the old one and swap.
        Requests keep flowing to the old model until the new one is loaded and warm."""
        while True:
            await asyncio.sleep(self.reload_interval)
            try:
                await self.reload_if_promoted()
            except Exception as e:  # noqa: BLE001 - keep serving the current model
                log.error("registry watch failed: %s", e)

    async def reload_if_promoted(self) -> bool:
        champion = await asyncio.to_thread(self.store.champion)
        if champion is None or champion.version == self.version or champion.version in self._failed_versions:
            return False
        try:
            await asyncio.to_thread(verify, champion, load=False)
            model_dir, meta = check_served_model(champion.path, self.backend)
            predictor = await asyncio.to_thread(self._load_and_warm, model_dir)
        except Exception as e:  # noqa: BLE001 - a bad champion is never served
            self._failed_versions.add(champion.version)
            self.metrics.count_error("reload_failed")
            log.error("cannot serve the new champion %s, keeping %s: %s", champion.version, self.version, e)
            return False
        old = self.version
        self.current = Served(model_dir, meta, model_version(meta), predictor)
        self.state, self.error, self.reloads = "ready", None, self.reloads + 1
        self.metrics.set_model(self.version, meta["task"])
        log.info("hot-reloaded the champion: %s -> %s", old, self.version)
        return True

    def not_ready(self) -> ApiError:
        if self.state == "failed":
            return ApiError(
                503,
                "model_failed",
                f"the model could not be loaded: {self.error}",
                "check the server log and the model folder, then restart the server",
            )
        return ApiError(
            503,
            "not_ready",
            "the model is still loading",
            "retry in a few seconds (GET /ready)",
            headers={"Retry-After": "2"},
        )

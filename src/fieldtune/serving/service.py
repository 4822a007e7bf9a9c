"""The model behind the routes: loading (in the background, so /health answers at once and
/ready says when the model is in), the micro-batcher, and draining on shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from .batcher import BatcherClosed, MicroBatcher
from .errors import ApiError
from .metrics import ServingMetrics
from .model import load_predictor

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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    ) -> None:
        self.model_dir, self.meta, self.backend, self.limits = model_dir, meta, backend, limits
        self.predictor, self.background_load, self.drain_timeout = (
            predictor,
            background_load,
            drain_timeout,
        )
        self.state, self.error = ("ready" if predictor is not None else "loading"), None
        self.batcher = MicroBatcher(
            self._predict,
            max_batch=limits.max_batch,
            max_wait_ms=limits.max_wait_ms,
            batching=limits.batching,
            on_batch=metrics.observe_batch,
        )
        self._loader: asyncio.Task | None = None

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """FastAPI lifespan: start the batcher and the model load; at shutdown drain the work."""
        await self.batcher.start()
        if self.predictor is None:
            if self.background_load:
                self._loader = asyncio.create_task(self._load(), name="fieldtune-load")
            else:
                await self._load()
        try:
            yield
        finally:
            if self._loader is not None and not self._loader.done():
                self._loader.cancel()
            await self.batcher.stop(self.drain_timeout)

    async def _load(self) -> None:
        """Load and warm up the model in a thread; failures are kept for /ready, never raised."""
        try:
            self.predictor = await asyncio.to_thread(self._load_and_warm)
            self.state = "ready"
            log.info("model %s loaded", self.model_dir)
        except Exception as e:  # noqa: BLE001 - reported by /ready and /v1/predict
            self.state, self.error = "failed", str(e) or type(e).__name__
            log.error("cannot load model %s: %s", self.model_dir, self.error)

    def _load_and_warm(self) -> Any:
        predictor = load_predictor(self.model_dir, self.backend)
        predictor.predict(["warm up"])  # first-call costs (allocations, kernels) off the first request
        return predictor

    def _predict(self, texts: list[str], top_k: int | None) -> list[Any]:
        """Runs in the inference thread (the batcher's)."""
        return self.predictor.predict(texts, top_k=top_k)

    async def predict(self, texts: list[str], top_k: int | None) -> list[Any]:
        """Outputs for ``texts``, through the batcher; 503 while loading or shutting down."""
        if not self.ready:
            raise self.not_ready()
        try:
            return await self.batcher.submit(texts, top_k)
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

"""Logging served predictions to the store, off the request path.

Requests only append rows to a list; a background task writes them in batches (every
``flush_s`` or once ``max_rows`` are waiting) in a thread. A failed write keeps its rows and is
retried, and shutdown writes everything still pending, so an answered prediction is not lost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("fieldtune.serving")


class PredictionRecorder:
    def __init__(self, store: Any, *, flush_s: float = 0.2, max_rows: int = 512, on_error: Any = None) -> None:
        self.store, self.flush_s, self.max_rows, self.on_error = store, flush_s, max_rows, on_error
        self._pending: list[dict[str, Any]] = []
        self._ids: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._task: asyncio.Task | None = None
        self.written = 0

    async def start(self) -> None:
        self._wake, self._lock = asyncio.Event(), asyncio.Lock()
        self._task = asyncio.create_task(self._run(), name="fieldtune-recorder")

    def add(self, rows: list[dict[str, Any]]) -> None:
        self._pending.extend(rows)
        self._ids.update(r["id"] for r in rows)
        if len(self._pending) >= self.max_rows and self._wake is not None:
            self._wake.set()

    def pending(self, prediction_id: str) -> bool:
        return prediction_id in self._ids

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    async def flush(self) -> bool:
        """Write what is pending; False (rows kept for the next try) if the database failed."""
        async with self._lock:
            rows, self._pending = self._pending, []
            if not rows:
                return True
            try:
                await asyncio.to_thread(self.store.log_predictions, rows)
            except Exception as e:  # noqa: BLE001 - keep the rows, retry on the next flush
                self._pending = rows + self._pending
                log.error("could not log %d predictions (will retry): %s", len(rows), e)
                if self.on_error:
                    self.on_error("prediction_log")
                return False
            self.written += len(rows)
            self._ids.difference_update(r["id"] for r in rows)
            return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for attempt in range(5):
            if await self.flush():
                return
            await asyncio.sleep(0.2 * (attempt + 1))
        log.error("shutting down with %d predictions not logged", len(self._pending))

"""Micro-batching: concurrent requests' texts share one model call.

Callers ``await batcher.submit(texts, top_k)``. A single asyncio worker takes the first queued
job, then keeps collecting jobs for up to ``max_wait_ms`` or until ``max_batch`` texts are
waiting. Jobs are grouped by their parameters (``top_k``) — different parameters are never mixed
in one call — and each group runs as ONE ``predict(texts, top_k)`` call in a single worker thread
(never on the event loop). The outputs are split back to each caller's future in order.

A single request with more than ``max_batch`` texts runs alone, as one call. With
``batching=False`` every request runs directly as its own call (same thread, same metrics), which
is what the on/off benchmark compares against.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

PredictFn = Callable[[list[str], Any], list[Any]]
BatchHook = Callable[[int, float], None]


class BatcherClosed(RuntimeError):
    """Raised by :meth:`MicroBatcher.submit` once shutdown has begun."""


@dataclass
class _Job:
    texts: list[str]
    key: Hashable
    future: asyncio.Future = field(repr=False)


_STOP = object()


class MicroBatcher:
    """Groups concurrent predictions into few model calls, off the event loop.

    Args:
        predict: ``predict(texts, key)`` -> one output per text; runs in a worker thread.
        max_batch: Most texts per model call (a bigger single request runs alone).
        max_wait_ms: How long the first job of a batch waits for company.
        batching: ``False`` runs every request as its own call.
        on_batch: Called with (texts in the call, seconds it took) after every model call.
        workers: With ``batching=False``, how many calls may run at once (inference threads).
    """

    def __init__(
        self,
        predict: PredictFn,
        *,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        batching: bool = True,
        on_batch: BatchHook | None = None,
        workers: int = 1,
    ) -> None:
        self.predict, self.max_batch, self.max_wait = (
            predict,
            max(1, max_batch),
            max(0.0, max_wait_ms) / 1000,
        )
        self.batching, self.on_batch, self.workers = batching, on_batch, max(1, workers)
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._direct: set[asyncio.Future] = set()
        self._closing = False

    async def start(self) -> None:
        """Create the queue, the worker task and the inference thread (inside the running loop)."""
        # batched calls run one at a time; unbatched ones may run ``workers`` at once (ONNX Runtime
        # sessions are thread-safe, and one short text cannot use several cores well)
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="fieldtune-predict")
        self._closing = False
        if self.batching:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._run(), name="fieldtune-batcher")

    async def submit(self, texts: list[str], key: Hashable = None) -> list[Any]:
        """Predict ``texts`` with parameters ``key``; returns one output per text, in order."""
        if self._closing or self._executor is None:
            raise BatcherClosed("the server is shutting down")
        if not self.batching:
            return await self._call_direct(texts, key)
        job = _Job(list(texts), key, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(job)  # type: ignore[union-attr]
        return await job.future

    async def stop(self, timeout: float | None = 30.0) -> None:
        """Refuse new work, finish every queued and running job, then release the thread."""
        if self._executor is None:
            return
        self._closing = True
        pending = list(self._direct)
        if self._worker is not None:
            self._queue.put_nowait(_STOP)  # type: ignore[union-attr]
            pending.append(self._worker)
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            self._fail_queued()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor, self._worker = None, None

    def _fail_queued(self) -> None:
        """After a drain that timed out: every job still queued gets an error, none hangs."""
        while not self._queue.empty():  # type: ignore[union-attr]
            job = self._queue.get_nowait()  # type: ignore[union-attr]
            if job is not _STOP and not job.future.done():
                job.future.set_exception(BatcherClosed("the server shut down before this request ran"))

    async def _call_direct(self, texts: list[str], key: Hashable) -> list[Any]:
        future = asyncio.ensure_future(self._call(list(texts), key))
        self._direct.add(future)
        try:
            return await asyncio.shield(future)
        finally:
            if future.done():
                self._direct.discard(future)
            else:
                future.add_done_callback(self._direct.discard)

    async def _call(self, texts: list[str], key: Hashable) -> list[Any]:
        """One model call in the inference thread."""
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        outputs = await loop.run_in_executor(self._executor, self.predict, texts, key)
        if self.on_batch is not None:
            self.on_batch(len(texts), time.perf_counter() - start)
        if len(outputs) != len(texts):
            raise RuntimeError(f"model returned {len(outputs)} outputs for {len(texts)} texts")
        return outputs

    async def _run(self) -> None:
        """Worker: collect a window of jobs, run them grouped, repeat until told to stop."""
        stop = False
        while not stop:
            jobs, stop = await self._collect()
            for chunk in self._chunks(jobs):
                await self._run_chunk(chunk)

    async def _collect(self) -> tuple[list[_Job], bool]:
        """Block for one job, then gather more until ``max_batch`` texts or ``max_wait``."""
        queue = self._queue
        first = await queue.get()  # type: ignore[union-attr]
        if first is _STOP:
            return [], True
        jobs, size = [first], len(first.texts)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch:
            item = await self._next(deadline)
            if item is None:
                break
            if item is _STOP:
                return jobs, True
            jobs.append(item)
            size += len(item.texts)
        return jobs, False

    async def _next(self, deadline: float) -> Any:
        """The next queued item, or ``None`` once ``deadline`` has passed."""
        queue = self._queue
        if not queue.empty():  # type: ignore[union-attr]
            return queue.get_nowait()  # type: ignore[union-attr]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            return await asyncio.wait_for(queue.get(), remaining)  # type: ignore[union-attr]
        except asyncio.TimeoutError:
            return None

    def _chunks(self, jobs: list[_Job]) -> list[list[_Job]]:
        """Group jobs by parameters (first-come order); pack each group into calls <= max_batch."""
        groups: dict[Hashable, list[_Job]] = {}
        for job in jobs:
            groups.setdefault(job.key, []).append(job)
        chunks: list[list[_Job]] = []
        for group in groups.values():
            chunk: list[_Job] = []
            for job in group:
                if chunk and sum(len(j.texts) for j in chunk) + len(job.texts) > self.max_batch:
                    chunks.append(chunk)
                    chunk = []
                chunk.append(job)
            chunks.append(chunk)
        return chunks

    async def _run_chunk(self, chunk: list[_Job]) -> None:
        """One call for the chunk; outputs are split back per job. A failing chunk is retried
        per job,
        so one bad request cannot fail its neighbours."""
        live = [job for job in chunk if not job.future.done()]  # a caller may have gone away
        if not live:
            return
        texts = [t for job in live for t in job.texts]
        try:
            outputs = await self._call(texts, live[0].key)
        except Exception as e:  # noqa: BLE001 - handed to the callers
            if len(live) > 1:
                for job in live:
                    await self._run_chunk([job])
            elif not live[0].future.done():
                live[0].future.set_exception(e)
            return
        start = 0
        for job in live:
            if not job.future.done():
                job.future.set_result(outputs[start : start + len(job.texts)])
            start += len(job.texts)

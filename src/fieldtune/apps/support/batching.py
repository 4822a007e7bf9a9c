"""Micro-batching for the support server: concurrent customers' messages share one model call.

The chat route runs in FastAPI's thread pool and calls ``ask`` as usual; :class:`BatchedAssistant`
queues the message, and one worker thread takes the first waiting message, collects others for up to
``max_wait_ms`` (or ``max_batch`` of them), and answers them all with one :meth:`Assistant.ask_many`
(one forward pass of the intent model, one batched retrieval). Everything else (``templates``,
``suggest``, ``reload_kb``, ``store`` ...) passes straight to the assistant. ``fieldtune serve``'s
:class:`~fieldtune.serving.batcher.MicroBatcher` does the same for asyncio routes; these routes are
plain functions (their database work must stay off the event loop), hence threads here.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

from .assistant import Assistant, check_message


class BatchedAssistant:
    """An :class:`Assistant` whose ``ask`` calls are answered in batches (see the module docstring).

    Args:
        assistant: The assistant.
        max_batch: Most messages per model call.
        max_wait_ms: How long the first message of a batch waits for company.
    """

    def __init__(self, assistant: Assistant, max_batch: int = 16, max_wait_ms: float = 5.0) -> None:
        self.assistant, self.max_batch, self.max_wait = assistant, max(1, max_batch), max(0.0, max_wait_ms) / 1000
        self._queue: queue.Queue = queue.Queue()
        self.batches: list[int] = []  # sizes of the last calls (kept short), for tests and benchmarks
        threading.Thread(target=self._run, name="support-batcher", daemon=True).start()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.assistant, name)

    def ask(self, message: str, history: list[dict[str, Any]] | None = None, write: bool = True) -> dict[str, Any]:
        """The assistant's reply, computed together with whatever other messages are waiting; a reply
        writer's answer is written here, in the caller's thread, so that the batch never waits on it."""
        check_message(message)  # a bad message fails alone, never its batch
        future: Future = Future()
        self._queue.put((message, history or [], future))
        reply = future.result()
        return self.assistant.write(reply, message) if write and self.assistant.writer is not None else reply

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + self.max_wait
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            self.batches = [*self.batches[-99:], len(batch)]
            try:
                replies = self.assistant.ask_many([(m, h) for m, h, _ in batch], write=False)
            except Exception as e:  # noqa: BLE001 - every waiting caller gets the error, none hangs
                for *_, future in batch:
                    future.set_exception(e)
                continue
            for (*_, future), reply in zip(batch, replies):
                future.set_result(reply)

"""``POST /v1/chat/completions``: OpenAI-style chat for models whose task chats (causal LMs; 404 for
the others), answered whole or streamed as server-sent events.

(No ``from __future__ import annotations`` here: FastAPI reads the route functions' annotations.)
"""

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse

from ..errors import UserError
from ..tasks import get_task
from .errors import ApiError
from .limits import clean_text
from .schemas import ChatRequest, ChatResponse, ErrorResponse
from .service import ModelService

ERROR = {"model": ErrorResponse}
MAX_CHAT_TOKENS = 512  # new tokens per chat completion at most, whatever the request asks


def add_chat(router: APIRouter, service: ModelService) -> None:
    """Add ``/v1/chat/completions`` to ``router``."""
    task = service.meta["task"]

    async def causal_lm_only() -> None:
        if not get_task(task).chat:
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
        messages = chat_messages(body, service.limits.max_chars)
        predictor = service.predictor
        max_tokens = min(body.max_tokens or predictor.max_new_tokens, MAX_CHAT_TOKENS)
        temperature, top_p = float(body.temperature or 0.0), float(body.top_p or 1.0)
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": service.version}
        if body.stream:
            chunks = chat_stream(predictor, messages, max_tokens, temperature, top_p, head)
            return StreamingResponse(chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        try:
            text, reason, usage = await asyncio.to_thread(predictor.chat, messages, max_tokens, temperature, top_p)
        except UserError as e:
            raise ApiError(422, "invalid_request", e.message, e.hint) from None
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}
        return JSONResponse({**head, "object": "chat.completion", "choices": [choice], "usage": usage})


def chat_messages(body: ChatRequest, max_chars: int) -> list[dict[str, str]]:
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
        m["content"] = clean_text(m["content"])
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


async def chat_stream(
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

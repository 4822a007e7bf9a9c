"""Request limits and text clean-up.

- the body: at most ``max_body_bytes``, checked on ``Content-Length`` and on the bytes actually read
  (a chunked or lying client cannot get past it) -> 413;
- the inputs: at most ``max_inputs`` texts of at most ``max_chars`` characters -> 413;
- the texts: control characters become spaces and lone surrogates (valid in JSON escapes, not in
  UTF-8) become U+FFFD. Both keep every character's offset, so NER ``start``/``end`` still index
  the text the client sent. A text that is then only whitespace is a 422.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ApiError, error_response

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Control characters as spaces, lone surrogates as U+FFFD: every character keeps its offset."""
    return _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", text))


def clean_texts(inputs: str | list[str], max_inputs: int, max_chars: int) -> list[str]:
    """The request's texts, checked against the limits and made safe for the tokenizer."""
    texts = [inputs] if isinstance(inputs, str) else list(inputs)
    if len(texts) > max_inputs:
        raise ApiError(
            413,
            "payload_too_large",
            f"{len(texts)} inputs exceed the limit of {max_inputs} per request",
            f"send at most {max_inputs} texts per request (split the list), or raise "
            "FIELDTUNE_MAX_INPUTS on the server",
        )
    cleaned = []
    for i, text in enumerate(texts):
        if len(text) > max_chars:
            raise ApiError(
                413,
                "payload_too_large",
                f"inputs[{i}] has {len(text)} characters, over the limit of {max_chars}",
                f"shorten or split texts to at most {max_chars} characters, or raise FIELDTUNE_MAX_CHARS on the server",
            )
        text = clean_text(text)
        if not text.strip():
            raise ApiError(
                422,
                "invalid_request",
                f"inputs[{i}] is empty (only whitespace or control characters)",
                "send non-empty text",
            )
        cleaned.append(text)
    return cleaned


def _too_large(max_bytes: int) -> tuple[int, str, str, str]:
    return (
        413,
        "payload_too_large",
        f"the request body is over the limit of {max_bytes} bytes",
        f"send at most {max_bytes} bytes (fewer or shorter texts per request), or raise "
        "FIELDTUNE_MAX_BODY_BYTES on the server",
    )


class BodyLimitMiddleware:
    """Pure ASGI middleware: refuse bodies over ``max_bytes`` with a JSON 413."""

    def __init__(self, app: Any, max_bytes: int, count: Any = None) -> None:
        self.app, self.max_bytes, self.count = app, max_bytes, count

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is None or declared > self.max_bytes:
            args = (
                _too_large(self.max_bytes)
                if declared is not None
                else (
                    400,
                    "invalid_request",
                    "the Content-Length header is not a number",
                    "send a valid Content-Length",
                )
            )
            if self.count:
                self.count(args[1])
            await error_response(*args)(scope, receive, send)
            return
        await self.app(scope, self._limited(receive), send)

    def _limited(self, receive: Any) -> Any:
        """``receive`` that counts body bytes and raises a 413 :class:`ApiError` past the limit."""
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise ApiError(*_too_large(self.max_bytes))
            return message

        return limited


def _content_length(scope: dict) -> int | None:
    """The declared body size: 0 when absent, ``None`` when malformed."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() else None
    return 0

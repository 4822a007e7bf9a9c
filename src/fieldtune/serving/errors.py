"""Every error the server answers is JSON ``{"error": {"type", "message", "hint"}}``.

:class:`ApiError` carries status, type, message and hint; the handlers installed by
:func:`install_error_handlers` turn it, FastAPI's validation errors, Starlette's HTTP errors
(404, 405) and — as a last resort — any unexpected exception into that shape.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

log = logging.getLogger("fieldtune.serving")

PREDICT_HINT = 'send {"inputs": "text"} or {"inputs": ["text", ...]}, optionally with "parameters": {"top_k": 3}'
CHAT_HINT = 'send {"messages": [{"role": "user", "content": "..."}]}'


class ApiError(HTTPException):
    """An error answer: HTTP status, a machine-readable type, what is wrong and how to fix it."""

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, headers)
        self.type, self.message, self.hint = type, message, hint


def error_response(
    status: int,
    type: str,
    message: str,
    hint: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The JSON error body (also used by the ASGI middleware, outside any request handler)."""
    body = {"error": {"type": type, "message": message, "hint": hint}}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, count: Callable[[str], None]) -> None:
    """Route every failure through :func:`error_response`; ``count(type)`` feeds the metric."""

    def reply(status: int, type: str, message: str, hint: str | None, headers: Any = None) -> JSONResponse:
        count(type)
        return error_response(status, type, message, hint, headers)

    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return reply(exc.status_code, exc.type, exc.message, exc.hint, exc.headers)

    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        type_, message = describe_validation(exc.errors())
        hint = CHAT_HINT if request.url.path.endswith("/chat/completions") else PREDICT_HINT
        return reply(422, type_, message, hint)

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        type_, hint = _HTTP_TYPES.get(exc.status_code, ("http_error", None))
        return reply(exc.status_code, type_, str(exc.detail), hint, exc.headers)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return reply(
            500,
            "internal_error",
            f"unexpected server error ({type(exc).__name__})",
            "this is a bug in the server: please report it with the request that caused it",
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


_HTTP_TYPES = {
    404: ("not_found", "see GET /docs or /openapi.json for the routes"),
    405: ("method_not_allowed", "see GET /docs or /openapi.json for each route's method"),
}


def describe_validation(errors: list[dict[str, Any]]) -> tuple[str, str]:
    """(type, one readable line) for pydantic/FastAPI validation errors."""
    invalid_json = [e for e in errors if e.get("type") == "json_invalid"]
    if invalid_json:
        return (
            "invalid_json",
            f"the body is not valid JSON: {invalid_json[0].get('ctx', {}).get('error', '')}",
        )
    groups: dict[str, list[dict[str, Any]]] = {}
    for e in errors:
        groups.setdefault(_where(e.get("loc", ())), []).append(e)
    # the text branch's type error is noise when the list branch has item-level errors
    groups = {
        w: g
        for w, g in groups.items()
        if not (all(_is_type_error(e) for e in g) and any(o.startswith((w + "[", w + ".")) for o in groups))
    }
    parts = []
    for where, group in list(groups.items())[:3]:
        # a union (text | list of texts) fails once per branch: prefer the branch of the right type
        specific = [e for e in group if not _is_type_error(e)] or group
        messages = list(dict.fromkeys(str(e.get("msg", "invalid")) for e in specific))
        parts.append(f"{where}: {' or '.join(messages)}")
    more = f" (and {len(groups) - 3} more)" if len(groups) > 3 else ""
    return "invalid_request", "; ".join(parts) + more


def _is_type_error(error: dict[str, Any]) -> bool:
    return str(error.get("type", "")).endswith("_type")


def _where(loc: Any) -> str:
    """``inputs[2]`` from a pydantic location, without "body" and union branch names."""
    out = ""
    for part in loc:
        if part == "body" or (
            isinstance(part, str)
            and ("[" in part or part.startswith("constrained-") or part in ("str", "int", "float", "bool"))
        ):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


class JSONBodyRoute(APIRoute):
    """An APIRoute that checks a POST body is UTF-8 JSON before FastAPI parses it, so invalid
    UTF-8 and pathological JSON (deep nesting) are a 422 with our error body, not a 400 or 500."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Any:
            if request.method in ("POST", "PUT", "PATCH"):
                body = await request.body()
                if body:
                    _require_json_content_type(request.headers.get("content-type"))
                    request._json = parse_json_body(body)  # Starlette's request.json() cache
            return await handler(request)

        return checked


def _require_json_content_type(value: str | None) -> None:
    """415 unless the body is declared JSON (FastAPI would not parse it otherwise: CSRF guard)."""
    media = (value or "").split(";")[0].strip().lower()
    if not (media == "application/json" or (media.startswith("application/") and media.endswith("+json"))):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the body must be JSON, got Content-Type {value or '(none)'!r}",
            "send the header `Content-Type: application/json` (curl: -H 'Content-Type: application/json')",
        )


def parse_json_body(body: bytes) -> Any:
    """Decode strictly as UTF-8 and parse as JSON, or raise a 422 :class:`ApiError`."""
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")  # tolerate a BOM
    except UnicodeDecodeError as e:
        raise ApiError(
            422,
            "invalid_utf8",
            f"the body is not valid UTF-8 (byte {e.start})",
            "encode the JSON body as UTF-8",
        ) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ApiError(
            422,
            "invalid_json",
            f"the body is not valid JSON: {e.msg} at char {e.pos}",
            PREDICT_HINT,
        ) from None
    except RecursionError:
        raise ApiError(422, "invalid_json", "the body's JSON is nested too deeply", PREDICT_HINT) from None
    return _replace_lone_surrogates(value) if _SURROGATE_ESCAPE.search(text) else value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _replace_lone_surrogates(value: Any) -> Any:
    """JSON may escape a lone surrogate (``"\\ud800"``); no tokenizer or encoder takes one:
    use U+FFFD,
    which keeps every character offset."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_replace_lone_surrogates(k): _replace_lone_surrogates(v) for k, v in value.items()}
    return value

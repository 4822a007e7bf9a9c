"""What the applications' web apps share: a FastAPI app with JSON errors whose hints describe the
app's own routes, its static folder, its routers and a body-size limit; and the token check that
guards their pages and API routes."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from ..serving.errors import ApiError, describe_validation, error_response, install_error_handlers
from ..serving.limits import BodyLimitMiddleware
from ..version import __version__


def application(
    title: str, description: str, static: Path, hints: dict[str, str], routers: list[APIRouter], max_body_bytes: int
) -> FastAPI:
    """The app: ``routers`` included, ``static`` at ``/static``, bodies over ``max_body_bytes`` refused,
    and every error as ``{"error": {"type", "message", "hint"}}`` with the hint of the route's prefix
    in ``hints`` (the shared handlers' own hints describe ``/v1/predict``)."""

    def hint_for(path: str) -> str | None:
        return next((hint for prefix, hint in hints.items() if path.startswith(prefix)), None)

    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        type_, message = describe_validation(exc.errors())
        return error_response(422, type_, message, hint_for(request.url.path))

    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        hint = hint_for(request.url.path) if exc.type == "invalid_json" else exc.hint
        return error_response(exc.status_code, exc.type, exc.message, hint, exc.headers)

    app = FastAPI(title=title, version=__version__, description=description)
    install_error_handlers(app, lambda _type: None)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ApiError, api_error)
    app.mount("/static", StaticFiles(directory=static), name="static")
    for router in routers:
        app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    return app


def has_token(request: Request, token: str | None, cookie: str) -> bool:
    """True without a token, else when the bearer header (scripts) or the ``cookie`` (a browser's, set
    by opening a page once with ``?token=``) carries it; compared in constant time."""
    if not token:
        return True
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else request.cookies.get(cookie, "")
    return secrets.compare_digest(given.encode(), token.encode())


def token_check(authorized: Callable[[Request], bool]) -> Callable[[Request], Awaitable[None]]:
    """The dependency that guards an app's API routes (``Depends(token_check(state.authorized))``):
    a 401 ``unauthorized`` error with ``WWW-Authenticate: Bearer`` unless ``authorized(request)``, so
    every app refuses a missing token with the same body and header."""

    async def check(request: Request) -> None:
        if not authorized(request):
            raise ApiError(
                401,
                "unauthorized",
                "missing or wrong token",
                "send `Authorization: Bearer <token>` with the server's FIELDTUNE_API_TOKEN",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check

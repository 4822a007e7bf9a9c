"""HTTP serving: ``fieldtune serve runs/banking77``, or ``create_app(model_dir)`` for any
ASGI server.

Modules: ``app`` (FastAPI factory), ``routes`` and ``chat`` (the routes), ``model`` (checking the
model folder), ``service`` (model loading, draining, prediction logging, hot reload),
``batcher`` (micro-batching), ``schemas`` (request/response bodies), ``limits`` (size limits, text
clean-up), ``errors`` (the JSON error shape), ``metrics`` (Prometheus), ``settings`` (env vars).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import uvicorn

from ..errors import UserError
from ..store import DB_URL_ENV, Store
from .app import STORE_ENV, champion_dir, create_app
from .model import check_served_model
from .settings import BACKEND_ENV, MODEL_DIR_ENV, graceful_seconds, limits_from_env, log_inputs_from_env

__all__ = ["create_app", "serve_cli"]


def serve_cli(
    model: str | Path | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    backend: str = "auto",
    db: str | None = None,
    use_store: bool = True,
) -> None:
    """Run the server until Ctrl-C / SIGTERM; in-flight requests finish first (graceful shutdown).

    ``model=None`` serves the registry's champion and hot-reloads it on promotion. With the store
    (default: ``db``, else FIELDTUNE_DB_URL, else runs/fieldtune.db) predictions are logged and
    /v1/feedback is on. Everything that can be checked before binding is: the model folder, the
    backend, the database, the limit variables and the port — each failure is a
    :class:`UserError` (exit code 2 in the CLI).
    """
    store = None
    if use_store or model is None:
        if db:
            os.environ[DB_URL_ENV] = db  # workers open the same database
        store = Store(db)
    model_dir, _ = check_served_model(model if model is not None else champion_dir(store), backend)
    limits = limits_from_env()
    log_inputs = log_inputs_from_env()
    grace = graceful_seconds()
    _check_port(host, port)
    common = {"host": host, "port": port, "timeout_graceful_shutdown": grace, "log_level": "info"}
    if workers <= 1:
        app = create_app(
            model if model is not None else None, backend=backend, store=store, log_inputs=log_inputs, **limits
        )
        uvicorn.run(app, **common)
        return
    # several processes need an import string; each worker rebuilds the app from the environment
    os.environ[MODEL_DIR_ENV] = str(model_dir.resolve()) if model is not None else ""
    os.environ[BACKEND_ENV], os.environ[STORE_ENV] = backend, "1" if store else "0"
    uvicorn.run("fieldtune.serving.app:app_from_env", factory=True, workers=workers, **common)


def _check_port(host: str, port: int) -> None:
    """Fail with a clear message if ``host:port`` cannot be bound (in use, bad address)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"cannot resolve host {host!r}: {e}", hint="use 127.0.0.1 or a local address") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as e:
            raise UserError(
                f"cannot listen on {host}:{port}: {e.strerror}",
                hint="pick another --port, or stop the process using it",
            ) from None

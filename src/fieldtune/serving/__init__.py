"""HTTP serving: ``fieldtune serve runs/banking77``, or ``create_app(model_dir)`` for any
ASGI server.

Modules: ``app`` (FastAPI factory and routes), ``service`` (model loading, draining),
``batcher`` (micro-batching), ``schemas`` (request/response bodies), ``limits`` (size limits, text
clean-up), ``errors`` (the JSON error shape), ``metrics`` (Prometheus), ``settings`` (env vars).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from ..errors import UserError
from .app import create_app
from .model import check_model_dir
from .settings import BACKEND_ENV, MODEL_DIR_ENV, graceful_seconds, limits_from_env

__all__ = ["create_app", "serve_cli"]


def serve_cli(
    model: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    backend: str = "auto",
) -> None:
    """Run the server until Ctrl-C / SIGTERM; in-flight requests finish first (graceful shutdown).

    Everything that can be checked before binding is: the model folder, the backend, the limit
    variables and the port — each failure is a :class:`UserError` (exit code 2 in the CLI).
    """
    import uvicorn

    model_dir, _ = check_model_dir(model, backend)
    limits = limits_from_env()
    grace = graceful_seconds()
    _check_port(host, port)
    common = {"host": host, "port": port, "timeout_graceful_shutdown": grace, "log_level": "info"}
    if workers <= 1:
        uvicorn.run(create_app(model_dir, backend=backend, **limits), **common)
        return
    # several processes need an import string; each worker rebuilds the app from the environment
    os.environ[MODEL_DIR_ENV], os.environ[BACKEND_ENV] = str(model_dir.resolve()), backend
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

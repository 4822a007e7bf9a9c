"""Server settings from environment variables (the ``serve`` command has no flag for each limit,
and ``--workers N`` processes get their settings this way too).

| variable                   | default   | meaning                                            |
|----------------------------|-----------|----------------------------------------------------|
| FIELDTUNE_API_TOKEN        | (unset)   | require a bearer token on /v1/* and /metadata      |
| FIELDTUNE_MAX_INPUTS       | 64        | texts per request (more -> 413)                    |
| FIELDTUNE_MAX_CHARS        | 10000     | characters per text (more -> 413)                  |
| FIELDTUNE_MAX_BODY_BYTES   | 1000000   | request body bytes (more -> 413)                   |
| FIELDTUNE_MAX_BATCH        | 32        | texts per model call when micro-batching           |
| FIELDTUNE_MAX_WAIT_MS      | 5         | how long a request waits for company               |
| FIELDTUNE_BATCHING         | auto      | 1/0; auto: on for PyTorch, off for ONNX Runtime    |
| FIELDTUNE_INFERENCE_THREADS| auto      | model calls at once without batching (ONNX: cores) |
| FIELDTUNE_GRACEFUL_S       | 30        | seconds in-flight requests get on shutdown         |
| FIELDTUNE_DB_URL           | sqlite:///runs/fieldtune.db | store for predictions, feedback, registry |
| FIELDTUNE_LOG_INPUTS       | text      | log inputs as text, as a sha256 hash, or off       |
"""

from __future__ import annotations

import math
import os
from typing import Any

from ..errors import UserError

TOKEN_ENV = "FIELDTUNE_API_TOKEN"
MODEL_DIR_ENV = "FIELDTUNE_MODEL_DIR"
BACKEND_ENV = "FIELDTUNE_BACKEND"

_INTS = {
    "FIELDTUNE_MAX_INPUTS": "max_inputs",
    "FIELDTUNE_MAX_CHARS": "max_chars",
    "FIELDTUNE_MAX_BODY_BYTES": "max_body_bytes",
    "FIELDTUNE_MAX_BATCH": "max_batch",
    "FIELDTUNE_INFERENCE_THREADS": "inference_threads",
}


def _number(name: str, cast: type, minimum: float) -> Any:
    raw = os.environ[name]
    try:
        value = cast(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum:
        raise UserError(f"{name}={raw!r} is not a number >= {minimum}", hint=f"fix or unset {name}")
    return value


def limits_from_env() -> dict[str, Any]:
    """``create_app`` keyword arguments for the limit variables that are set."""
    out: dict[str, Any] = {key: _number(name, int, 1) for name, key in _INTS.items() if name in os.environ}
    if "FIELDTUNE_MAX_WAIT_MS" in os.environ:
        out["max_wait_ms"] = _number("FIELDTUNE_MAX_WAIT_MS", float, 0)
    if os.environ.get("FIELDTUNE_BATCHING", "auto").strip().lower() not in ("", "auto"):
        out["batching"] = os.environ["FIELDTUNE_BATCHING"].strip().lower() not in (
            "0",
            "false",
            "no",
            "off",
        )
    return out


def graceful_seconds() -> int:
    return _number("FIELDTUNE_GRACEFUL_S", int, 0) if "FIELDTUNE_GRACEFUL_S" in os.environ else 30


def token_from_env() -> str | None:
    return os.environ.get(TOKEN_ENV) or None


LOG_INPUTS_ENV = "FIELDTUNE_LOG_INPUTS"


def log_inputs_from_env() -> str:
    value = os.environ.get(LOG_INPUTS_ENV, "text").strip().lower()
    if value not in ("text", "hash", "off"):
        raise UserError(f"{LOG_INPUTS_ENV}={value!r} is not text, hash or off", hint=f"fix or unset {LOG_INPUTS_ENV}")
    return value

"""The served model: checking an artifact folder, its version string, and loading the Predictor."""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from pathlib import Path
from typing import Any

from ..artifacts import find_model_dir, read_meta
from ..errors import UserError

BACKENDS = ("auto", "torch")  # without a Predictor that has backends
CAUSAL_LM_TASKS = frozenset({"causal_lm"})  # /v1/chat/completions serves these; 404 for the others


def check_model_dir(path: str | Path, backend: str = "auto") -> tuple[Path, dict[str, Any]]:
    """(artifact folder, its fieldtune.json) or a :class:`UserError` — cheap, no weights loaded."""
    model_dir = find_model_dir(path)
    _check_backend(model_dir, backend)
    try:
        meta = read_meta(model_dir)
    except (OSError, ValueError) as e:
        raise UserError(
            f"cannot read fieldtune.json: {e}",
            path=model_dir,
            hint="re-run `fieldtune train`; the artifact is damaged",
        ) from None
    from ..tasks import task_names

    if not isinstance(meta, dict) or not isinstance(meta.get("labels"), list) or "task" not in meta:
        raise UserError("fieldtune.json has no task/labels", path=model_dir, hint="re-run `fieldtune train`")
    if meta["task"] not in task_names():
        raise UserError(
            f"unknown task {meta['task']!r} in fieldtune.json",
            path=model_dir,
            hint="this artifact needs a newer fieldtune",
        )
    return model_dir, meta


def _check_backend(model_dir: Path, backend: str) -> None:
    """A known backend, and for ONNX an export to run (the Predictor's rules)."""
    if not _supports_backend():
        if backend not in BACKENDS:
            raise UserError(
                f"backend {backend!r} is not available in this fieldtune",
                hint="use --backend torch",
            )
        return
    try:
        from ..export.runtime import resolve_backend
    except ImportError:
        return
    resolve_backend(model_dir, backend)  # raises a UserError: unknown backend, or no ONNX export


def model_version(meta: dict[str, Any]) -> str:
    """First 12 hex of sha256 over fieldtune.json's ``created`` and ``data`` (the training data's
    fingerprints): the same artifact always gets the same version, a retrained one a new one.
    Artifacts without those fields hash their whole fieldtune.json."""
    if "created" in meta or "data" in meta:
        basis: Any = {"created": meta.get("created"), "data": meta.get("data")}
    else:
        basis = meta
    blob = json.dumps(basis, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _supports_backend() -> bool:
    from ..predict import Predictor

    return "backend" in inspect.signature(Predictor.load).parameters


def load_predictor(model_dir: Path, backend: str = "auto", threads: int | None = None) -> Any:
    """``Predictor.load(model_dir, backend=..., threads=...)``."""
    from ..predict import Predictor

    return Predictor.load(model_dir, backend=backend, threads=threads)


def is_onnx(model_dir: Path, backend: str) -> bool:
    """Does ``backend`` (e.g. ``auto``) resolve to an ONNX Runtime backend for this artifact?"""
    from ..export.runtime import resolve_backend

    return resolve_backend(model_dir, backend)[1] is not None


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf floats replaced by ``None`` (strict JSON cannot carry them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value

"""The served model folder: checked before anything loads (a model, of a known task, with what the
backend needs), and whether its backend is ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..artifacts import check_model_dir, find_model_dir
from ..predict.onnx_runtime import resolve_backend
from ..tasks import artifact_task


def check_served_model(path: str | Path, backend: str = "auto") -> tuple[Path, dict[str, Any]]:
    """(artifact folder, its fieldtune.json) or a :class:`~fieldtune.errors.UserError` — cheap, no
    weights loaded: a fieldtune model of a task this fieldtune knows, and a backend it can run on."""
    resolve_backend(find_model_dir(path), backend)  # a UserError: unknown backend, or no ONNX export
    model_dir, meta = check_model_dir(path)
    artifact_task(meta, model_dir)
    return model_dir, meta


def is_onnx(model_dir: Path, backend: str) -> bool:
    """Does ``backend`` (e.g. ``auto``) resolve to an ONNX Runtime backend for this artifact?"""
    return resolve_backend(model_dir, backend)[1] is not None

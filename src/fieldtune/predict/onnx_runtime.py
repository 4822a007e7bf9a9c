"""ONNX Runtime backend of encoder predictors: the exported model (``fieldtune export --onnx``) behind
the contract of ``inference.forward_logits``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..training.batching import collate, eval_batches

ONNX_DIR = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
BACKENDS = ("auto", "torch", "torch-bf16", "onnx", "onnx-fp32", "onnx-int8")


def onnx_files(model_dir: Path) -> dict[str, Path]:
    """The exported models present in ``model_dir/onnx``, keyed by backend name, fastest first."""
    folder = Path(model_dir) / ONNX_DIR
    found = {"onnx-int8": folder / INT8_FILE, "onnx": folder / FP32_FILE}
    return {name: path for name, path in found.items() if path.is_file()}


def resolve_backend(model_dir: Path, backend: str) -> tuple[str, Path | None]:
    """Pick what runs the model.

    ``auto``: the ONNX export when there is one (int8 if present, else fp32), else torch;
    ``onnx``: the same but an error without an export; ``onnx-fp32`` / ``onnx-int8``: that file;
    ``torch-bf16``: PyTorch under bf16 autocast (fast only where the CPU/GPU has bf16 matmul).

    Returns:
        The backend name (``torch``, ``torch-bf16``, ``onnx`` (fp32) or ``onnx-int8``) and its
        ONNX file, if any.
    """
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}", hint=f"use one of: {', '.join(BACKENDS)}")
    files = onnx_files(model_dir)
    if backend in ("torch", "torch-bf16"):
        return backend, None
    if backend == "auto" and not files:
        return "torch", None
    name = {"onnx-fp32": "onnx", "onnx-int8": "onnx-int8"}.get(backend) or next(iter(files), None)
    if name not in files:
        int8 = " --int8" if name == "onnx-int8" else ""
        raise UserError(
            f"no ONNX export{' (int8)' if int8 else ''} for this model",
            path=model_dir,
            hint=f"run `fieldtune export {model_dir} --onnx{int8}` first, or use --backend torch",
        )
    return name, files[name]


def open_session(path: Path, threads: int | None = None, spin: bool = True) -> Any:
    """An ONNX Runtime CPU session using all cores (``intra_op_num_threads``) by default; ``spin``
    False stops its threads from spinning after each run (for a process that runs torch or numpy
    between the session's runs: spinning threads would take the cores from them)."""
    # imported here: onnxruntime loads only for an exported model, not for every predictor
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_forward_logits(session: Any, features: list[dict[str, Any]], batch_size: int, pad_id: int) -> list[np.ndarray]:
    """Logits per feature, in feature order, without padding (as ``inference.forward_logits``).

    Returns:
        For sequence tasks an array ``(num_labels,)`` per feature; for token tasks
        ``(seq_len, num_labels)`` with that feature's own length.
    """
    out: list[np.ndarray | None] = [None] * len(features)
    for idx in eval_batches([len(f["input_ids"]) for f in features], batch_size):
        batch = collate([{"input_ids": features[i]["input_ids"]} for i in idx], pad_id)
        inputs = {k: v.numpy().astype(np.int64) for k, v in batch.items()}
        logits = session.run(["logits"], inputs)[0]  # (batch, [seq_len,] num_labels), float32
        for row, i in enumerate(idx):
            length = len(features[i]["input_ids"])
            out[i] = logits[row, :length] if logits.ndim == 3 else logits[row]
    return out  # type: ignore[return-value]

"""Export an artifact to ONNX (fp32, optionally dynamic int8); refuse any export that fails parity.

Everything is built in a hidden staging folder inside the model folder, checked, and only then
renamed to ``MODEL_DIR/onnx`` in one step: a failed check, an error or Ctrl-C leaves no ONNX file
(and an older export untouched).
"""

from __future__ import annotations

import functools
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import transformers
from rich.table import Table

from ..artifacts import find_model_dir, is_adapter_dir, read_meta
from ..errors import UserError
from ..inference import forward_logits
from ..predict.onnx_runtime import FP32_FILE, INT8_FILE, ONNX_DIR, onnx_forward_logits, open_session
from ..tasks import get_task
from ..training.batching import collate
from ..utils.atomic import staged_dir
from . import parity

OPSET = 17
REPORT = "export.json"


def export_onnx(model_dir: str | Path, int8: bool = False, console: Any = None) -> Path:
    """Export the artifact at ``model_dir`` to ``MODEL_DIR/onnx`` after a parity check.

    Args:
        model_dir: A run folder or its ``model/`` folder.
        int8: Also write ``model.int8.onnx`` (dynamic int8 quantisation of the fp32 export).
        console: A rich Console to print the parity table on, or None for silence.

    Returns:
        The ``onnx/`` folder holding ``model.onnx`` (+ ``model.int8.onnx``) and ``export.json``.

    Raises:
        UserError: when an export fails its parity check; nothing is written then.
    """
    model_dir = find_model_dir(model_dir)
    meta = read_meta(model_dir)
    if is_adapter_dir(model_dir):
        raise UserError(
            f"this artifact holds a {meta.get('method')} adapter, not full weights: merge it first",
            path=model_dir,
            hint=f"fieldtune export {model_dir} --merge --onnx (lora / ia3), or serve it with --backend torch",
        )
    task = get_task(meta["task"])
    model, tokenizer = _load_for_export(model_dir, task.auto_model)
    features = parity.sample_features(task, tokenizer, meta["labels"], meta["max_length"])
    with staged_dir(model_dir / ONNX_DIR) as staging:
        report = _build(model, features, tokenizer.pad_token_id, staging, int8, console)
        (staging / REPORT).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return model_dir / ONNX_DIR


def _load_for_export(model_dir: Path, auto_model: str) -> tuple[torch.nn.Module, Any]:
    """The fp32 model with eager attention (plain MatMul/Softmax: traces and quantises cleanly)."""
    auto = getattr(transformers, auto_model)
    model = auto.from_pretrained(model_dir, local_files_only=True, attn_implementation="eager", dtype=torch.float32)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    return model.eval(), tokenizer


def _build(
    model: torch.nn.Module, features: list[dict[str, Any]], pad_id: int, staging: Path, int8: bool, console: Any
) -> dict[str, Any]:
    """Write and check the fp32 (and int8) model in ``staging``; returns the export report."""
    reference = functools.partial(forward_logits, model)
    results: dict[str, dict[str, Any]] = {}
    try:
        _torch_export(model, features, pad_id, staging / FP32_FILE)
        results["onnx"] = _measure(staging / FP32_FILE, reference, features, pad_id)
        _require(results["onnx"], int8=False)
        if int8:
            _quantize(staging / FP32_FILE, staging / INT8_FILE)
            results["onnx-int8"] = _measure(staging / INT8_FILE, reference, features, pad_id)
            _require(results["onnx-int8"], int8=True)
    finally:
        if console is not None and results:
            _print_parity(console, results)
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "exporter": f"torch.onnx TorchScript (dynamo=False), opset {OPSET}, eager attention",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnxruntime": _ort_version(),
        },
        "sample_texts": len(parity.SAMPLE_TEXTS),
        "thresholds": {
            "fp32_min_agreement": parity.FP32_MIN_AGREEMENT,
            "fp32_max_abs_diff": parity.FP32_MAX_DIFF,
            "int8_min_agreement": parity.INT8_MIN_AGREEMENT,
            "tie_gap": parity.TIE_GAP,
        },
        "backends": results,
    }


def _torch_export(model: torch.nn.Module, features: list[dict[str, Any]], pad_id: int, path: Path) -> None:
    """Trace ``model`` to ONNX: dynamic batch and sequence axes, int64 inputs, output ``logits``."""
    by_length = sorted(features, key=lambda f: len(f["input_ids"]))
    batch = collate([{"input_ids": f["input_ids"]} for f in (by_length[0], by_length[-1])], pad_id)
    wrapper = _LogitsOnly(model)
    with torch.no_grad():
        token_task = wrapper(batch["input_ids"], batch["attention_mask"]).ndim == 3
    dynamic = {0: "batch", 1: "sequence"}
    axes = {"input_ids": dynamic, "attention_mask": dynamic, "logits": dynamic if token_task else {0: "batch"}}
    with warnings.catch_warnings():  # deprecation + tracer notes; the parity check is the guard
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (batch["input_ids"], batch["attention_mask"]),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            do_constant_folding=True,
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes=axes,
        )


class _LogitsOnly(torch.nn.Module):
    """``(input_ids, attention_mask) -> logits``: the graph signature the runtime expects."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of MatMul/Gemm weights per output channel; activations at run time.

    Per-channel scales gave 2-5x less logit error than one scale per tensor, at the same speed.
    7-bit weights (``reduce_range``): a MiniLM sentiment model trained with 4 frozen layers changed
    its label on 2 of the 32 parity texts with 8-bit weights (probabilities 0.30 -> 0.63), on none
    with 7-bit ones, at the same speed (790 vs 760 titles/s).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser warns on the root logger ("pre-process first")
    try:
        quantize_dynamic(
            source, target, op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8, per_channel=True,
            reduce_range=True,
        )  # fmt: skip
    finally:
        root.setLevel(level)


def _measure(path: Path, reference: parity.Forward, features: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Parity of the ONNX model at ``path`` against ``reference``, plus its file name and size."""
    candidate = functools.partial(onnx_forward_logits, open_session(path))
    result = parity.measure_parity(reference, candidate, features, pad_id)
    return {**result, "file": path.name, "size_mb": round(path.stat().st_size / 2**20, 1)}


def _require(result: dict[str, Any], int8: bool) -> None:
    """Raise UserError when ``result`` fails the parity thresholds."""
    problems = parity.parity_failures(result, int8)
    if problems:
        raise UserError(
            f"{result['file']} fails the parity check against PyTorch: {'; '.join(problems)}; nothing was written",
            hint="keep using the PyTorch backend (--backend torch)",
        )


def _print_parity(console: Any, results: dict[str, dict[str, Any]]) -> None:
    table = Table(
        "file",
        "agreement",
        "all",
        "ties",
        "max |Δlogit|",
        "MB",
        "required",
        title=f"parity with PyTorch on {len(parity.SAMPLE_TEXTS)} sample texts",
    )
    for name, r in results.items():
        need = (
            f"≥{parity.INT8_MIN_AGREEMENT}"
            if name == "onnx-int8"
            else f"≥{parity.FP32_MIN_AGREEMENT} Δ≤{parity.FP32_MAX_DIFF:g}"
        )
        table.add_row(
            r["file"],
            f"{r['agreement']:.4f}",
            f"{r['raw_agreement']:.4f}",
            f"{r['ties']}/{r['predictions']}",
            f"{r['max_abs_diff']:.1e}",
            f"{r['size_mb']:.0f}",
            need,
        )
    console.print(table)
    console.print(
        "agreement: same label as PyTorch, leaving out ties (PyTorch's top two labels "
        f"< {parity.TIE_GAP:.0%} apart); all: including ties",
        highlight=False,
    )


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__

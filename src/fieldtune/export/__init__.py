"""``fieldtune export``: ONNX export (fp32 / dynamic int8) behind a parity check; the ONNX backend.

exporter  torch -> ONNX, int8 quantisation, atomic write of MODEL_DIR/onnx
parity    sample inputs, label agreement and logit difference, the thresholds
runtime   ONNX Runtime session + forward function used by ``Predictor(backend="onnx")``
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from .exporter import export_onnx
from .parity import measure_parity
from .runtime import onnx_forward_logits, resolve_backend

__all__ = ["export_cli", "export_onnx", "measure_parity", "onnx_forward_logits", "resolve_backend"]


def export_cli(model: str | Path, *, onnx: bool = True, int8: bool = False, console: Any = None) -> Path:
    """The ``fieldtune export`` command: export, print the parity table and the written files.

    Returns:
        The ``onnx/`` folder written.
    """
    if not onnx:
        raise UserError("nothing to export", hint="ONNX is the only export format: pass --onnx")
    folder = export_onnx(model, int8=int8, console=console)
    if console is not None:
        for path in sorted(folder.iterdir()):
            console.print(f"wrote {path}", highlight=False)
        kind = "int8" if int8 else "fp32"
        console.print(
            f"`fieldtune predict {folder.parent} ...` now uses {kind} ONNX (--backend torch for PyTorch)",
            highlight=False,
        )
    return folder

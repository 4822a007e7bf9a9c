"""``fieldtune export``: adapter merge and ONNX export (fp32 / dynamic int8), each behind a parity
check (the ONNX backend that runs an export: :mod:`fieldtune.predict.onnx_runtime`).

merge     LoRA / IA3 adapter -> standalone merged artifact (``--merge``)
exporter  torch -> ONNX, int8 quantisation, atomic write of MODEL_DIR/onnx
parity    sample inputs, label agreement and logit difference, the thresholds
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from .exporter import export_onnx
from .merge import merge_adapter
from .parity import measure_parity

__all__ = ["export_cli", "export_onnx", "measure_parity", "merge_adapter"]


def export_cli(
    model: str | Path,
    *,
    onnx: bool | None = None,
    int8: bool = False,
    merge: bool = False,
    output: str | Path | None = None,
    console: Any = None,
) -> Path:
    """The ``fieldtune export`` command: merge and/or export, print the parity tables and the written files.

    ``onnx`` None means: ONNX unless ``merge`` was asked for. With both, the merged artifact is
    exported to ONNX.

    Returns:
        The folder written last: the ``onnx/`` folder, or the merged artifact.
    """
    if output is not None and not merge:
        raise UserError("--output is for --merge", hint="the ONNX export always goes to MODEL/onnx")
    if onnx is None:
        onnx = not merge or int8
    if not onnx and not merge:
        raise UserError("nothing to export", hint="pass --onnx (fast CPU inference) or --merge (adapters)")
    if merge:
        model = merge_adapter(model, output, console=console)
        if console is not None:
            console.print(
                f"wrote {model}: a standalone model for `fieldtune predict/serve/export {model}`", highlight=False
            )
        if not onnx:
            return model
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

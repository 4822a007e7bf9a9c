"""Using a trained model: ``predict``, ``export``, ``serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import UserError
from .common import err, out, user_errors

# The commands import what they run inside their bodies, on purpose: `fieldtune --help` and a quick
# command must not pay for importing torch, transformers, FastAPI and SQLAlchemy.


@user_errors
def predict(
    model: Path = typer.Argument(..., help="run folder or its model/ folder"),
    texts: Optional[list[str]] = typer.Argument(None, help="texts to predict (or use --input)"),
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="texts.txt (one per line) or texts.jsonl"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write JSON lines here (default: stdout)"),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="classification: the k best labels"),
    text_key: str = typer.Option("text", "--text-key", help="JSONL input: the field holding the text"),
    backend: str = typer.Option(
        "auto", help="auto (ONNX if exported) | torch | torch-bf16 | onnx | onnx-fp32 | onnx-int8"
    ),
) -> None:
    """Predict on raw text: one JSON line per input line."""
    from ..batch import predict_file, predict_texts

    if input is not None:
        n = predict_file(model, input, output, top_k=top_k, text_key=text_key, backend=backend)
        if output is not None:
            err.print(f"wrote {n} predictions to {output}")
    elif texts:
        for line in predict_texts(model, texts, top_k=top_k, backend=backend):
            print(line)
    else:
        raise UserError("nothing to predict", hint="pass texts as arguments or --input FILE")


@user_errors
def export(
    model: Path = typer.Argument(..., help="run folder or its model/ folder"),
    onnx: Optional[bool] = typer.Option(
        None, "--onnx/--no-onnx", help="export to ONNX (default: yes, unless --merge alone is asked for)"
    ),
    int8: bool = typer.Option(False, "--int8", help="dynamic int8 quantisation with ONNX Runtime"),
    merge: bool = typer.Option(
        False, "--merge", help="lora / ia3 runs: fold the adapter into the base weights, a standalone model"
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="--merge: the merged model's folder (default: MODEL's model folder + '-merged')"
    ),
) -> None:
    """Export a model for fast CPU inference (ONNX) or merge an adapter into a standalone model;
    refuses to write anything that fails its parity check."""
    from ..export import export_cli

    export_cli(model, onnx=onnx, int8=int8, merge=merge, output=output, console=out)


@user_errors
def serve(
    model: Optional[Path] = typer.Argument(
        None, help="run folder or its model/ folder (default: the registry's champion)"
    ),
    host: str = typer.Option("127.0.0.1", help="bind address (loopback by default)"),
    port: int = typer.Option(8000, help="TCP port"),
    workers: int = typer.Option(1, min=1, help="server processes"),
    backend: str = typer.Option(
        "auto", help="auto (ONNX if exported) | torch | torch-bf16 | onnx | onnx-fp32 | onnx-int8"
    ),
    db: Optional[str] = typer.Option(None, "--db", help="store URL (default: FIELDTUNE_DB_URL or runs/fieldtune.db)"),
    store: bool = typer.Option(True, "--store/--no-store", help="log predictions and accept /v1/feedback"),
) -> None:
    """Serve a model over HTTP (FastAPI): /v1/predict, /v1/feedback, /health, /ready, /metadata, /metrics.

    Without MODEL it serves the registry's champion and hot-reloads it when another is promoted."""
    from ..serving import serve_cli

    serve_cli(model, host=host, port=port, workers=workers, backend=backend, db=db, use_store=store)

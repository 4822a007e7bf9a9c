"""Training and evaluating: ``train``, ``eval``, ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..errors import UserError
from .common import out, print_metrics, user_errors

# The commands import what they run inside their bodies, on purpose: `fieldtune --help` and a quick
# command must not pay for importing torch, transformers, FastAPI and SQLAlchemy.


@user_errors
def train(
    config: Path = typer.Argument(None, help="run.yaml"),
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides, e.g. train.epochs=3"),
    resume: bool = typer.Option(False, "--resume", help="continue from the run's last checkpoint"),
    help_config: bool = typer.Option(False, "--help-config", help="list every config field with its default"),
) -> None:
    """Fine-tune a model as a run.yaml describes; writes OUTPUT/model, metrics.json, report.md, plots."""
    from ..config import describe_fields
    from ..methods import describe_methods
    from ..recipes import train as run_train

    if help_config:
        for key, default, doc in describe_fields():
            out.print(f"[bold]{key}[/] = {default}\n    {doc}", highlight=False)
        out.print("\n[bold]methods[/] (model kind: tasks)", highlight=False)
        for name, cells, doc in describe_methods():
            out.print(f"[bold]{name}[/]  {cells}\n    {doc}", highlight=False)
        return
    if config is None:
        raise UserError("missing run.yaml", hint="fieldtune train run.yaml [key=value ...]")
    result = run_train(config, overrides or [], resume=resume)
    print_metrics(result.metrics)
    t = result.metrics["train"]
    out.print(
        f"trainable parameters: {t['trainable_params']:,} of {t['total_params']:,} "
        f"({100 * t['trainable_params'] / max(t['total_params'], 1):.2f}%)"
    )
    for advice in result.advice:
        out.print(f"[yellow]advice:[/] {escape(advice)}", highlight=False)
    out.print(f"model: {result.model_dir}\nreport: {result.output_dir / 'report.md'}")


@user_errors
def eval_(
    model: Path = typer.Argument(..., help="run folder or its model/ folder"),
    data: Path = typer.Option(..., "--data", help="labelled file in the training format"),
    output: Optional[Path] = typer.Option(None, "--output", help="metrics JSON (default: next to the model)"),
    backend: str = typer.Option(
        "auto", help="auto (ONNX if exported) | torch | torch-bf16 | onnx | onnx-fp32 | onnx-int8"
    ),
) -> None:
    """Evaluate a saved model on a labelled file; prints and writes metrics JSON."""
    from ..evaluate import evaluate_file

    metrics, path = evaluate_file(model, data, output, backend=backend)
    print_metrics({"eval": metrics})
    out.print(f"metrics: {path}")


@user_errors
def demo(output: Path = typer.Option(Path("runs/demo"), help="where the demo runs go")) -> None:
    """Fine-tune the bundled model on the shipped samples (intents + NER) and show predictions."""
    from ..demo import run_demo

    run_demo(output, out)

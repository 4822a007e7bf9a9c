"""Looking at models: ``models`` (the bundled aliases) and ``compare`` (runs side by side)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from .common import out, user_errors

# The commands import what they run inside their bodies, on purpose: `fieldtune --help` and a quick
# command must not pay for importing torch, transformers, FastAPI and SQLAlchemy.


@user_errors
def models() -> None:
    """List bundled model aliases and where they resolve."""
    from ..zoo import list_models

    table = Table("alias", "resolves to", "description", "licence")
    table.columns[1].overflow = "fold"
    for row in list_models():
        table.add_row(row["alias"], row["resolves_to"], row["description"], row["licence"])
    out.print(table)


@user_errors
def compare(
    runs: list[Path] = typer.Argument(..., help="run folders (each with metrics.json)"),
    metric: str = typer.Option("accuracy", "--metric", help="the test metric to compare (dev if a run has no test)"),
    output: Optional[Path] = typer.Option(
        None, "--output", help="where compare.md / .json / .png go (default: compare/ beside the first run)"
    ),
) -> None:
    """Runs side by side: metric, training time, trainable parameters, size on disk, inference time."""
    from ..compare import cells as row_cells
    from ..compare import compare_runs, headers

    rows, where = compare_runs(runs, metric, output)
    table = Table(*headers(metric))
    for column in table.columns:  # a narrow terminal wraps values instead of cutting them short
        column.overflow = "fold"
    for row in rows:
        table.add_row(*[escape(c) for c in row_cells(row)])
    out.print(table)
    out.print(f"table: {where / 'compare.md'}\nplot: {where / 'compare.png'}")

"""``fieldtune retrain``: a challenger on the champion's data and feedback, promoted only if it wins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from .common import DB_HELP, open_store, out, user_errors

# The commands import what they run inside their bodies, on purpose: `fieldtune --help` and a quick
# command must not pay for importing torch, transformers, FastAPI and SQLAlchemy.


@user_errors
def retrain(
    margin: float = typer.Option(0.005, help="the challenger's mean holdout score must beat the champion's by this"),
    tolerance: float = typer.Option(0.05, help="no class may lose more F1 than this on the frozen holdout..."),
    significance: float = typer.Option(0.05, help="...where a paired exact test on its examples gives p below this"),
    rehearsal: float = typer.Option(1.0, min=0.0, max=1.0, help="share of the old training data replayed per class"),
    feedback_weight: int = typer.Option(2, min=1, help="times each training correction is seen per epoch"),
    holdout: float = typer.Option(0.2, min=0.0, max=0.9, help="share of corrections frozen as a holdout"),
    min_feedback: int = typer.Option(10, min=1, help="retrain only with at least this many new corrections"),
    output: Path = typer.Option(Path("runs/retrain"), help="where challengers are trained"),
    overrides: Optional[list[str]] = typer.Argument(None, help="challenger config overrides, e.g. train.epochs=2"),
    as_json: bool = typer.Option(False, "--json", help="print the decision as JSON"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    source: Optional[list[str]] = typer.Option(
        None, "--source", help="only corrections from this source (repeatable), e.g. watch for the news dashboard's"
    ),
) -> None:
    """Train a challenger on the champion's data + feedback; promote it only if it wins (cron-friendly)."""
    from ..monitoring.retrain import Policy
    from ..monitoring.retrain import retrain as run_retrain

    policy = Policy(
        margin=margin,
        tolerance=tolerance,
        significance=significance,
        rehearsal=rehearsal,
        feedback_weight=feedback_weight,
        holdout=holdout,
        min_feedback=min_feedback,
        sources=tuple(source or ()),
    )
    outcome = run_retrain(open_store(db), policy, root=output, overrides=overrides or [])
    if as_json:
        print(json.dumps(outcome.as_dict(), default=str))
        return
    out.print(f"[bold]{outcome.action}[/]: {escape(outcome.reason)}", highlight=False)
    if outcome.output:
        out.print(f"challenger run: {outcome.output}")

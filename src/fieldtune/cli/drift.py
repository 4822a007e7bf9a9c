"""``fieldtune drift``: recent predictions against the training reference; exit code 1 on drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from .common import err, fmt, out, user_errors

# The command imports what it runs inside its body, on purpose: `fieldtune --help` and a quick
# command must not pay for importing torch, transformers, FastAPI and SQLAlchemy.


@user_errors
def drift(
    version: Optional[str] = typer.Option(None, "--version", help="model version (default: the registry's champion)"),
    model: Optional[Path] = typer.Option(
        None, "--model", help="the version's artifact folder, for a model served without the registry"
    ),
    window: Optional[int] = typer.Option(
        None, "--window", min=1, help="the last N predictions (default 500; with --since/--until: the last N in range)"
    ),
    since: Optional[str] = typer.Option(None, "--since", help="predictions from this time: ISO 8601 or 24h, 7d"),
    until: Optional[str] = typer.Option(None, "--until", help="predictions before this time: ISO 8601 or 24h, 7d"),
    db: Optional[str] = typer.Option(None, "--db", help="store URL (default: FIELDTUNE_DB_URL or runs/fieldtune.db)"),
    output: Optional[Path] = typer.Option(None, "--output", help="report folder (default: runs/drift/<UTC time>)"),
    reference: Optional[Path] = typer.Option(
        None, "--reference", help="reference texts instead of the model's dev data: .txt (one per line) or labelled"
    ),
    refresh: bool = typer.Option(False, "--refresh-reference", help="recompute the cached training reference"),
    threshold: Optional[list[str]] = typer.Option(
        None, "--threshold", help="NAME=VALUE, e.g. psi=0.25 (psi, label_p, confidence_drop, mmd_p, oov_increase)"
    ),
    history: int = typer.Option(20, "--history", min=0, help="windows to plot, this one last (0: none)"),
    webhook: Optional[str] = typer.Option(None, "--webhook", help="POST the JSON report to this http(s) URL"),
    webhook_on: str = typer.Option("drift", "--webhook-on", help="drift (only when a threshold is crossed) | always"),
    json_out: bool = typer.Option(False, "--json", help="print the JSON report (what the webhook gets) on stdout"),
) -> None:
    """Compare recent predictions with the training reference: label shift, confidence, embeddings, vocabulary.

    Writes report.md, drift.png and drift.json. Exit code 1 when a threshold is crossed, 0 when not."""
    # imported here: see the note at the top
    from ..monitoring.drift_run import run_drift
    from ..monitoring.webhook import WebhookAlert

    alert = WebhookAlert(webhook, webhook_on)  # a bad --webhook / --webhook-on fails before any work
    report = run_drift(
        db=db,
        version=version,
        model=model,
        window=window,
        since=since,
        until=until,
        thresholds=threshold,
        reference=reference,
        refresh_reference=refresh,
        history=history,
        output=output,
    )
    if json_out:
        print(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        _print_drift(report)
        out.print(f"report: {report.output_dir / 'report.md'}")
    problem = alert.send(report)
    if problem:
        err.print(f"[yellow]warning:[/] webhook {escape(webhook)} failed: {escape(problem)}", highlight=False)
    if report.drifted:
        raise typer.Exit(1)


def _print_drift(report) -> None:
    w = report.window
    table = Table("check", "status", "value", "threshold", "rule / reason")
    table.columns[4].overflow = "fold"
    colour = {"ok": "green", "drift": "bold red", "unavailable": "yellow"}
    for name, c in report.checks.items():
        table.add_row(
            name,
            f"[{colour[c.status]}]{c.status}[/]",
            fmt(c.value),
            fmt(c.threshold),
            escape(c.reason or c.rule),
        )
    span = f"{w['predictions']} predictions ({w['selection']}) from {w['from']} to {w['to']}"
    out.print(f"model {report.model_version}: {span}", highlight=False)
    out.print(table)
    out.print("[bold red]drift detected[/]" if report.drifted else "[green]no drift[/]")

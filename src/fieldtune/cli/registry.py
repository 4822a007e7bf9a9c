"""``fieldtune registry``: versions, stages, promotion, rollback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from .common import DB_HELP, full_version, open_store, out, user_errors

# The commands import what they run inside their bodies, on purpose: `fieldtune --help` and a quick
# command must not pay for importing torch, transformers, FastAPI and SQLAlchemy.


@user_errors
def registry_list(db: Optional[str] = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """All registered versions with stage, parent, headline metrics and path."""
    store = open_store(db)
    table = Table("version", "stage", "task", "parent", "test", "created", "path")
    for column in table.columns[:6]:
        column.no_wrap = True
    table.columns[-1].overflow = "fold"
    for m in store.models():
        test = (m.metrics or {}).get("test") or (m.metrics or {}).get("dev") or {}
        headline = next((f"{k} {test[k]:.4f}" for k in ("f1", "accuracy", "micro_f1") if k in test), "")
        style = "bold green" if m.stage == "champion" else None
        table.add_row(
            m.version, m.stage, m.task, m.parent or "", headline, f"{m.created_at:%m-%d %H:%M}", m.path, style=style
        )
    out.print(table)


@user_errors
def registry_show(
    version: str = typer.Argument(..., help="version (or a unique prefix)"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """One version: its row and every decision that involved it, with the numbers."""
    store = open_store(db)
    m = store.model(full_version(store, version))
    row = {k: getattr(m, k) for k in ("version", "stage", "task", "parent", "path", "data_fingerprint", "checksum")}
    out.print_json(json.dumps({**row, "metrics": m.metrics}, default=str))
    for d in store.decisions(m.version):
        out.print(f"[bold]{d.created_at:%Y-%m-%d %H:%M:%S}[/] {d.action} {d.version or ''} (was {d.previous or '-'}): ")
        out.print(f"  {escape(d.reason)}", highlight=False)


@user_errors
def registry_add(
    model: Path = typer.Argument(..., help="run folder or its model/ folder"),
    promote_: bool = typer.Option(False, "--promote", help="make it the champion at once (after checks)"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Register a trained model as a challenger (or, with --promote, the champion)."""
    from ..store.registry import promote, register_model

    store = open_store(db)
    row, created = register_model(store, model)
    out.print(f"{'registered' if created else 'already registered'}: {row.version} ({row.stage})")
    if promote_:
        previous = promote(store, row.version, "promoted at registration")
        out.print(f"champion: {row.version} (was {previous or 'none'})")


@user_errors
def registry_promote(
    version: str = typer.Argument(..., help="version (or a unique prefix)"),
    reason: str = typer.Option("promoted by hand", help="why, for the decision log"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Make VERSION the champion after checking its files (a running `fieldtune serve` hot-reloads it)."""
    from ..store.registry import promote

    store = open_store(db)
    version = full_version(store, version)
    previous = promote(store, version, reason)
    out.print(f"champion: {version} (was {previous or 'none'})")


@user_errors
def registry_rollback(
    reason: str = typer.Option("rolled back by hand", help="why, for the decision log"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Make the previous champion the champion again."""
    from ..store.registry import rollback

    old, new = rollback(open_store(db), reason)
    out.print(f"champion: {new} (was {old})")

"""``fieldtune feedback``: corrections of the model's predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import UserError
from .common import DB_HELP, full_version, open_store, out, user_errors

# The commands import what they run inside their bodies, on purpose: `fieldtune --help` and a quick
# command must not pay for importing torch, transformers, FastAPI and SQLAlchemy.


@user_errors
def feedback_import(
    file: Path = typer.Argument(..., help="corrections in the task's training format (CSV/JSONL/CoNLL)"),
    model: Optional[str] = typer.Option(None, help="model version they correct (default: the champion)"),
    source: str = typer.Option("import", help="recorded as the corrections' source"),
    allow_new_labels: bool = typer.Option(False, "--allow-new-labels", help="accept labels the model doesn't know"),
    text_column: Optional[str] = typer.Option(None, help="CSV/JSONL: the text column"),
    label_column: Optional[str] = typer.Option(None, help="CSV/JSONL: the label column"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Bulk-import corrections: every row is checked, then all are stored in one transaction."""
    from ..artifacts import read_meta
    from ..config import DataConfig
    from ..monitoring.feedback import import_feedback

    store = open_store(db)
    row = store.model(full_version(store, model)) if model else store.champion()
    if row is None:
        raise UserError("the registry has no champion to attach corrections to", hint="pass --model VERSION")
    data_cfg = DataConfig(train=file, text_column=text_column, label_column=label_column)
    n = import_feedback(
        store,
        file,
        read_meta(Path(row.path)),
        row.version,
        source=source,
        allow_new_labels=allow_new_labels,
        data_cfg=data_cfg,
    )
    out.print(f"stored {n} corrections for {row.version}")

"""What every command shares: the consoles, the user-error handling (a message and exit code 2,
never a traceback), the metrics table and the store options."""

from __future__ import annotations

import functools
import os
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import UserError

err = Console(stderr=True)
out = Console()
DB_HELP = "store URL (default: FIELDTUNE_DB_URL or sqlite:///runs/fieldtune.db)"
HEADLINE = (
    "f1",
    "precision",
    "recall",
    "accuracy",
    "macro_f1",
    "micro_f1",
    "subset_accuracy",
    "perplexity",
    "exact_match",
    "rouge_l",
    "examples",
)


def user_errors(fn):
    """Turn a UserError into a clean message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        quiet_libraries()
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            # escape: data values such as a token "[/b]" must print as is, not as rich markup
            err.print(
                f"[bold red]error:[/] {escape(str(e))}", highlight=False, markup=True, emoji=False, soft_wrap=True
            )
            raise typer.Exit(2) from None

    return wrapper


def quiet_libraries() -> None:
    """transformers' warnings and progress bars off for the whole command."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # imported here: transformers takes seconds to import, and only once a command runs
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def print_metrics(metrics: dict) -> None:
    """Headline metrics per split (dev / test / baseline / eval) in one table."""
    splits = {k: v for k, v in metrics.items() if k != "train" and isinstance(v, dict)}
    keys = [k for k in HEADLINE if any(k in row for row in splits.values())]
    table = Table("split", *keys)
    for split, row in splits.items():
        name = f"baseline ({row['name']})" if "name" in row else split
        table.add_row(name, *[fmt(row.get(k)) for k in keys])
    out.print(table)
    t = metrics.get("train") or {}
    if t.get("steps"):
        out.print(
            f"trained {t['steps']} steps in {t['train_s']:.0f} s ({t['tokens_per_s']:.0f} real tokens/s, "
            f"{t['precision']}); best at epoch {t['best_epoch']}" + _ended(t)
        )
    elif t:
        out.print(f"no gradient steps (took {t.get('train_s', 0):.0f} s)")
    if t.get("ms_per_example") is not None:
        out.print(f"inference: {t['ms_per_example']:.1f} ms per example")


def _ended(t: dict) -> str:
    """How the training ended, when it was not the planned last step: early stopping or the time limit."""
    planned = (t.get("budget") or {}).get("total_steps")
    if t.get("stop_reason"):
        return f"; {t['stop_reason']} at step {t['steps']}" + (f" of {planned}" if planned else "")
    return ""


def fmt(value) -> str:
    """A float with 4 decimals, None as empty."""
    return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))


def open_store(db: Optional[str]):
    """The :class:`~fieldtune.store.Store` at ``db`` (default: FIELDTUNE_DB_URL or runs/fieldtune.db)."""
    # imported here: SQLAlchemy and Alembic only for the commands that use the store
    from ..store import Store

    return Store(db)


def full_version(store, version: str) -> str:
    """A full version from a unique prefix (as git takes short hashes)."""
    matches = [m.version for m in store.models() if m.version.startswith(version)]
    if len(matches) != 1:
        what = "no" if not matches else "several"
        raise UserError(f"{what} registered versions match {version!r}", hint="see `fieldtune registry list`")
    return matches[0]

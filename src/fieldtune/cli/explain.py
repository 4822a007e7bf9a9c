"""``explain``: per-word attributions for one prediction (table, JSON or an HTML page)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import UserError
from .common import err, out, user_errors

# The command imports what it runs inside its body, on purpose: `fieldtune --help` must not pay for
# importing torch and transformers.


@user_errors
def explain(
    model: Path = typer.Argument(..., help="run folder or its model/ folder"),
    text: str = typer.Argument(..., help="the text to explain (offsets index it)"),
    label: Optional[str] = typer.Option(
        None, "--label", help="explain this label (NER: entity type), not the predicted"
    ),
    method: str = typer.Option("auto", "--method", help="auto (ig for encoders, else occlusion) | ig | occlusion"),
    steps: int = typer.Option(50, "--steps", min=1, help="integrated gradients: quadrature points"),
    span: Optional[str] = typer.Option(None, "--span", help="NER: START:END characters of the entity to explain"),
    as_json: bool = typer.Option(False, "--json", help="print the explanation as JSON"),
    html: Optional[Path] = typer.Option(None, "--html", help="also write a standalone HTML page here"),
) -> None:
    """Why the model predicted what it did: a score per word (green / positive pushes towards the label)."""
    from ..explain import explain as run_explain
    from ..explain import load_for_explaining
    from ..explain.render import sections, title, to_html
    from ..utils.atomic import atomic_write_text

    predictor = load_for_explaining(model)
    result = run_explain(predictor, text, label=label, method=method, steps=steps, span=_span(span))
    if html is not None:
        atomic_write_text(html, to_html(text, result))
        err.print(f"wrote {html}")
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    for section in sections(result):
        _print_table(title(section), section)
    if not sections(result):
        out.print("no entities predicted")


def _span(value: Optional[str]) -> Optional[tuple[int, int]]:
    if value is None:
        return None
    try:
        start, end = (int(v) for v in value.split(":"))
    except ValueError:
        raise UserError(f"--span {value!r} is not START:END", hint="e.g. --span 23:36 (character offsets)") from None
    if not 0 <= start < end:
        raise UserError(f"--span {value!r}: need 0 <= START < END", hint="e.g. --span 23:36")
    return start, end


def _print_table(heading: str, section: dict) -> None:
    delta = section.get("convergence_delta")
    extra = f", convergence delta {delta:+.4f}" if delta is not None else ""
    out.print(f"{escape(heading)} — {section['method']}{extra}", highlight=False)
    table = Table("word", "start", "end", "score", "")
    peak = max((abs(a["score"]) for a in section["attributions"]), default=0.0) or 1.0
    for a in section["attributions"]:
        bar = ("+" if a["score"] >= 0 else "-") * round(10 * abs(a["score"]) / peak)
        colour = "green" if a["score"] >= 0 else "red"
        table.add_row(escape(a["word"]), str(a["start"]), str(a["end"]), f"{a['score']:+.4f}", f"[{colour}]{bar}[/]")
    out.print(table)

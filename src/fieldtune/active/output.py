"""Writing a batch to label in the task's training format, the model's guess pre-filled, so the file
trains as it is (``data.train``) and imports as it is (``fieldtune feedback import``).

| task | ``.csv`` | ``.jsonl`` | ``.txt`` / ``.conll`` |
|---|---|---|---|
| classification | ``text,label,uncertainty`` | ``{"text", "label", "uncertainty"}`` | — |
| multilabel | ``text,labels,uncertainty`` (labels joined by ``|``) | ``{"text", "labels": [...], "uncertainty"}`` | — |
| ner | — | ``{"tokens", "tags", "text", "uncertainty"}`` | CoNLL ``token<TAB>tag``; ``NAME.uncertainty.csv`` |

The readers ignore columns and keys they don't use, so the score never gets in the way of training.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..utils.atomic import atomic_open

FORMATS = {
    "classification": (".csv", ".jsonl"),
    "multilabel": (".jsonl", ".csv"),
    "ner": (".txt", ".conll", ".jsonl"),
}
SCORE = "uncertainty"


@dataclass(frozen=True)
class Suggestion:
    """One text to label: its words (NER), the model's guess and the strategy's score (higher = less sure)."""

    text: str
    guess: Any  # a label, a list of labels, or one IOB2 tag per token
    score: float
    tokens: tuple[str, ...] = ()
    prediction_id: str | None = None


def check_output(path: Path, task: str) -> None:
    """Refuse an output suffix the task's training readers can't read back, before any work.

    Raises:
        UserError: The suffix doesn't fit the task.
    """
    allowed = FORMATS.get(task)
    if allowed is None:
        raise UserError(f"suggest does not support task {task!r}", hint="use a classification, multilabel or NER model")
    if path.suffix.lower() not in allowed:
        raise UserError(
            f"a {task} model's suggestions are written as {' or '.join(allowed)}, not {path.suffix or 'no suffix'}",
            path=path,
            hint=f"e.g. --output to_label{allowed[0]}",
        )


def write_suggestions(path: Path, task: str, rows: list[Suggestion]) -> list[Path]:
    """Write ``rows`` (atomically) in ``task``'s training format; returns the files written."""
    check_output(path, task)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with atomic_open(path) as f:
            for row in rows:
                f.write(json.dumps(_json_row(task, row), ensure_ascii=False) + "\n")
        return [path]
    if suffix == ".csv":
        with atomic_open(path) as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["text", "labels" if task == "multilabel" else "label", SCORE])
            for row in rows:
                guess = "|".join(row.guess) if task == "multilabel" else row.guess
                writer.writerow([row.text, guess, f"{row.score:.6f}"])
        return [path]
    sidecar = path.with_name(path.stem + f".{SCORE}.csv")
    with atomic_open(path) as f:
        f.write("\n\n".join("\n".join(f"{t}\t{g}" for t, g in zip(r.tokens, r.guess)) for r in rows) + "\n")
    with atomic_open(sidecar) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["sentence", "text", SCORE])
        writer.writerows([i + 1, r.text, f"{r.score:.6f}"] for i, r in enumerate(rows))
    return [path, sidecar]


def _json_row(task: str, row: Suggestion) -> dict[str, Any]:
    score = round(float(row.score), 6)
    if task == "ner":
        return {"tokens": list(row.tokens), "tags": list(row.guess), "text": row.text, SCORE: score}
    key = "labels" if task == "multilabel" else "label"
    return {"text": row.text, key: row.guess, SCORE: score}

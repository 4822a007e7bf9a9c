"""``fieldtune suggest``: the texts whose labels would teach a model most, written ready to label.

Candidates are de-duplicated (:func:`~fieldtune.active.pool.text_key`), texts already labelled are
dropped, the model predicts the rest, a strategy scores and picks ``n``, and the batch is written in
the task's training format with the model's guess pre-filled (:mod:`fieldtune.active.output`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..monitoring.text_features import embed
from .output import Suggestion, check_output, write_suggestions
from .pool import Candidate, text_key
from .scoring import guess, scores
from .select import Embed, select


@dataclass
class SuggestResult:
    """A chosen batch and the counts behind it."""

    rows: list[Suggestion]
    read: int  # candidates read from the pool or the store
    repeats: int  # dropped: the same text earlier in the pool
    labelled: int  # dropped: already labelled
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def suggest(
    predictor: Any,
    candidates: list[Candidate],
    n: int,
    strategy: str,
    seed: int = 0,
    exclude: set[str] | frozenset[str] = frozenset(),
    embed_fn: Embed | None = None,
) -> SuggestResult:
    """Pick ``n`` of ``candidates`` for ``predictor`` to have labelled.

    Args:
        predictor: A loaded classification, multi-label or NER predictor.
        candidates: Unlabelled texts (a pool file's or the store's).
        n: Batch size; fewer when fewer new texts exist (said in ``notes``).
        strategy: ``uncertainty``, ``margin``, ``entropy``, ``diverse`` or ``random``.
        seed: Makes the choice repeatable (ties, ``random``).
        exclude: :func:`text_key` of texts labelled already.
        embed_fn: ``diverse``: candidate texts -> L2-normalised embeddings (default: the bundled
            minilm sentence embedder, as drift uses).

    Returns:
        The batch, most informative first, and what was dropped.

    Raises:
        UserError: ``n`` < 1, an unsupported task or strategy, or nothing new left to label.
    """
    task = predictor.meta["task"]
    if n < 1:
        raise UserError(f"--n must be at least 1, not {n}")
    scores(task, [], strategy)  # an unknown strategy or task fails before the model runs
    fresh, repeats, labelled = _fresh(candidates, exclude)
    if not fresh:
        raise UserError(
            f"nothing left to suggest: of {len(candidates)} texts, {repeats} repeat others, {labelled} are labelled",
            hint="add new unlabelled texts to the pool",
        )
    notes = []
    if n > len(fresh):
        notes.append(f"asked for {n}, but only {len(fresh)} new texts remain: taking all of them")
    examples = [predictor.task.from_text(c.text) for c in fresh]
    predictions = predictor.predict_examples(examples)
    values = scores(task, predictions, strategy)
    texts = [c.text for c in fresh]
    chosen = select(values, n, strategy, seed, embed_fn or (lambda idx: embed([texts[i] for i in idx])))
    rows = [
        Suggestion(
            text=fresh[i].text,
            guess=guess(task, predictions[i]),
            score=float(values[i]),
            tokens=tuple(getattr(examples[i], "tokens", ())),
            prediction_id=fresh[i].prediction_id,
        )
        for i in chosen
    ]
    return SuggestResult(rows, len(candidates), repeats, labelled, notes)


def _fresh(candidates: list[Candidate], exclude: set[str] | frozenset[str]) -> tuple[list[Candidate], int, int]:
    """(the first occurrence of each text not labelled yet, repeats dropped, labelled dropped)."""
    seen: set[str] = set()
    fresh, repeats, labelled = [], 0, 0
    for c in candidates:
        key = text_key(c.text)
        if not key:
            continue
        if key in exclude:
            labelled += 1
        elif key in seen:
            repeats += 1
        else:
            seen.add(key)
            fresh.append(c)
    return fresh, repeats, labelled


def suggest_to_file(
    predictor: Any,
    candidates: list[Candidate],
    output: Path,
    n: int,
    strategy: str,
    seed: int = 0,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> SuggestResult:
    """:func:`suggest`, then write the batch to ``output`` (its suffix checked before the model runs)."""
    check_output(output, predictor.meta["task"])
    result = suggest(predictor, candidates, n, strategy, seed, exclude)
    result.files = write_suggestions(output, predictor.meta["task"], result.rows)
    return result


def summary(result: SuggestResult) -> dict[str, Any]:
    """Counts and score range for printing / JSON."""
    values = np.array([r.score for r in result.rows]) if result.rows else np.zeros(1)
    return {
        "chosen": len(result.rows),
        "read": result.read,
        "repeats": result.repeats,
        "labelled": result.labelled,
        "uncertainty_max": round(float(values.max()), 4),
        "uncertainty_min": round(float(values.min()), 4),
        "files": [str(p) for p in result.files],
        "notes": result.notes,
    }

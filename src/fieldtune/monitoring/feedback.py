"""Corrections: checking one against the model's labels, and importing a file of them.

A correction's ``label`` is stored as JSON in the shape of its task:
classification -> ``"label"``; multilabel -> ``["a", "b"]``; NER -> ``[{"start", "end", "label"}]``
with character offsets into the text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.examples import TaggedSentence, TextExample
from ..errors import UserError


def entity_types(labels: list[str]) -> list[str]:
    """NER models' labels are IOB2 tags; corrections name the entity types."""
    return sorted({tag[2:] for tag in labels if tag[:2] in ("B-", "I-")})


def check_correction(
    task: str,
    labels: list[str],
    text: str | None,
    label: Any,
    *,
    allow_new_labels: bool = False,
) -> Any:
    """The correction in its stored shape, or a UserError saying what is wrong and how to fix it."""
    if task == "ner":
        return _check_entities(text, label, entity_types(labels), allow_new_labels)
    known = set(labels)
    if task == "multilabel":
        if isinstance(label, str):
            label = [label]
        if not isinstance(label, list) or not all(isinstance(x, str) and x.strip() for x in label):
            raise UserError("a multilabel correction is a list of labels", hint='send "labels": ["a", "b"] (or [])')
        values = sorted({x.strip() for x in label})
    else:
        if isinstance(label, list) and len(label) == 1:
            label = label[0]
        if not isinstance(label, str) or not label.strip():
            raise UserError("a classification correction is one label", hint='send "label": "<one of the labels>"')
        values = [label.strip()]
    unknown = [x for x in values if x not in known]
    if unknown and not allow_new_labels:
        raise UserError(
            f"unknown label(s) {unknown}: the model knows {len(known)} labels",
            hint="use one of GET /metadata's labels; new labels are accepted by "
            "`fieldtune feedback import --allow-new-labels`",
        )
    return values if task == "multilabel" else values[0]


def _check_entities(text: str | None, entities: Any, types: list[str], allow_new: bool) -> list[dict[str, Any]]:
    if text is None:
        raise UserError(
            "an NER correction needs the text its offsets point into",
            hint="send the text with the entities",
        )
    if not isinstance(entities, list):
        raise UserError("an NER correction is a list of entities", hint='send "entities": [{"start", "end", "label"}]')
    out, last_end = [], 0
    for i, ent in enumerate(sorted(entities, key=lambda e: e.get("start", 0) if isinstance(e, dict) else 0)):
        if not isinstance(ent, dict) or not {"start", "end", "label"} <= set(ent):
            raise UserError(f"entity {i + 1} needs start, end and label", hint='{"start": 0, "end": 5, "label": "PER"}')
        start, end, label = ent["start"], ent["end"], ent["label"]
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            raise UserError(
                f"entity {i + 1}: offsets {start}..{end} are not inside the text (length {len(text)})",
                hint="start and end are character offsets, end exclusive",
            )
        if start < last_end:
            raise UserError(f"entity {i + 1} overlaps the previous one", hint="entities must not overlap")
        if not text[start:end].strip():
            raise UserError(f"entity {i + 1} covers only whitespace", hint="check the offsets")
        if label not in types and not allow_new:
            raise UserError(f"entity {i + 1}: unknown type {label!r}; the model knows {types}")
        out.append({"start": start, "end": end, "label": label})
        last_end = end
    return out


def words_with_offsets(text: str) -> list[tuple[str, int, int]]:
    """Whitespace words with their character spans (how NER corrections become tagged sentences)."""
    out, i = [], 0
    for word in text.split():
        start = text.index(word, i)
        out.append((word, start, start + len(word)))
        i = start + len(word)
    return out


def to_example(task: str, text: str, label: Any) -> TextExample | TaggedSentence:
    """A stored correction as a training example."""
    if task == "ner":
        words = words_with_offsets(text)
        tags = ["O"] * len(words)
        for ent in label:
            inside = [i for i, (_, s, e) in enumerate(words) if s < ent["end"] and e > ent["start"]]
            for j, i in enumerate(inside):
                tags[i] = ("B-" if j == 0 else "I-") + ent["label"]
        return TaggedSentence(tuple(w for w, _, _ in words), tuple(tags))
    return TextExample(text, tuple(label) if isinstance(label, list) else (label,))


def from_example(task: str, ex: TextExample | TaggedSentence) -> tuple[str, Any]:
    """(text, stored correction) of a labelled example read from a data file."""
    if isinstance(ex, TextExample):
        return ex.text, (list(ex.labels) if task == "multilabel" else ex.labels[0])
    from seqeval.metrics.sequence_labeling import get_entities

    text = " ".join(ex.tokens)
    starts = [sum(len(t) + 1 for t in ex.tokens[:i]) for i in range(len(ex.tokens))]
    ends = [s + len(t) for s, t in zip(starts, ex.tokens)]
    entities = [{"start": starts[s], "end": ends[e], "label": t} for t, s, e in get_entities(list(ex.tags))]
    return text, entities


def import_feedback(
    store: Any, path: Path, meta: dict[str, Any], version: str, *, source: str, allow_new_labels: bool, data_cfg: Any
) -> int:
    """Read a labelled file in the task's training format, check every row, then insert all rows in
    one transaction (a bad row anywhere means none is stored). Returns the number stored."""
    from ..data.readers import read_examples

    task, labels = meta["task"], meta["labels"]
    dataset = read_examples(path, task, data_cfg)
    rows = []
    for ex in dataset.examples:
        text, label = from_example(task, ex)
        try:
            label = check_correction(task, labels, text, label, allow_new_labels=allow_new_labels)
        except UserError as e:
            raise UserError(e.message, path=path, line=ex.line or None, hint=e.hint) from None
        rows.append({"text": text, "label": label, "source": source, "model_version": version})
    if not rows:
        raise UserError("no corrections in the file", path=path)
    store.add_feedback(rows)
    return len(rows)

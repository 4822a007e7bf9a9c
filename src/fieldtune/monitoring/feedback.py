"""Importing a file of corrections: every row is checked against the model's labels, then all are
stored at once.

A correction's ``label`` is stored as JSON in the shape of its task (the task's
``check_correction`` says which): classification -> ``"label"``; multilabel -> ``["a", "b"]``;
NER -> ``[{"start", "end", "label"}]`` with character offsets into the text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.readers import read_examples
from ..errors import UserError
from ..tasks import get_task


def import_feedback(
    store: Any, path: Path, meta: dict[str, Any], version: str, *, source: str, allow_new_labels: bool, data_cfg: Any
) -> int:
    """Read a labelled file in the task's training format, check every row, then insert all rows in
    one transaction (a bad row anywhere means none is stored). Returns the number stored."""
    task, labels = get_task(meta["task"]), meta["labels"]
    dataset = read_examples(path, meta["task"], data_cfg)
    rows = []
    for ex in dataset.examples:
        text, label = task.correction_from_example(ex)
        try:
            label = task.check_correction(labels, text, label, allow_new_labels=allow_new_labels)
        except UserError as e:
            raise UserError(e.message, path=path, line=ex.line or None, hint=e.hint) from None
        rows.append({"text": text, "label": label, "source": source, "model_version": version})
    if not rows:
        raise UserError("no corrections in the file", path=path)
    store.add_feedback(rows)
    return len(rows)

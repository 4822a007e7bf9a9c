"""Seeded stratified splits, unseen-label checks and data fingerprints."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from ..errors import UserError
from ..utils.hashing import file_sha256
from .examples import Dataset, Example, labels_of


def stratified_split(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out ``fraction`` of each stratum (first label; 'none' for none) as dev, reproducibly.

    Strata with a single example stay in train so every class is learnable.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        labels = labels_of(ex)
        groups[min(labels) if labels else "<none>"].append(i)
    rng = random.Random(seed)
    dev_idx: set[int] = set()
    for key in sorted(groups):
        idx = groups[key]
        rng.shuffle(idx)
        n = round(len(idx) * fraction) if len(idx) > 1 else 0
        dev_idx.update(idx[: max(n, 1 if len(idx) >= 4 else 0)])
    train = [ex for i, ex in enumerate(examples) if i not in dev_idx]
    dev = [ex for i, ex in enumerate(examples) if i in dev_idx]
    return train, dev


def sample_shots(examples: list[Example], shots: int, seed: int) -> tuple[list[Example], str]:
    """k examples per label (stratum: the first label, as in :func:`stratified_split`), drawn with
    ``seed`` so the same seed gives the same few-shot set; the order of the file is kept.

    Returns:
        The sample and a note for the report (labels with fewer than k examples keep all they have).
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        labels = labels_of(ex)
        groups[min(labels) if labels else "<none>"].append(i)
    rng = random.Random(seed)
    keep: set[int] = set()
    short = []
    for key in sorted(groups):
        idx = list(groups[key])
        rng.shuffle(idx)
        keep.update(idx[:shots])
        if len(idx) < shots:
            short.append(f"{key} ({len(idx)})")
    note = f"data.shots: {len(keep)} training examples, {shots} per label (seed {seed})"
    if short:
        note += f"; fewer for {', '.join(short[:10])}{' ...' if len(short) > 10 else ''}"
    return [ex for i, ex in enumerate(examples) if i in keep], note


def check_labels_seen(train_labels: set[str], dataset: Dataset, split: str) -> None:
    """A dev/test label that training never saw can't be predicted: say which, and where."""
    unseen: dict[str, int] = {}
    for ex in dataset.examples:
        for label in labels_of(ex):
            if label not in train_labels:
                unseen.setdefault(label, ex.line)
    if unseen:
        listed = ", ".join(f"{label!r} (line {line})" for label, line in sorted(unseen.items()))
        raise UserError(
            f"{split} labels never seen in train: {listed}",
            path=dataset.path,
            hint="add training examples for them, or remove/relabel those rows",
        )


def fingerprint(path: Path | None) -> dict[str, object] | None:
    """sha256 and size of a data file, stored in the artifact so a model names its data."""
    if path is None:
        return None
    return {"path": str(path), "sha256": file_sha256(path), "bytes": Path(path).stat().st_size}

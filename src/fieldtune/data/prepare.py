"""From a config's ``data`` section to train / dev / test example lists, validated."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import RunConfig
from .examples import Dataset, Example, labels_of
from .readers import read_examples
from .splits import check_labels_seen, fingerprint, sample_shots, stratified_split


@dataclass
class Splits:
    train: list[Example]
    dev: list[Example]
    test: list[Example] | None
    notes: list[str] = field(default_factory=list)
    fingerprints: dict[str, Any] = field(default_factory=dict)

    def named(self) -> list[tuple[str, list[Example]]]:
        """``(name, examples)`` of the splits that have examples: train, dev, test."""
        pairs = (("train", self.train), ("dev", self.dev), ("test", self.test))
        return [(name, examples) for name, examples in pairs if examples]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test or [])}


def prepare_splits(cfg: RunConfig) -> Splits:
    """Read and check every file before anything is written or any model is loaded.

    Raises:
        UserError: Any problem in any file, or a dev/test label never seen in train.
    """
    d = cfg.data
    train = read_examples(d.train, cfg.task, d)
    notes = [f"{d.train}: {n}" for n in train.notes]
    examples = train.examples[: d.limit] if d.limit else train.examples
    if d.limit and d.limit < len(train):
        notes.append(f"data.limit: using the first {d.limit} of {len(train)} training examples")
    if d.dev is not None:
        dev_ds = read_examples(d.dev, cfg.task, d)
        notes += [f"{d.dev}: {n}" for n in dev_ds.notes]
    else:
        examples, dev_examples = stratified_split(examples, d.dev_fraction, cfg.train.seed)
        dev_ds = Dataset(None, dev_examples)
        notes.append(f"no dev file: held out {len(dev_examples)} training examples (stratified, seed {cfg.train.seed})")
    if d.shots:
        examples, note = sample_shots(examples, d.shots, cfg.train.seed)
        notes.append(note)
    seen = {label for ex in examples for label in labels_of(ex)}
    check_labels_seen(seen, dev_ds, "dev")
    test_ds = None
    if d.test is not None:
        test_ds = read_examples(d.test, cfg.task, d)
        check_labels_seen(seen, test_ds, "test")
    prints = {name: fingerprint(getattr(d, name)) for name in ("train", "dev", "test")}
    return Splits(examples, dev_ds.examples, test_ds.examples if test_ds else None, notes, prints)

"""The shapes of data fieldtune trains on: labelled texts, tagged sentences, and conversations."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Union


@dataclass(frozen=True)
class TextExample:
    """A text with one label (classification) or a list of labels (multi-label)."""

    text: str
    labels: tuple[str, ...]
    line: int = 0  # where it came from, for error messages


@dataclass(frozen=True)
class TaggedSentence:
    """Pre-split words with one IOB2 tag each (NER)."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    line: int = 0


@dataclass(frozen=True)
class ChatExample:
    """A conversation and the assistant's answer to learn (task causal_lm). No labels: a split of
    these is a plain seeded random split."""

    messages: tuple[tuple[str, str], ...]  # (role, content) pairs before the answer; tuples keep it hashable
    response: str
    line: int = 0

    @property
    def chat(self) -> list[dict[str, str]]:
        """The messages as ``{"role", "content"}`` dicts, the shape chat templates take."""
        return [{"role": role, "content": content} for role, content in self.messages]


Example = Union[TextExample, TaggedSentence, ChatExample]


@dataclass
class Dataset:
    """Examples read from one file, plus what reading them noticed."""

    path: Path | None
    examples: list[Example]
    notes: list[str] = field(default_factory=list)  # e.g. "converted IOB1 to IOB2"

    def __len__(self) -> int:
        return len(self.examples)

    def label_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for ex in self.examples:
            for label in labels_of(ex):
                counts[label] = counts.get(label, 0) + 1
        return counts


def labels_of(ex: Example) -> tuple[str, ...]:
    if isinstance(ex, TextExample):
        return ex.labels
    if isinstance(ex, ChatExample):
        return ()
    return tuple(t[2:] for t in ex.tags if t != "O" and t.startswith("B-"))

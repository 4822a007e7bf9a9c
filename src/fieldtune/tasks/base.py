"""What every task provides. A task turns examples into features and logits into predictions.

Features are plain dicts: ``input_ids`` (list[int]), ``labels`` (int, list[float] or list[int]
with -100 for positions that don't count) and ``example`` (index of the example it came from).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..data.examples import Example


class Task(ABC):
    """One kind of prediction: encoding, head, decoding and metrics."""

    name: str
    auto_model: str  # name of the transformers Auto class that adds the right head
    default_metric: str

    @abstractmethod
    def label_list(self, train: list[Example]) -> list[str]:
        """The label set, in a stable order, from the training examples."""

    @abstractmethod
    def encode(
        self, examples: list[Example], tokenizer: Any, label2id: dict[str, int], max_length: int
    ) -> list[dict[str, Any]]:
        """Features for the model; examples too long for ``max_length`` are windowed or truncated."""

    @abstractmethod
    def decode(
        self,
        examples: list[Example],
        features: list[dict[str, Any]],
        logits: list[np.ndarray],
        id2label: dict[int, str],
        state: dict[str, Any],
    ) -> list[Any]:
        """One prediction per example from the logits of its features."""

    @abstractmethod
    def metrics(self, examples: list[Example], predictions: list[Any], labels: list[str]) -> dict[str, Any]:
        """Scores of ``predictions`` against the gold labels of ``examples``."""

    @abstractmethod
    def baseline(self, train: list[Example], examples: list[Example], labels: list[str]) -> dict[str, Any]:
        """Metrics of a trivial predictor (majority class / no entities) on ``examples``."""

    @abstractmethod
    def from_text(self, text: str) -> Example:
        """An unlabelled example for raw input text."""

    @abstractmethod
    def to_output(self, text: str, example: Example, prediction: Any, top_k: int | None) -> Any:
        """The user-facing JSON for one prediction."""

    def gold_names(self, labels: list[str]) -> set[str]:
        """The names that gold data uses for ``labels`` (NER data names types, not B-/I- tags)."""
        return set(labels)

    def model_kwargs(self, labels: list[str]) -> dict[str, Any]:
        """Extra ``from_pretrained`` arguments (problem type etc.)."""
        return {}

    def tune(
        self, examples: list[Example], features: list[dict[str, Any]], logits: list[np.ndarray], labels: list[str]
    ) -> dict[str, Any]:
        """Fit post-training state on dev (e.g. a multi-label threshold). Stored in the artifact."""
        return {}

    def plots(self, examples: list[Example], predictions: list[Any], labels: list[str], out_dir: Any) -> list[str]:
        """Write task-specific plots; returns file names."""
        return []

"""What every task provides. A task turns examples into features and logits into predictions.

Features are plain dicts: ``input_ids`` (list[int]), ``labels`` (int, list[float] or list[int]
with -100 for positions that don't count) and ``example`` (index of the example it came from).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..data.examples import Example
from ..errors import UserError


class Task(ABC):
    """One kind of prediction: encoding, head, decoding, loss and metrics, and what serving,
    feedback, drift and retraining need to know about its outputs and corrections."""

    name: str
    auto_model: str  # name of the transformers Auto class that adds the right head
    default_metric: str
    chat: bool = False  # served by /v1/chat/completions (a conversation in, generated text out)
    # the new head's learning rate at least, by default (None: the body's): see TokenClassification
    new_head_lr: float | None = None
    # the body's learning rate at least, by default, when the head has more than budget.MANY_CLASSES labels with
    # few examples each (None: the method's): see Classification and training/budget.py
    many_class_lr: float | None = None
    conll_txt: bool = False  # a .txt file of this task's data may be CoNLL columns, not one text a line
    # why the predictions of this task have no label distribution for drift to compare (None: they have)
    no_label_distribution: str | None = None

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
    def loss(self, logits: Any, labels: Any, targets_per_batch: float | None = None) -> Any:
        """The training loss of one batch (a scalar tensor) from the model's logits.

        Args:
            logits: The model's output logits for the batch.
            labels: The collated ``labels`` of the batch's features.
            targets_per_batch: Labelled targets (labels other than -100) in an average training
                batch; losses summed over targets divide by it so that each weighs the same.
        """

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
        self,
        examples: list[Example],
        features: list[dict[str, Any]],
        logits: list[np.ndarray],
        labels: list[str],
        state: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Fit post-training state on dev (e.g. a multi-label threshold), given the state training left
        (a CRF's scores). Stored in the artifact."""
        return {}

    def head_bias(self, examples: list[Example], labels: list[str]) -> np.ndarray | None:
        """A starting bias for a new task head, from the training labels (None: the model's own init)."""
        return None

    def plots(self, examples: list[Example], predictions: list[Any], labels: list[str], out_dir: Any) -> list[str]:
        """Write task-specific plots; returns file names."""
        return []

    # --- calibrated confidence: ECE, abstention, conformal sets (see evaluation.calibration) -------

    def confidences(self, examples: list[Example], predictions: list[Any]) -> tuple[np.ndarray, np.ndarray] | None:
        """(top-label confidence, was it right) per scored decision, for ECE and abstention; None when
        the task's predictions carry no probabilities to calibrate."""
        return None

    def true_label_probs(self, examples: list[Example], predictions: list[Any]) -> np.ndarray | None:
        """The probability each prediction gives the gold label (conformal scores are 1 - it); None when
        the task has no single gold label."""
        return None

    def label_probs(self, prediction: Any) -> dict[str, float] | None:
        """One prediction's probability per label (what a conformal prediction set is drawn from)."""
        return None

    def trusted_output(self, output: Any, prediction: Any, state: dict[str, Any], top_k: int | None) -> Any:
        """The user-facing output with the artifact's abstention / conformal settings applied (``state``:
        fieldtune.json's ``state``); unchanged for tasks without them."""
        return output

    # --- served outputs: what the server logs and drift counts ------------------------------------

    def summarize(self, output: Any) -> tuple[str | None, float | None]:
        """(label, confidence) of one served output, stored with the logged prediction for drift."""
        return None, None

    def drift_labels(self, label: str | None) -> list[str] | None:
        """The labels one logged prediction counts for in the label distribution (its stored
        ``summarize`` label), or None when it has none to count."""
        return None if label is None else [label]

    def reference_labels(self, labels: list[str]) -> list[str]:
        """The label space of the drift label distribution, from the model's labels."""
        return list(labels)

    # --- corrections: feedback and retraining ------------------------------------------------------

    def check_correction(
        self, labels: list[str], text: str | None, label: Any, *, allow_new_labels: bool = False
    ) -> Any:
        """A user's correction in its stored (JSON) shape, or a UserError saying what is wrong.

        Args:
            labels: The model's labels.
            text: The corrected text (None when it was logged as a hash only).
            label: The correction as sent.
            allow_new_labels: Accept labels the model doesn't know.
        """
        raise UserError(f"a {self.name} model takes no corrections", hint="send feedback to a labelling model")

    def correction_example(self, text: str, label: Any) -> Example:
        """A stored correction (checked by :meth:`check_correction`) as a training example."""
        raise UserError(f"a {self.name} model takes no corrections")

    def correction_from_example(self, example: Example) -> tuple[str, Any]:
        """(text, correction in its stored shape) of a labelled example read from a data file."""
        raise UserError(f"a {self.name} model takes no corrections", hint="import corrections for a labelling model")

    def training_row(self, example: Example) -> dict[str, Any]:
        """``example`` as one JSON line of the task's training format (``text`` / ``label`` columns)."""
        raise UserError(f"{self.name} examples are not written as training rows")

    def is_correct(self, example: Example, prediction: Any) -> bool | None:
        """Did ``prediction`` get ``example`` exactly right? None when the task judges errors per
        part (NER: per entity), not per example."""
        return None

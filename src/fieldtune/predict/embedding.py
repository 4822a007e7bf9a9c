"""The predictor of an embedding artifact (``kind: embedding``: zero-shot and SetFit models): sentence
embeddings (sentence-transformers, PyTorch) through a linear head; the task turns the logits into
label probabilities (softmax) or multi-label scores (sigmoid + the tuned threshold)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data.examples import Example
from ..fewshot.head import LinearHead, embed
from ..tasks import get_task
from .base import check_backend, predict_texts, register_predictor, scored
from .loaders import load_embedding_artifact

BACKENDS = ("auto", "torch")


@register_predictor("embedding")
class EmbeddingPredictor:
    """A sentence-transformers body and a linear head over its normalised embeddings."""

    capabilities: frozenset[str] = frozenset()

    def __init__(self, body: Any, head: LinearHead, meta: dict[str, Any], batch_size: int = 32) -> None:
        self.body, self.head, self.meta, self.batch_size = body, head, meta, batch_size
        self.task = get_task(meta["task"])
        self.labels: list[str] = meta["labels"]
        self.id2label = dict(enumerate(self.labels))
        self.max_length: int = meta["max_length"]
        self.backend = "torch"
        body.max_seq_length = self.max_length

    @classmethod
    def from_model_dir(
        cls, model_dir: Path, meta: dict[str, Any], batch_size: int, backend: str, threads: int | None
    ) -> EmbeddingPredictor:
        """The artifact's body and head (see :func:`~fieldtune.predict.loaders.load_embedding_artifact`)."""
        check_backend(
            backend,
            BACKENDS,
            f"backend {backend!r} is not available for an embedding model (zero_shot / setfit)",
            "use --backend torch (or auto)",
        )
        body, head = load_embedding_artifact(model_dir, meta)
        return cls(body, head, meta, batch_size)

    def predict(self, texts: str | list[str], top_k: int | None = None) -> Any:
        """Predict one text (returns one output) or a list (returns a list)."""
        return predict_texts(self, texts, top_k)

    def logits(self, texts: list[str]) -> np.ndarray:
        """``(texts, labels)`` head logits of the texts' embeddings."""
        return self.head.logits(embed(self.body, texts, self.batch_size))

    def predict_examples(self, examples: list[Example]) -> list[Any]:
        """Task-level predictions (label probabilities) for already-built examples."""
        if not examples:
            return []
        logits = self.logits([ex.text for ex in examples])
        return self.task.decode(examples, None, list(logits), self.id2label, self.meta.get("state", {}))

    def evaluate(self, examples: list[Example]) -> dict[str, Any]:
        """Metrics of this model on labelled examples."""
        return scored(self.task, examples, self.predict_examples(examples), self.labels, self.meta.get("state", {}))

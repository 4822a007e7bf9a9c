"""The Predictor of an embedding artifact (fieldtune.json ``kind: embedding``): zero-shot and SetFit
models, with the interface of :class:`fieldtune.predict.Predictor`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import _base_model_path, find_model_dir, read_meta
from ..data.examples import Example
from ..errors import UserError
from ..tasks import get_task
from .head import HEAD_FILE, LinearHead, embed, load_body

BACKENDS = ("auto", "torch")


class EmbeddingPredictor:
    """Sentence embeddings (sentence-transformers, PyTorch) through a linear head; the task turns the
    logits into label probabilities (softmax) or multi-label scores (sigmoid + the tuned threshold)."""

    def __init__(self, body: Any, head: LinearHead, meta: dict[str, Any], batch_size: int = 32) -> None:
        self.body, self.head, self.meta, self.batch_size = body, head, meta, batch_size
        self.task = get_task(meta["task"])
        self.labels: list[str] = meta["labels"]
        self.id2label = dict(enumerate(self.labels))
        self.max_length: int = meta["max_length"]
        self.backend = "torch"
        body.max_seq_length = self.max_length

    @classmethod
    def load(cls, path: str | Path, batch_size: int = 32, backend: str = "auto") -> EmbeddingPredictor:
        """A run folder or its ``model/`` folder. The body is the artifact's own (SetFit) or the base
        model it references (zero-shot), checked against the recorded sha256."""
        if backend not in BACKENDS:
            raise UserError(
                f"backend {backend!r} is not available for an embedding model (zero_shot / setfit)",
                hint="use --backend torch (or auto)",
            )
        model_dir = find_model_dir(path)
        meta = read_meta(model_dir)
        body_dir = model_dir if meta.get("body") == "artifact" else _base_model_path(model_dir, meta)
        return cls(load_body(body_dir), LinearHead.load(model_dir / HEAD_FILE), meta, batch_size)

    def predict(self, texts: str | list[str], top_k: int | None = None) -> Any:
        """Predict one text (returns one output) or a list (returns a list)."""
        from ..predict import predict_texts

        return predict_texts(self, texts, top_k)

    def logits(self, texts: list[str]) -> np.ndarray:
        return self.head.logits(embed(self.body, texts, self.batch_size))

    def predict_examples(self, examples: list[Example]) -> list[Any]:
        """Task-level predictions (label probabilities) for already-built examples."""
        if not examples:
            return []
        logits = self.logits([ex.text for ex in examples])
        return self.task.decode(examples, None, list(logits), self.id2label, self.meta.get("state", {}))

    def evaluate(self, examples: list[Example]) -> dict[str, Any]:
        """Metrics of this model on labelled examples."""
        return self.task.metrics(examples, self.predict_examples(examples), self.labels)

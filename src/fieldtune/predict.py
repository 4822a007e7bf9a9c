"""``Predictor``: load an artifact and predict on raw text, in the output shapes users know.

Classification -> ``{"label", "score"}`` (or a top-k list); multi-label -> ``{"labels", "scores"}``;
NER -> ``[{"entity_group", "word", "start", "end", "score"}]`` with character offsets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .artifacts import Artifact, load_artifact
from .data.examples import Example
from .errors import UserError
from .inference import forward_logits
from .tasks import get_task


class Predictor:
    """Predictions from a saved model. The same object serves the CLI, the API and the server."""

    def __init__(self, artifact: Artifact, batch_size: int = 32) -> None:
        self.artifact, self.batch_size = artifact, batch_size
        self.meta = artifact.meta
        self.task = get_task(self.meta["task"])
        self.labels: list[str] = self.meta["labels"]
        self.id2label = dict(enumerate(self.labels))
        self.label2id = {label: i for i, label in enumerate(self.labels)}
        self.max_length: int = self.meta["max_length"]

    @classmethod
    def load(cls, path: str | Path, batch_size: int = 32) -> Predictor:
        return cls(load_artifact(path), batch_size)

    def predict(self, texts: str | list[str], top_k: int | None = None) -> Any:
        """Predict one text (returns one output) or a list (returns a list)."""
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        for i, text in enumerate(batch):
            if not isinstance(text, str) or not text.strip():
                raise UserError(f"input {i + 1} is empty or not a string", hint="pass non-empty text")
        examples = [self.task.from_text(t) for t in batch]
        predictions = self.predict_examples(examples)
        outputs = [self.task.to_output(t, ex, p, top_k) for t, ex, p in zip(batch, examples, predictions)]
        return outputs[0] if single else outputs

    def predict_examples(self, examples: list[Example]) -> list[Any]:
        """Task-level predictions (label probabilities / tags) for already-built examples."""
        tok, model = self.artifact.tokenizer, self.artifact.model
        features = self.task.encode(examples, tok, self.label2id, self.max_length)
        logits = forward_logits(model, features, self.batch_size, tok.pad_token_id)
        return self.task.decode(examples, features, logits, self.id2label, self.meta.get("state", {}))

    def evaluate(self, examples: list[Example]) -> dict[str, Any]:
        """Metrics of this model on labelled examples."""
        return self.task.metrics(examples, self.predict_examples(examples), self.labels)


def load(path: str | Path, batch_size: int = 32) -> Predictor:
    """``fieldtune.load(path).predict([...])``."""
    return Predictor.load(path, batch_size)

"""``Predictor``: load an artifact and predict on raw text, in the output shapes users know.

Classification -> ``{"label", "score"}`` (or a top-k list); multi-label -> ``{"labels", "scores"}``;
NER -> ``[{"entity_group", "word", "start", "end", "score"}]`` with character offsets.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import Artifact, find_model_dir, load_artifact, read_meta
from .data.examples import Example
from .errors import UserError
from .inference import forward_logits
from .tasks import get_task

Forward = Callable[[list[dict[str, Any]], int, int], list[np.ndarray]]


class Predictor:
    """Predictions from a saved model. The same object serves the CLI, the API and the server.

    ``backend`` says what computes the logits: ``torch`` (the artifact's PyTorch model),
    ``torch-bf16`` (the same under bf16 autocast) or ``onnx`` / ``onnx-int8`` (ONNX Runtime over
    ``MODEL_DIR/onnx``, see ``fieldtune export``).
    """

    def __init__(
        self,
        artifact: Artifact,
        batch_size: int = 32,
        onnx_session: Any = None,
        backend: str | None = None,
        autocast: bool = False,
    ) -> None:
        self.artifact, self.batch_size = artifact, batch_size
        self.meta = artifact.meta
        self.task = get_task(self.meta["task"])
        self.labels: list[str] = self.meta["labels"]
        self.id2label = dict(enumerate(self.labels))
        self.label2id = {label: i for i, label in enumerate(self.labels)}
        self.max_length: int = self.meta["max_length"]
        if onnx_session is None:
            self.backend = "torch-bf16" if autocast else "torch"
            self._forward: Forward = functools.partial(forward_logits, artifact.model, autocast=autocast)
        else:
            from .export.runtime import onnx_forward_logits

            self.backend = backend or "onnx"
            self._forward = functools.partial(onnx_forward_logits, onnx_session)

    @classmethod
    def load(
        cls, path: str | Path, batch_size: int = 32, backend: str = "auto", threads: int | None = None
    ) -> Predictor:
        """Load a run or model folder.

        Args:
            path: A run folder or its ``model/`` folder.
            batch_size: Texts per forward pass.
            backend: ``auto`` (ONNX when exported: int8 if present, else fp32; otherwise torch),
                ``torch``, ``torch-bf16`` (bf16 autocast), ``onnx`` (as auto, but an error
                without an export), ``onnx-fp32`` or ``onnx-int8``.
            threads: ONNX Runtime threads per call (default: all cores). A server running
                N calls at once gives each ``cores / N``.
        """
        from .export.runtime import open_session, resolve_backend

        model_dir = find_model_dir(path)
        kind = read_meta(model_dir).get("kind", "encoder")
        if kind != "encoder":  # a causal LM or a sentence-embedding model: its own predictor, same interface
            return _kind_predictor(kind, model_dir).load(model_dir, batch_size=batch_size, backend=backend)
        name, onnx_path = resolve_backend(model_dir, backend)
        if onnx_path is None:
            return cls(load_artifact(model_dir), batch_size, autocast=name == "torch-bf16")
        artifact = load_artifact(model_dir, with_model=False)  # no torch weights: ONNX runs it
        return cls(artifact, batch_size, open_session(onnx_path, threads), name)

    def predict(self, texts: str | list[str], top_k: int | None = None) -> Any:
        """Predict one text (returns one output) or a list (returns a list)."""
        return predict_texts(self, texts, top_k)

    def predict_examples(self, examples: list[Example]) -> list[Any]:
        """Task-level predictions (label probabilities / tags) for already-built examples."""
        tok = self.artifact.tokenizer
        features = self.task.encode(examples, tok, self.label2id, self.max_length)
        logits = self._forward(features, self.batch_size, tok.pad_token_id)
        return self.task.decode(examples, features, logits, self.id2label, self.meta.get("state", {}))

    def evaluate(self, examples: list[Example]) -> dict[str, Any]:
        """Metrics of this model on labelled examples."""
        return self.task.metrics(examples, self.predict_examples(examples), self.labels)


def predict_texts(predictor: Any, texts: str | list[str], top_k: int | None = None) -> Any:
    """``predict`` of every predictor kind: checks the texts, builds the task's examples, and shapes
    the outputs; ``predictor`` gives ``task`` and ``predict_examples``."""
    single = isinstance(texts, str)
    batch = [texts] if single else list(texts)
    for i, text in enumerate(batch):
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"input {i + 1} is empty or not a string", hint="pass non-empty text")
    examples = [predictor.task.from_text(t) for t in batch]
    predictions = predictor.predict_examples(examples)
    outputs = [predictor.task.to_output(t, ex, p, top_k) for t, ex, p in zip(batch, examples, predictions)]
    return outputs[0] if single else outputs


# kind (fieldtune.json) -> "module:Class" of its predictor; each has load(model_dir, batch_size, backend),
# predict(texts, top_k), predict_examples(examples), evaluate(examples) and task / labels / meta / backend
KIND_PREDICTORS = {
    "llm": "fieldtune.llm.predictor:LLMPredictor",
    "embedding": "fieldtune.fewshot.predictor:EmbeddingPredictor",
}


def _kind_predictor(kind: str, model_dir: Path) -> Any:
    import importlib

    if kind not in KIND_PREDICTORS:
        raise UserError(f"unknown model kind {kind!r} in fieldtune.json", path=model_dir, hint="upgrade fieldtune")
    module, _, name = KIND_PREDICTORS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def load(path: str | Path, batch_size: int = 32, backend: str = "auto") -> Predictor:
    """``fieldtune.load(path).predict([...])``; ``backend``: auto | torch | onnx."""
    return Predictor.load(path, batch_size, backend)

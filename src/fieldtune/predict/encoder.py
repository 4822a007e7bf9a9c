"""The predictor of an encoder artifact (``kind: encoder``): PyTorch or ONNX Runtime logits, decoded by the task.

Classification -> ``{"label", "score"}`` (or a top-k list); multi-label -> ``{"labels", "scores"}``;
NER -> ``[{"entity_group", "word", "start", "end", "score"}]`` with character offsets.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import Artifact
from ..data.examples import Example
from ..evaluation.calibration import uncalibrated_state
from ..inference import forward_logits
from ..tasks import get_task
from .base import load_predictor, predict_texts, register_predictor, scored
from .loaders import load_artifact
from .onnx_runtime import onnx_forward_logits, open_session, resolve_backend

Forward = Callable[[list[dict[str, Any]], int, int], list[np.ndarray]]


@register_predictor("encoder")
class Predictor:
    """Predictions from a saved model. The same object serves the CLI, the API and the server.

    ``backend`` says what computes the logits: ``torch`` (the artifact's PyTorch model),
    ``torch-bf16`` (the same under bf16 autocast) or ``onnx`` / ``onnx-int8`` (ONNX Runtime over
    ``MODEL_DIR/onnx``, see ``fieldtune export``).
    """

    capabilities: frozenset[str] = frozenset()

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
            self.backend = backend or "onnx"
            self._forward = functools.partial(onnx_forward_logits, onnx_session)

    @classmethod
    def load(cls, path: str | Path, batch_size: int = 32, backend: str = "auto", threads: int | None = None) -> Any:
        """Load a run or model folder of any kind (an LLM or embedding artifact gets its own predictor).

        Args:
            path: A run folder or its ``model/`` folder.
            batch_size: Texts per forward pass.
            backend: ``auto`` (ONNX when exported: int8 if present, else fp32; otherwise torch),
                ``torch``, ``torch-bf16`` (bf16 autocast), ``onnx`` (as auto, but an error
                without an export), ``onnx-fp32`` or ``onnx-int8``.
            threads: ONNX Runtime threads per call (default: all cores). A server running
                N calls at once gives each ``cores / N``.

        Returns:
            A predictor (see :func:`fieldtune.predict.load_predictor`).
        """
        return load_predictor(path, batch_size=batch_size, backend=backend, threads=threads)

    @classmethod
    def from_model_dir(
        cls, model_dir: Path, meta: dict[str, Any], batch_size: int, backend: str, threads: int | None
    ) -> Predictor:
        """The registry's constructor: PyTorch weights, or an ONNX session when ``backend`` resolves to one."""
        name, onnx_path = resolve_backend(model_dir, backend)
        if onnx_path is None:
            return cls(load_artifact(model_dir), batch_size, autocast=name == "torch-bf16")
        artifact = load_artifact(model_dir, with_model=False)  # no torch weights: ONNX runs it
        return cls(artifact, batch_size, open_session(onnx_path, threads), name)

    def use_forward(self, forward: Forward, backend: str) -> None:
        """Compute logits with ``forward`` from now on (``(features, batch_size, pad_id) -> logits per
        feature``); ``fieldtune watch`` passes its shared int8 graph (:mod:`fieldtune.apps.watch.shared`)."""
        self._forward, self.backend = forward, backend

    def predict(self, texts: str | list[str], top_k: int | None = None) -> Any:
        """Predict one text (returns one output) or a list (returns a list)."""
        return predict_texts(self, texts, top_k)

    def predict_examples(self, examples: list[Example]) -> list[Any]:
        """Task-level predictions (label probabilities / tags) for already-built examples."""
        return self._decoded(examples)[0]

    def evaluate(self, examples: list[Example]) -> dict[str, Any]:
        """Metrics of this model on labelled examples (with ECE before and after temperature scaling)."""
        predictions, uncalibrated = self._decoded(examples, with_uncalibrated=True)
        return scored(self.task, examples, predictions, self.labels, self.meta.get("state", {}), uncalibrated)

    def _decoded(self, examples: list[Example], with_uncalibrated: bool = False) -> tuple[list[Any], Any]:
        tok, state = self.artifact.tokenizer, self.meta.get("state", {})
        features = self.task.encode(examples, tok, self.label2id, self.max_length)
        logits = self._forward(features, self.batch_size, tok.pad_token_id)
        predictions = self.task.decode(examples, features, logits, self.id2label, state)
        if not with_uncalibrated:
            return predictions, None
        raw_state = uncalibrated_state(state)
        return predictions, self.task.decode(examples, features, logits, self.id2label, raw_state)

"""The Predictor of a causal-LM artifact (fieldtune.json ``kind: llm``): one per task, same interface
as :class:`fieldtune.predict.Predictor` (``predict``, ``predict_examples``, ``evaluate``, ``task``,
``labels``, ``meta``, ``backend``, ``batch_size``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..artifacts import find_model_dir, read_meta


class LLMPredictor:
    """Dispatches on the artifact's task to the module that knows it."""

    @classmethod
    def load(cls, path: str | Path, batch_size: int = 32, backend: str = "auto") -> Any:
        model_dir = find_model_dir(path)
        task = read_meta(model_dir)["task"]
        if task == "causal_lm":
            from .instruct import ChatPredictor as impl
        elif task == "ner":
            from .ner import NerPredictor as impl
        else:
            from .classify import ClassifierPredictor as impl
        return impl.load(model_dir, batch_size=batch_size, backend=backend)

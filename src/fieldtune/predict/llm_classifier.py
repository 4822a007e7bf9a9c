"""The predictor of a causal-LM classification artifact (``kind: llm``, task ``classification``): the
label words scored as the model's answer (:class:`~fieldtune.llm.classify.LLMClassifier`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..data.examples import TextExample
from ..llm.classify import POOL_FILE, LLMClassifier
from ..tasks import get_task
from .base import check_backend, predict_texts, register_predictor, scored
from .loaders import load_llm_artifact

BACKENDS = ("auto", "torch", "torch-bf16")  # no ONNX export of an LLM


@register_predictor("llm", task="classification")
class ClassifierPredictor:
    """Label probabilities from a causal LM, with the encoder classification predictor's output shape."""

    capabilities: frozenset[str] = frozenset()

    def __init__(self, clf: LLMClassifier, meta: dict[str, Any], batch_size: int, backend: str) -> None:
        self.clf, self.meta, self.batch_size, self.backend = clf, meta, batch_size, backend
        self.task = get_task("classification")
        self.labels: list[str] = meta["labels"]
        self.max_length: int = meta["max_length"]

    @classmethod
    def from_model_dir(
        cls, model_dir: Path, meta: dict[str, Any], batch_size: int, backend: str, threads: int | None
    ) -> ClassifierPredictor:
        """``backend``: auto / torch (fp32) or torch-bf16 (bf16 autocast); ``threads`` is not used."""
        check_backend(
            backend,
            BACKENDS,
            f"backend {backend} is not available for a causal LM",
            "use torch or torch-bf16",
        )
        model, tokenizer = load_llm_artifact(model_dir, meta)
        autocast = backend == "torch-bf16"
        pool = _shot_pool(model_dir)
        clf = LLMClassifier(model, tokenizer, meta["labels"], meta["state"], pool, meta["max_length"], autocast)
        return cls(clf, meta, batch_size, "torch-bf16" if autocast else "torch")

    def predict(self, texts: str | list[str], top_k: int | None = None) -> Any:
        """Predict one text (returns one output) or a list (returns a list)."""
        return predict_texts(self, texts, top_k)

    def predict_examples(self, examples: list[TextExample]) -> list[dict[str, float]]:
        """``{label: probability}`` per example."""
        return self.clf.probabilities([ex.text for ex in examples])

    def evaluate(self, examples: list[TextExample]) -> dict[str, Any]:
        """Accuracy / F1 metrics on labelled examples (with ECE before and after temperature scaling)."""
        scores = self.clf.log_scores([ex.text for ex in examples])
        raw = self.clf.as_dicts(scores, temperature=1.0)
        state = self.meta.get("state", {})
        return scored(self.task, examples, self.clf.as_dicts(scores), self.labels, state, uncalibrated=raw)


def _shot_pool(model_dir: Path) -> list[tuple[str, str]] | None:
    """in_context: the training examples the shots are chosen from (``examples.jsonl``), else None."""
    if not (model_dir / POOL_FILE).is_file():
        return None
    lines = (model_dir / POOL_FILE).read_text(encoding="utf-8").splitlines()
    return [(r["text"], r["label"]) for r in map(json.loads, filter(None, lines))]

"""The predictor registry and ``load_predictor``'s dispatch on fieldtune.json's kind and task, without
loading any model (the per-kind predictors are loaded for real in test_export, test_llm_classify,
test_llm_instruct, test_llm_ner and test_fewshot, on the artifacts those tests train)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import fieldtune
from fieldtune.predict import PredictorProtocol, load_predictor, register_predictor, registered_predictors
from fieldtune.predict import base as predict_base
from fieldtune.predict.chat import ChatPredictor
from fieldtune.predict.embedding import EmbeddingPredictor
from fieldtune.predict.llm_classifier import ClassifierPredictor
from fieldtune.predict.llm_ner import NerPredictor
from fieldtune.tasks import get_task


class FakePredictor:
    """Satisfies the protocol; records how it was built."""

    capabilities: frozenset[str] = frozenset()

    def __init__(self, model_dir: Path, meta: dict[str, Any], batch_size: int, backend: str) -> None:
        self.model_dir, self.meta, self.batch_size, self.backend = model_dir, meta, batch_size, backend
        self.task = get_task("classification")
        self.labels = meta["labels"]

    @classmethod
    def from_model_dir(cls, model_dir, meta, batch_size, backend, threads):
        return cls(model_dir, meta, batch_size, backend)

    def predict(self, texts, top_k=None):
        return predict_base.predict_texts(self, texts, top_k)

    def predict_examples(self, examples):
        return [{label: 1.0 / len(self.labels) for label in self.labels} for _ in examples]

    def evaluate(self, examples):
        return self.task.metrics(examples, self.predict_examples(examples), self.labels)


@pytest.fixture
def registry(monkeypatch):
    """A scratch copy of the registry: what a test registers is gone afterwards."""
    monkeypatch.setattr(predict_base, "_REGISTRY", dict(registered_predictors()))


def artifact(tmp_path: Path, **meta: Any) -> Path:
    folder = tmp_path / "run" / "model"
    folder.mkdir(parents=True)
    (folder / "fieldtune.json").write_text(json.dumps({"labels": ["a", "b"], **meta}), encoding="utf-8")
    return folder


def test_every_artifact_kind_has_its_predictor():
    assert registered_predictors() == {
        ("encoder", None): fieldtune.Predictor,
        ("llm", "classification"): ClassifierPredictor,
        ("llm", "causal_lm"): ChatPredictor,
        ("llm", "ner"): NerPredictor,
        ("embedding", None): EmbeddingPredictor,
    }
    assert ChatPredictor.capabilities == {"chat", "generate"}
    assert all(not cls.capabilities for cls in (fieldtune.Predictor, ClassifierPredictor, NerPredictor))


def test_dispatch_on_kind_and_task_then_kind(registry, tmp_path):
    register_predictor("fake")(FakePredictor)
    folder = artifact(tmp_path, kind="fake", task="classification")
    predictor = load_predictor(folder.parent, batch_size=4, backend="torch")  # the run folder works too
    assert type(predictor) is FakePredictor and isinstance(predictor, PredictorProtocol)
    assert (predictor.model_dir, predictor.batch_size, predictor.backend) == (folder, 4, "torch")
    assert predictor.predict("hello") == predictor.predict(["hello"])[0]
    assert type(fieldtune.Predictor.load(folder)) is FakePredictor  # the public entry point dispatches too
    assert type(fieldtune.load(folder)) is FakePredictor

    class Narrow(FakePredictor):
        pass

    register_predictor("fake", task="classification")(Narrow)
    assert type(load_predictor(folder)) is Narrow  # (kind, task) first


def test_duplicates_and_classes_without_a_constructor_are_refused(registry):
    with pytest.raises(ValueError, match="registered already"):
        register_predictor("llm", task="ner")(FakePredictor)
    with pytest.raises(ValueError, match="from_model_dir"):
        register_predictor("other")(object)


def test_unknown_kind_or_task_is_a_user_error(tmp_path):
    with pytest.raises(fieldtune.UserError, match="unknown model kind 'quantum'"):
        load_predictor(artifact(tmp_path, kind="quantum", task="classification"))
    with pytest.raises(fieldtune.UserError, match="unknown task 'poetry' for model kind 'llm'"):
        load_predictor(artifact(tmp_path / "b", kind="llm", task="poetry"))


def test_backends_a_kind_lacks_are_refused_before_loading(tmp_path):
    # no weights, no base model: each would fail later if the backend check didn't come first
    with pytest.raises(fieldtune.UserError, match="not available for causal LMs"):
        load_predictor(artifact(tmp_path / "chat", kind="llm", task="causal_lm"), backend="onnx")
    with pytest.raises(fieldtune.UserError, match="not available for an embedding model"):
        load_predictor(artifact(tmp_path / "emb", kind="embedding", task="classification"), backend="onnx")

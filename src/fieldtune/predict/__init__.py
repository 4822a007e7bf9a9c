"""Predicting with a saved artifact: one predictor per artifact kind behind one protocol, one loader.

base            :class:`PredictorProtocol`, the registry (:func:`register_predictor`), :func:`load_predictor`,
                :func:`predict_texts`
loaders         one loader per artifact kind (encoder, llm, embedding), also used by ``export --merge``
onnx_runtime    the ONNX Runtime backend of encoder predictors
encoder         :class:`Predictor`: encoder artifacts, PyTorch or ONNX (``fieldtune.Predictor``)
llm_classifier  causal-LM classification (label scoring)
chat            causal-LM generation and chat (``capabilities``: chat, generate)
llm_ner         prompted causal-LM NER
embedding       zero-shot / SetFit sentence-embedding models

The kind modules are imported here so that their predictors are registered whenever
``fieldtune.predict`` (or any module in it) is imported.
"""

from __future__ import annotations

from pathlib import Path

from . import chat, embedding, encoder, llm_classifier, llm_ner
from .base import (
    CHAT,
    GENERATE,
    PredictorProtocol,
    load_predictor,
    predict_texts,
    register_predictor,
    registered_predictors,
)
from .encoder import Predictor

KIND_MODULES = (chat, embedding, encoder, llm_classifier, llm_ner)  # each registers its predictor(s)

__all__ = [
    "CHAT",
    "GENERATE",
    "Predictor",
    "PredictorProtocol",
    "load",
    "load_predictor",
    "predict_texts",
    "register_predictor",
    "registered_predictors",
]


def load(path: str | Path, batch_size: int = 32, backend: str = "auto") -> PredictorProtocol:
    """``fieldtune.load(path).predict([...])``; ``backend``: auto | torch | onnx (see :func:`load_predictor`)."""
    return load_predictor(path, batch_size, backend)

"""Why a model predicted what it did: per-word attributions for one text.

words      the words the user sees (whitespace / punctuation spans with character offsets), sub-word
           pieces mapped onto them and summed
gradients  integrated gradients on the input embeddings of a PyTorch encoder (completeness checked)
text       classification and multi-label: integrated gradients, or occlusion for any predictor
entities   NER: why a span got its type
render     the standalone HTML page (words shaded red / green)

:func:`explain` picks the method: integrated gradients where the predictor has a PyTorch encoder,
occlusion otherwise (LLM label scoring, embedding zero-shot / SetFit, ONNX Runtime).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..artifacts import find_model_dir, read_meta
from ..errors import UserError
from ..predict import load_predictor
from ..predict.base import DEFAULT_KIND, checked_texts
from .entities import explain_entities
from .text import explain_classification, torch_model

METHODS = ("auto", "ig", "occlusion")
TASKS = ("classification", "multilabel", "ner")

__all__ = ["METHODS", "explain", "load_for_explaining", "resolve_method"]


def load_for_explaining(path: str | Path) -> Any:
    """The predictor of a run or model folder; an encoder loads its PyTorch weights (not ONNX), which
    integrated gradients need."""
    model_dir = find_model_dir(path)
    kind = read_meta(model_dir).get("kind", DEFAULT_KIND)
    return load_predictor(model_dir, batch_size=32, backend="torch" if kind == "encoder" else "auto")


def resolve_method(predictor: Any, method: str) -> str:
    """``auto`` -> ``ig`` with a PyTorch encoder, else ``occlusion``; ``ig`` without one is refused."""
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}", hint=f"use one of: {', '.join(METHODS)}")
    has_gradients = torch_model(predictor) is not None
    if method == "auto":
        return "ig" if has_gradients else "occlusion"
    if method == "ig" and not has_gradients:
        raise UserError(
            "integrated gradients need a PyTorch encoder; this model is scored another way "
            f"({predictor.meta.get('kind', DEFAULT_KIND)}, backend {predictor.backend})",
            hint="use --method occlusion (or load an encoder with --backend torch)",
        )
    return method


def explain(
    predictor: Any,
    text: str,
    *,
    label: str | None = None,
    method: str = "auto",
    steps: int = 50,
    span: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Per-word attributions for one prediction.

    Args:
        predictor: A loaded predictor (:func:`load_for_explaining` or ``fieldtune.load``).
        text: The text, as sent to ``predict``; offsets index it.
        label: Explain this label (NER: entity type) instead of the predicted one.
        method: ``auto``, ``ig`` (integrated gradients) or ``occlusion``.
        steps: Integrated-gradients quadrature points.
        span: NER: ``(start, end)`` characters of the entity to explain (default: every predicted one).

    Returns:
        Classification: ``{"label", "score", "method", "attributions": [{"word", "start", "end",
        "score"}], "convergence_delta"}`` (the delta with ``ig`` only). NER: ``{"method", "entities":
        [...]}``, one such object per entity plus its ``word``, ``start`` and ``end``.

    Raises:
        UserError: An empty text, an unknown label or method, a task with no labels to explain.
    """
    [text] = checked_texts([text])
    task = predictor.task.name
    if task not in TASKS:
        raise UserError(f"explanations are for {', '.join(TASKS)} models, not {task}")
    if steps < 1:
        raise UserError("steps must be at least 1", hint="--steps 50")
    method = resolve_method(predictor, method)
    if task == "ner":
        return explain_entities(predictor, text, span, label, method, steps)
    return explain_classification(predictor, text, label, method, steps)

"""Explaining one text-classification prediction (single- or multi-label): integrated gradients on a
PyTorch encoder, occlusion for every predictor (LLM label scoring, embedding zero-shot / SetFit, ONNX).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UserError
from .gradients import baseline_ids, integrated_gradients
from .words import Word, attributions, pieces_to_words, split_words, sum_per_word, word_of_char


def torch_model(predictor: Any) -> Any:
    """The predictor's PyTorch encoder, or None (ONNX, LLM and embedding predictors have none)."""
    return getattr(getattr(predictor, "artifact", None), "model", None)


def label_probabilities(predictor: Any, texts: list[str]) -> list[dict[str, float]]:
    """``{label: probability}`` per text, as the predictor scores it (calibrated; multi-label: sigmoids)."""
    task = predictor.task
    predictions = predictor.predict_examples([task.from_text(t) for t in texts])
    return [task.label_probs(p) or p["scores"] for p in predictions]


def chosen_label(probs: dict[str, float], label: str | None, labels: list[str]) -> str:
    """``label`` when given (checked against the model's labels), else the most probable one."""
    if label is None:
        return max(probs, key=probs.get)
    if label not in labels:
        shown = ", ".join(labels[:20]) + (" ..." if len(labels) > 20 else "")
        raise UserError(f"unknown label {label!r} for this model", hint=f"use one of: {shown}")
    return label


def explain_classification(predictor: Any, text: str, label: str | None, method: str, steps: int) -> dict[str, Any]:
    """``{"label", "score", "method", "attributions", ["convergence_delta"]}`` for one text.

    The score is the label's probability as ``predict`` gives it. Integrated gradients explain the
    label's logit (before temperature scaling); occlusion the drop in the label's probability when
    the word is deleted from the text.
    """
    words = split_words(text)
    [probs] = label_probabilities(predictor, [text])
    label = chosen_label(probs, label, predictor.labels)
    out: dict[str, Any] = {"label": label, "score": round(float(probs[label]), 6), "method": method}
    if method == "ig":
        scores, delta = gradient_scores(predictor, text, words, predictor.labels.index(label), steps)
        out["convergence_delta"] = round(delta, 6)
    else:
        scores = occlusion_scores(predictor, text, words, label, probs[label])
    out["attributions"] = attributions(words, scores)
    return out


def gradient_scores(
    predictor: Any, text: str, words: list[Word], label_id: int, steps: int
) -> tuple[np.ndarray, float]:
    """Integrated-gradients attribution per word of the label's logit, and the convergence delta."""
    tok = predictor.artifact.tokenizer
    if not getattr(tok, "is_fast", False):
        raise UserError("integrated gradients need a fast tokenizer (character offsets)", hint="use --method occlusion")
    enc = tok(
        text,
        truncation=True,
        max_length=predictor.max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    ids = enc["input_ids"]
    base = baseline_ids(ids, enc["special_tokens_mask"], tok.pad_token_id)
    grads = integrated_gradients(torch_model(predictor), ids, base, lambda logits: logits[:, label_id], steps)
    piece_words = pieces_to_words(enc["offset_mapping"], word_of_char(text, words))
    return sum_per_word(grads.pieces, piece_words, len(words)), grads.convergence_delta


def occlusion_scores(predictor: Any, text: str, words: list[Word], label: str, full: float) -> np.ndarray:
    """Per word: the label's probability on the text minus that on the text without the word."""
    if not words:
        return np.zeros(0)
    variants = [text[: w.start] + text[w.end :] for w in words]
    return np.array([full - p[label] for p in label_probabilities(predictor, variants)], dtype=np.float64)

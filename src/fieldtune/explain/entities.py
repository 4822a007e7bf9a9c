"""Explaining NER: why a span got its type. The explained value is the sum of the span's tag logits
(``B-TYPE`` / ``I-TYPE`` as predicted) at the first piece of each of its words — the positions the
tagger predicts from. Integrated gradients on the PyTorch encoder; occlusion masks one word at a time
(its pieces become ``[MASK]``, so positions stay put) and reports the drop in the mean probability
of the span's tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UserError
from ..evaluation.metrics import spans
from ..inference import forward_logits
from .gradients import baseline_ids, integrated_gradients
from .text import torch_model
from .words import Word, attributions, split_words, sum_per_word


@dataclass(frozen=True)
class Span:
    """An entity to explain: its type, its words (first..last) and their tags."""

    type: str
    first: int
    last: int
    tags: tuple[str, ...]


def explain_entities(
    predictor: Any, text: str, span: tuple[int, int] | None, label: str | None, method: str, steps: int
) -> dict[str, Any]:
    """``{"method", "entities": [{"label", "score", "word", "start", "end", "attributions", ...}]}``:
    every predicted entity, or the one overlapping ``span`` (characters); with ``label`` too, that
    span as an entity of type ``label`` whether predicted or not."""
    model = torch_model(predictor)
    if model is None:
        raise UserError("explaining a NER model needs its PyTorch weights", hint="load it with --backend torch")
    words = split_words(text)
    example = predictor.task.from_text(text)
    [(tags, _)] = predictor.predict_examples([example])
    chosen = _chosen_spans(tags, words, span, label, predictor.labels)
    feats = predictor.task.encode([example], predictor.artifact.tokenizer, predictor.label2id, predictor.max_length)
    entities = [_explain_span(predictor, model, feats, text, s, method, steps) for s in chosen]
    return {"method": method, "entities": entities}


def _chosen_spans(
    tags: list[str], words: list[Word], span: tuple[int, int] | None, label: str | None, labels: list[str]
) -> list[Span]:
    predicted = [Span(t, a, b, tuple(tags[a : b + 1])) for t, a, b in spans(tags)]
    if span is None:
        return predicted
    inside = [i for i, w in enumerate(words) if w.start < span[1] and w.end > span[0]]
    if not inside:
        raise UserError(f"no word in characters {span[0]}:{span[1]} of the text", hint="--span START:END")
    if label is None:
        hits = [s for s in predicted if s.first <= inside[-1] and s.last >= inside[0]]
        if not hits:
            raise UserError("no entity predicted there", hint="add --label TYPE to explain that span as TYPE")
        return hits[:1]
    if f"B-{label}" not in labels:
        types = sorted({t[2:] for t in labels if t != "O"})
        raise UserError(f"unknown entity type {label!r}", hint=f"use one of: {', '.join(types)}")
    n = len(inside)
    return [Span(label, inside[0], inside[-1], (f"B-{label}",) + (f"I-{label}",) * (n - 1))]


def _window(feats: list[dict[str, Any]], s: Span, n_special: int) -> tuple[dict[str, Any], list[int]]:
    """The window holding the span's words, and the word of each of its pieces (-1: special)."""
    for feat in feats:
        first = feat["first"]
        held = {w for _, w in first}
        if s.first in held and s.last in held:
            n = len(feat["input_ids"])
            prefix = first[0][0] if first else 1
            end = n - (n_special - prefix)  # where the suffix's special tokens begin
            owners = [-1] * n
            bounds = [p for p, _ in first] + [end]
            for (pos, word), nxt in zip(first, bounds[1:]):
                owners[pos:nxt] = [word] * (nxt - pos)
            return feat, owners
    raise UserError("the entity spans two windows of the model's length limit", hint="explain a shorter text")


def _explain_span(
    predictor: Any, model: Any, feats: list[dict[str, Any]], text: str, s: Span, method: str, steps: int
) -> dict[str, Any]:
    words = split_words(text)
    tok = predictor.artifact.tokenizer
    feat, owners = _window(feats, s, tok.num_special_tokens_to_add())
    first_pos = {w: p for p, w in feat["first"]}
    positions = [first_pos[w] for w in range(s.first, s.last + 1)]
    tag_ids = [predictor.label2id[t] for t in s.tags]
    ids = feat["input_ids"]
    full = forward_logits(model, [{"input_ids": ids}], 1, tok.pad_token_id)[0]
    score = _tag_prob(full, positions, tag_ids)
    out: dict[str, Any] = {"label": s.type, "score": round(score, 6), "method": method}
    start, end = words[s.first].start, words[s.last].end
    out.update({"word": text[start:end], "start": start, "end": end})
    if method == "ig":
        pos_t, tag_t = np.array(positions), np.array(tag_ids)

        def target(logits):
            return logits[:, pos_t, tag_t].sum(-1)

        special = [int(o < 0) for o in owners]
        grads = integrated_gradients(model, ids, baseline_ids(ids, special, tok.pad_token_id), target, steps)
        scores = sum_per_word(grads.pieces, owners, len(words))
        out["convergence_delta"] = round(grads.convergence_delta, 6)
    else:
        scores = _occlusion(model, tok, ids, owners, len(words), positions, tag_ids, score)
    out["attributions"] = attributions(words, scores)
    return out


def _tag_prob(logits: np.ndarray, positions: list[int], tag_ids: list[int]) -> float:
    """Mean probability of the span's tags at its words' first pieces."""
    e = np.exp(logits - logits.max(-1, keepdims=True))
    probs = e / e.sum(-1, keepdims=True)
    return float(np.mean([probs[p, t] for p, t in zip(positions, tag_ids)]))


def _occlusion(model, tok, ids, owners, n_words, positions, tag_ids, full: float) -> np.ndarray:
    mask_id = tok.mask_token_id if tok.mask_token_id is not None else tok.unk_token_id
    present = sorted({w for w in owners if w >= 0})
    variants = [{"input_ids": [mask_id if o == w else t for t, o in zip(ids, owners)]} for w in present]
    logits = forward_logits(model, variants, 32, tok.pad_token_id)
    scores = np.zeros(n_words)
    for w, row in zip(present, logits):
        scores[w] = full - _tag_prob(row, positions, tag_ids)
    return scores

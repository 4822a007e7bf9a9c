"""NER / token tagging: a label per word, predicted on the word's first sub-word.

Sentences longer than the model's limit are cut into windows of whole words (never truncated);
each word is predicted by the window that holds it. Raw text is split into words with character
offsets so entities map back to spans of the input.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..data.examples import TaggedSentence
from ..evaluation import metrics as M
from . import register
from .base import Task

_WORD = re.compile(r"\w+(?:[-'’.]\w+)*|[^\w\s]", re.UNICODE)
IGNORE = -100


@register
class TokenClassification(Task):
    name = "ner"
    auto_model = "AutoModelForTokenClassification"
    default_metric = "f1"

    def label_list(self, train: list[TaggedSentence]) -> list[str]:
        types = sorted({t[2:] for ex in train for t in ex.tags if t != "O"})
        return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]

    def gold_names(self, labels):
        return {label[2:] for label in labels if label != "O"}

    def encode(self, examples, tokenizer, label2id, max_length):
        enc = tokenizer([list(ex.tokens) for ex in examples], is_split_into_words=True, truncation=False)
        features = []
        for i, ex in enumerate(examples):
            ids, word_ids = enc["input_ids"][i], enc.word_ids(i)
            for window in _windows(ids, word_ids, max_length):
                features.append(_feature(i, ex, window, label2id))
        return features

    def decode(self, examples, features, logits, id2label, state):
        """Per example: (tags, per-word confidence)."""
        out = [(["O"] * len(ex.tokens), [1.0] * len(ex.tokens)) for ex in examples]
        for feat, row in zip(features, logits):  # row: (seq_len, num_labels)
            probs = _softmax(row)
            tags, conf = out[feat["example"]]
            for pos, word in feat["first"]:
                tags[word] = id2label[int(probs[pos].argmax())]
                conf[word] = float(probs[pos].max())
        return out

    def metrics(self, examples, predictions, labels):
        return M.ner_metrics([list(ex.tags) for ex in examples], [tags for tags, _ in predictions])

    def baseline(self, train, examples, labels):
        out = M.ner_metrics([list(ex.tags) for ex in examples], [["O"] * len(ex.tags) for ex in examples])
        return {"name": "no entities", **{k: v for k, v in out.items() if k != "per_type"}}

    def from_text(self, text: str) -> TaggedSentence:
        words = [m.group() for m in _WORD.finditer(text)]
        return TaggedSentence(tuple(words), ("O",) * len(words))

    def to_output(self, text, example, prediction, top_k):
        spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        tags, conf = prediction
        entities = []
        for etype, first, last in M.spans(tags):
            start, end = spans[first][0], spans[last][1]
            entities.append(
                {
                    "entity_group": etype,
                    "word": text[start:end],
                    "start": start,
                    "end": end,
                    "score": round(float(np.mean(conf[first : last + 1])), 6),
                }
            )
        return entities


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _windows(ids: list[int], word_ids: list[int | None], max_length: int):
    """Yield (input_ids, [(position, word)]) windows of whole words within ``max_length``."""
    positions = [p for p, w in enumerate(word_ids) if w is not None]
    if not positions:
        yield ids, []
        return
    prefix, suffix = ids[: positions[0]], ids[positions[-1] + 1 :]
    pieces: dict[int, list[int]] = {}
    for p in positions:
        pieces.setdefault(word_ids[p], []).append(ids[p])
    budget = max(max_length - len(prefix) - len(suffix), 1)
    window: list[int] = []
    first: list[tuple[int, int]] = []
    for word, word_pieces in pieces.items():
        word_pieces = word_pieces[:budget]  # one absurdly long word keeps its first pieces
        if window and len(window) + len(word_pieces) > budget:
            yield prefix + window + suffix, first
            window, first = [], []
        first.append((len(prefix) + len(window), word))
        window += word_pieces
    yield prefix + window + suffix, first


def _feature(index: int, ex: TaggedSentence, window, label2id: dict[str, int]) -> dict[str, Any]:
    ids, first = window
    labels = [IGNORE] * len(ids)
    for pos, word in first:
        labels[pos] = label2id.get(ex.tags[word], IGNORE)
    return {"input_ids": ids, "labels": labels, "example": index, "first": first}

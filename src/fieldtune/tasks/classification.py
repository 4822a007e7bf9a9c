"""Single-label and multi-label text classification (a [CLS]-pooled linear head)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ..data.examples import TextExample
from ..evaluation import metrics as M
from . import register
from .base import Task


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class _TextTask(Task):
    auto_model = "AutoModelForSequenceClassification"

    def label_list(self, train: list[TextExample]) -> list[str]:
        return sorted({label for ex in train for label in ex.labels})

    def encode(self, examples, tokenizer, label2id, max_length):
        enc = tokenizer([ex.text for ex in examples], truncation=True, max_length=max_length)
        return [
            {"input_ids": ids, "labels": self._target(ex, label2id), "example": i, "truncated": len(ids) >= max_length}
            for i, (ex, ids) in enumerate(zip(examples, enc["input_ids"]))
        ]

    def from_text(self, text: str) -> TextExample:
        return TextExample(text, ())

    def _target(self, ex: TextExample, label2id: dict[str, int]) -> Any:
        raise NotImplementedError


@register
class Classification(_TextTask):
    """One label per text: softmax over the labels, cross-entropy."""

    name = "classification"
    default_metric = "accuracy"

    def _target(self, ex, label2id):
        return label2id[ex.labels[0]] if ex.labels else -100

    def model_kwargs(self, labels):
        return {"problem_type": "single_label_classification"}

    def decode(self, examples, features, logits, id2label, state):
        probs = _softmax(np.stack(logits))  # (examples, num_labels)
        return [dict(zip(id2label.values(), row.tolist())) for row in probs]

    def metrics(self, examples, predictions, labels):
        gold = [ex.labels[0] for ex in examples]
        pred = [max(p, key=p.get) for p in predictions]
        return M.classification_metrics(gold, pred, labels)

    def baseline(self, train, examples, labels):
        majority = Counter(ex.labels[0] for ex in train).most_common(1)[0][0]
        out = M.classification_metrics([ex.labels[0] for ex in examples], [majority] * len(examples), labels)
        return {"name": f"majority class ({majority})", **_headline(out)}

    def to_output(self, text, example, prediction, top_k):
        ranked = sorted(prediction.items(), key=lambda kv: -kv[1])
        items = [{"label": k, "score": round(v, 6)} for k, v in ranked[: top_k or 1]]
        return items if top_k else items[0]

    def plots(self, examples, predictions, labels, out_dir):
        from ..evaluation.plots import confusion_matrix_png

        gold = [ex.labels[0] for ex in examples]
        pred = [max(p, key=p.get) for p in predictions]
        return [confusion_matrix_png(gold, pred, labels, out_dir / "confusion_matrix.png")]


@register
class MultiLabel(_TextTask):
    """Any number of labels per text: one sigmoid per label, threshold tuned on dev."""

    name = "multilabel"
    default_metric = "micro_f1"

    def _target(self, ex, label2id):
        vec = [0.0] * len(label2id)
        for label in ex.labels:
            vec[label2id[label]] = 1.0
        return vec

    def model_kwargs(self, labels):
        return {"problem_type": "multi_label_classification"}

    def decode(self, examples, features, logits, id2label, state):
        probs = _sigmoid(np.stack(logits))
        threshold = state.get("threshold", 0.5)
        return [{"scores": dict(zip(id2label.values(), row.tolist())), "threshold": threshold} for row in probs]

    def tune(self, examples, features, logits, labels):
        """Pick the single threshold that maximises dev micro-F1 (0.05 .. 0.95)."""
        probs = _sigmoid(np.stack(logits))
        gold = M.multi_hot([ex.labels for ex in examples], labels)
        best = max(np.arange(0.05, 0.96, 0.05), key=lambda t: M.micro_f1(gold, probs >= t))
        return {"threshold": round(float(best), 2)}

    def metrics(self, examples, predictions, labels):
        pred = [[k for k, v in p["scores"].items() if v >= p["threshold"]] for p in predictions]
        return M.multilabel_metrics([ex.labels for ex in examples], pred, labels)

    def baseline(self, train, examples, labels):
        counts = Counter(label for ex in train for label in ex.labels)
        frequent = [k for k, v in counts.items() if v > len(train) / 2]
        out = M.multilabel_metrics([ex.labels for ex in examples], [frequent] * len(examples), labels)
        return {"name": f"labels in >50% of train ({frequent})", **_headline(out)}

    def to_output(self, text, example, prediction, top_k):
        scores, threshold = prediction["scores"], prediction["threshold"]
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        return {
            "labels": [k for k, v in ranked if v >= threshold],
            "scores": [{"label": k, "score": round(v, 6)} for k, v in ranked[: top_k or len(ranked)]],
        }


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}

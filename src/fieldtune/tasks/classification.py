"""Single-label and multi-label text classification (a [CLS]-pooled linear head)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ..data.examples import TextExample
from ..errors import UserError
from ..evaluation import metrics as M
from ..evaluation.calibration import choose_top_label, fit_temperature, prediction_set, top_label_apply
from .base import Task
from .losses import multi_label_loss, single_label_loss
from .registry import register

NO_LABEL = "(none)"  # what drift counts for a multi-label prediction with no label


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

    def correction_example(self, text: str, label: Any) -> TextExample:
        return TextExample(text, tuple(label) if isinstance(label, list) else (label,))

    def _target(self, ex: TextExample, label2id: dict[str, int]) -> Any:
        raise NotImplementedError


@register
class Classification(_TextTask):
    """One label per text: softmax over the labels, cross-entropy."""

    name = "classification"
    default_metric = "accuracy"
    # a softmax over many classes with few examples each learns at 3e-4 (and 7 steps a label: training/budget.py):
    # BANKING77's 77 intents with 10 per intent, 80.70 in 172 s at 1e-4 -> 81.10 in 109 s (the grid's choice too)
    many_class_lr = 3e-4

    def _target(self, ex, label2id):
        return label2id[ex.labels[0]] if ex.labels else -100

    def model_kwargs(self, labels):
        return {"problem_type": "single_label_classification"}

    def loss(self, logits, labels, targets_per_batch=None):
        return single_label_loss(logits, labels)

    def decode(self, examples, features, logits, id2label, state):
        # the tuned temperature (1.0 for artifacts from before calibration) rescales, never reorders; its own
        # key: an embedding artifact's state "temperature" is baked into its head already
        probs = _softmax(np.stack(logits) / state.get("temperature_scaling", 1.0))  # (examples, num_labels)
        if state.get("top_label"):  # the top label's confidence re-mapped (label order kept)
            probs = top_label_apply(probs, state["top_label"])
        return [dict(zip(id2label.values(), row.tolist())) for row in probs]

    def tune(self, examples, features, logits, labels, state=None):
        """Temperature scaling: the one T that minimises dev NLL of softmax(logits / T); then, when dev
        has enough right and wrong answers and it lowers held-out ECE there, a Platt map of the top
        label's confidence (``calibration.choose_top_label``)."""
        ids = {label: i for i, label in enumerate(labels)}
        keep = [i for i, ex in enumerate(examples) if ex.labels and ex.labels[0] in ids]
        if not keep:
            return {"temperature_scaling": 1.0}
        targets = np.array([ids[examples[i].labels[0]] for i in keep])
        dev = np.stack([logits[i] for i in keep])
        tuned: dict[str, Any] = {"temperature_scaling": fit_temperature(dev, targets)}
        top_label = choose_top_label(_softmax(dev / tuned["temperature_scaling"]), targets)
        if top_label:
            tuned["top_label"] = top_label
        return tuned

    def confidences(self, examples, predictions):
        """The top label's probability and whether it is the gold label, per text."""
        conf = np.array([max(p.values()) for p in predictions], dtype=np.float64)
        correct = np.array([ex.labels[0] == max(p, key=p.get) for ex, p in zip(examples, predictions)])
        return conf, correct

    def true_label_probs(self, examples, predictions):
        return np.array([p.get(ex.labels[0], 0.0) for ex, p in zip(examples, predictions)], dtype=np.float64)

    def label_probs(self, prediction):
        return prediction

    def trusted_output(self, output, prediction, state, top_k):
        """Adds the conformal ``prediction_set`` and, below the abstention threshold, answers
        ``{"label": null, "abstained": true, "score"}``; a top-k list stays the ranked candidates."""
        abstain, conformal = state.get("abstain"), state.get("conformal")
        if top_k or not isinstance(output, dict) or not (abstain or conformal):
            return output
        out = dict(output)
        if abstain:
            gone = max(prediction.values()) < abstain["threshold"]  # unrounded, as chosen on dev
            out = {"label": None if gone else out["label"], "abstained": gone, "score": out["score"]}
        if conformal:
            out["prediction_set"] = prediction_set(prediction, conformal["qhat"])
        return out

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

    def summarize(self, output):
        """The top label and its score (of the first item of a top-k list); no label when abstained."""
        if isinstance(output, list):
            output = output[0] if output else None
        if isinstance(output, dict) and output.get("label") is None and "score" in output:
            return None, float(output["score"])
        if isinstance(output, dict) and "label" in output:
            return str(output["label"]), float(output["score"])
        return None, None

    def check_correction(self, labels, text, label, *, allow_new_labels=False):
        """One label (a one-item list is taken as its item), a stripped string."""
        if isinstance(label, list) and len(label) == 1:
            label = label[0]
        if not isinstance(label, str) or not label.strip():
            raise UserError("a classification correction is one label", hint='send "label": "<one of the labels>"')
        return _known([label.strip()], labels, allow_new_labels)[0]

    def correction_from_example(self, example):
        return example.text, example.labels[0]

    def training_row(self, example):
        return {"text": example.text, "label": example.labels[0]}  # one label per text: a string, not a list

    def is_correct(self, example, prediction):
        return example.labels[0] == max(prediction, key=prediction.get)

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

    def head_bias(self, examples, labels):
        """Each label's log-odds in the training data. From a zero bias every sigmoid starts at 0.5 and the
        first updates push all logits down together: with 30 labels (4% positives each) the model sat at
        the base rate for 300+ steps at any learning rate (dev micro-F1 0.0); started at the base rate,
        150 steps reached 0.81 (bench/RESULTS.md, issue 12)."""
        ids = {label: i for i, label in enumerate(labels)}
        counts = np.zeros(len(labels))
        for ex in examples:
            for label in ex.labels:
                if label in ids:
                    counts[ids[label]] += 1
        p = np.clip((counts + 0.5) / (len(examples) + 1.0), 1e-3, 1 - 1e-3)
        return np.log(p / (1 - p))

    def loss(self, logits, labels, targets_per_batch=None):
        return multi_label_loss(logits, labels)

    def decode(self, examples, features, logits, id2label, state):
        probs = _sigmoid(np.stack(logits) / state.get("temperature_scaling", 1.0))  # shared temperature (1.0: none)
        threshold = state.get("threshold", 0.5)
        return [{"scores": dict(zip(id2label.values(), row.tolist())), "threshold": threshold} for row in probs]

    def tune(self, examples, features, logits, labels, state=None):
        """A shared temperature on the sigmoid logits (min dev BCE), then the single threshold on the
        calibrated scores that maximises dev micro-F1 (0.05 .. 0.95)."""
        gold = M.multi_hot([ex.labels for ex in examples], labels)
        temperature = fit_temperature(np.stack(logits), gold, multilabel=True)
        probs = _sigmoid(np.stack(logits) / temperature)
        best = max(np.arange(0.05, 0.96, 0.05), key=lambda t: M.micro_f1(gold, probs >= t))
        return {"threshold": round(float(best), 2), "temperature_scaling": temperature}

    def confidences(self, examples, predictions):
        """Per (text, label) decision: max(p, 1 - p) and whether p >= 0.5 agrees with the gold label."""
        labels = list(predictions[0]["scores"]) if predictions else []
        gold = M.multi_hot([ex.labels for ex in examples], labels).astype(bool)
        probs = np.array([[p["scores"][k] for k in labels] for p in predictions], dtype=np.float64)
        probs = probs.reshape(len(predictions), len(labels))
        return np.maximum(probs, 1 - probs).ravel(), ((probs >= 0.5) == gold).ravel()

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

    def summarize(self, output):
        """The labels joined with ``|`` and the best score."""
        if isinstance(output, dict) and "labels" in output:
            scores = [s["score"] for s in output.get("scores", [])]
            return "|".join(output["labels"]), (max(scores) if scores else None)
        return None, None

    def drift_labels(self, label):
        """Each label of the prediction; ``(none)`` for a prediction with none."""
        if label is None:
            return None
        return [x for x in label.split("|") if x] or [NO_LABEL]

    def reference_labels(self, labels):
        return [*labels, NO_LABEL]

    def check_correction(self, labels, text, label, *, allow_new_labels=False):
        """A list of labels (a single string is taken as a list of one), sorted and de-duplicated."""
        if isinstance(label, str):
            label = [label]
        if not isinstance(label, list) or not all(isinstance(x, str) and x.strip() for x in label):
            raise UserError("a multilabel correction is a list of labels", hint='send "labels": ["a", "b"] (or [])')
        return _known(sorted({x.strip() for x in label}), labels, allow_new_labels)

    def correction_from_example(self, example):
        return example.text, list(example.labels)

    def training_row(self, example):
        return {"text": example.text, "label": list(example.labels)}

    def is_correct(self, example, prediction):
        return set(example.labels) == {k for k, v in prediction["scores"].items() if v >= prediction["threshold"]}


def _known(values: list[str], labels: list[str], allow_new_labels: bool) -> list[str]:
    """``values``, or a UserError naming those the model doesn't know (unless new ones are allowed)."""
    known = set(labels)
    unknown = [x for x in values if x not in known]
    if unknown and not allow_new_labels:
        raise UserError(
            f"unknown label(s) {unknown}: the model knows {len(known)} labels",
            hint="use one of GET /metadata's labels; new labels are accepted by "
            "`fieldtune feedback import --allow-new-labels`",
        )
    return values


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}

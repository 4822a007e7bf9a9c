"""Honest metrics: entity-level F1 for NER (seqeval, conlleval mode), sklearn for classification."""

from __future__ import annotations

from typing import Any

import numpy as np
from seqeval.metrics import classification_report as seqeval_report
from seqeval.metrics.sequence_labeling import get_entities
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def ner_metrics(gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    """Entity-level micro P/R/F1 and per type, as conlleval counts them.

    An entity counts only if type and both boundaries match; ``O`` tokens and padding never
    inflate the score (unlike token accuracy).
    """
    report = seqeval_report(gold, pred, output_dict=True, zero_division=0)
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    per_type = {
        k: {
            "precision": _r(v["precision"]),
            "recall": _r(v["recall"]),
            "f1": _r(v["f1-score"]),
            "support": int(v["support"]),
        }
        for k, v in report.items()
        if not k.endswith(" avg")
    }
    return {
        "f1": _r(micro["f1-score"]),
        "precision": _r(micro["precision"]),
        "recall": _r(micro["recall"]),
        "entities": int(sum(len(spans(g)) for g in gold)),
        "predicted_entities": int(sum(len(spans(p)) for p in pred)),
        "per_type": per_type,
    }


def spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first word, last word) of each entity, conlleval-style."""
    return [(t, s, e) for t, s, e in get_entities(list(tags))]


def classification_metrics(gold: list[str], pred: list[str], labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro/micro/weighted F1, a per-class report and the confusion matrix."""
    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)
    return {
        "accuracy": _r(accuracy_score(gold, pred)),
        "macro_f1": _r(f1_score(gold, pred, labels=labels, average="macro", zero_division=0)),
        "micro_f1": _r(f1_score(gold, pred, labels=labels, average="micro", zero_division=0)),
        "weighted_f1": _r(f1_score(gold, pred, labels=labels, average="weighted", zero_division=0)),
        "examples": len(gold),
        "per_class": {
            label: {"precision": _r(p[i]), "recall": _r(r[i]), "f1": _r(f[i]), "support": int(s[i])}
            for i, label in enumerate(labels)
        },
        "confusion_matrix": {"labels": labels, "matrix": confusion_matrix(gold, pred, labels=labels).tolist()},
    }


def multi_hot(label_sets: list[tuple[str, ...] | list[str]], labels: list[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(label_sets), len(labels)), dtype=bool)
    for row, label_set in enumerate(label_sets):
        for label in label_set:
            if label in index:
                out[row, index[label]] = True
    return out


def micro_f1(gold: np.ndarray, pred: np.ndarray) -> float:
    return float(f1_score(gold, pred, average="micro", zero_division=0))


def multilabel_metrics(gold: list, pred: list, labels: list[str]) -> dict[str, Any]:
    """Micro/macro F1, subset (exact-match) accuracy and per-label scores."""
    g, p = multi_hot(gold, labels), multi_hot(pred, labels)
    pr, rc, f, s = precision_recall_fscore_support(g, p, zero_division=0)
    return {
        "micro_f1": _r(micro_f1(g, p)),
        "macro_f1": _r(f1_score(g, p, average="macro", zero_division=0)),
        "subset_accuracy": _r(float((g == p).all(axis=1).mean())),
        "examples": len(gold),
        "per_class": {
            label: {"precision": _r(pr[i]), "recall": _r(rc[i]), "f1": _r(f[i]), "support": int(s[i])}
            for i, label in enumerate(labels)
        },
    }


def _r(x: float) -> float:
    return round(float(x), 6)

"""The advice a run's numbers give: 'still improving' only when the best dev score is the last one and
the loss still falls; 'small dev set' when dev is too small to select a model on."""

from __future__ import annotations

import pytest

import fieldtune
from fieldtune.data.examples import TaggedSentence, TextExample
from fieldtune.data.prepare import Splits
from fieldtune.runs import Evaluation, RunRecord, TrainStats, advise
from fieldtune.runs.advice import still_improving


def evals(*points: tuple[float, float, bool]) -> list[dict]:
    """(train loss, dev accuracy, best) per evaluation."""
    return [
        {
            "event": "eval",
            "epoch": i + 1,
            "step": 10 * (i + 1),
            "train_loss": loss,
            "best": best,
            "dev": {"accuracy": acc},
        }
        for i, (loss, acc, best) in enumerate(points)
    ]


def record(history: list[dict], dev_per_label: int = 30, labels=("a", "b")) -> RunRecord:
    cfg = fieldtune.load_config({"task": "classification", "data": {"train": "x.csv"}, "train": {"epochs": 3}})
    dev = [TextExample(f"{label} {i}", (label,)) for label in labels for i in range(dev_per_label)]
    splits = Splits(train=list(dev), dev=dev, test=None)
    ev = Evaluation(dev={"accuracy": 0.9}, test=None, baseline={}, test_predictions=None, ms_per_example=1.0)
    return RunRecord(cfg, splits, list(labels), ev, TrainStats(), history)


def test_still_improving_when_best_at_the_end_and_loss_falling():
    history = evals((1.2, 0.5, True), (0.9, 0.6, True), (0.7, 0.7, True))
    assert still_improving(history)
    [advice] = advise(record(history))
    assert advice.startswith("still improving") and "train.epochs=6" in advice and "epoch 3" in advice


@pytest.mark.parametrize(
    "history",
    [
        evals((1.2, 0.5, True), (0.6, 0.8, True), (0.4, 0.7, False), (0.3, 0.7, False)),  # converged: best earlier
        evals((0.30, 0.7, True), (0.31, 0.8, True)),  # best at the end, but the loss stopped falling
        evals((1.2, 0.5, True)),  # one evaluation: no trend to read
        [],  # nothing trained (zero-shot)
    ],
)
def test_no_still_improving_advice_when_converged_or_unknown(history):
    assert not still_improving(history)
    assert advise(record(history)) == []


def test_small_dev_set_is_named_with_the_rare_labels():
    [advice] = advise(record([], dev_per_label=3))
    assert "small dev set" in advice and "6 examples" in advice and "fewer than 5 examples of a, b" in advice
    many = record([], dev_per_label=60)
    many.splits.dev = many.splits.dev[:64]  # 60 of a, 4 of b: big enough overall, b is rare
    [advice] = advise(many)
    assert "fewer than 5 examples of b" in advice and "64 examples" not in advice


def test_ner_dev_counts_entity_types_not_tags():
    r = record([], dev_per_label=30)
    r.labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    r.splits.dev = [TaggedSentence(("Ann", "in", "Paris"), ("B-PER", "O", "B-LOC"))] * 60
    assert advise(r) == []
    r.splits.dev = [TaggedSentence(("Ann", "left"), ("B-PER", "O"))] * 60
    [advice] = advise(r)
    assert "fewer than 5 examples of LOC" in advice

"""Calibration: ECE on a hand-checked example, temperature scaling (never reorders, lowers NLL), and the
temperature applied by the task's decode on every backend's logits."""

from __future__ import annotations

import numpy as np
import pytest

from fieldtune.data.examples import TextExample
from fieldtune.evaluation.calibration import (
    choose_top_label,
    ece,
    fit_temperature,
    nll,
    reliability,
    sigmoid,
    softmax,
    top_label_apply,
    uncalibrated_state,
)
from fieldtune.tasks import get_task


def test_ece_matches_a_hand_checked_example():
    # 15 bins of width 1/15: 0.95 and 0.94 share (0.933, 1] (mean conf 0.945, accuracy 0.5: gap 0.445, weight 2);
    # 0.9 alone (gap 0.9), 0.62 (gap 0.38), 0.58 (gap 0.42), 0.3 (gap 0.3): (0.89 + 2.0) / 6
    conf = np.array([0.95, 0.94, 0.9, 0.62, 0.58, 0.3])
    correct = np.array([1, 0, 0, 1, 1, 0])
    assert ece(conf, correct) == pytest.approx(2.89 / 6, abs=1e-12)
    r = reliability(conf, correct)
    assert len(r["count"]) == 15 and sum(r["count"]) == 6 and r["count"][14] == 2
    assert r["accuracy"][14] == 0.5 and r["confidence"][14] == pytest.approx(0.945)
    assert ece(np.array([0.8] * 5), np.array([1, 1, 1, 1, 0])) == pytest.approx(0.0, abs=1e-12)  # calibrated
    assert ece(np.array([]), np.array([])) == 0.0


def overconfident(n: int, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits that point at the right class 70% of the time, with huge margins: over-confident."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    guess = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), guess] += 8.0
    return logits, y


def test_temperature_scaling_lowers_nll_and_ece_and_never_changes_argmax():
    logits, y = overconfident(2000)
    t = fit_temperature(logits, y)
    assert t > 1.5  # over-confident scores get softened
    assert nll(logits, y, t) < nll(logits, y, 1.0)
    test_logits, test_y = overconfident(2000, seed=1)
    before, after = softmax(test_logits), softmax(test_logits, t)
    assert (before.argmax(1) == after.argmax(1)).all()
    right = before.argmax(1) == test_y
    assert ece(after.max(1), right) < ece(before.max(1), right) / 2


def test_shared_multilabel_temperature():
    rng = np.random.default_rng(3)
    gold = rng.random((500, 4)) < 0.3
    logits = np.where(gold, 6.0, -6.0) * np.where(rng.random((500, 4)) < 0.8, 1, -1) + rng.normal(0, 1, (500, 4))
    t = fit_temperature(logits, gold, multilabel=True)
    assert t > 1.5 and nll(logits, gold, t, True) < nll(logits, gold, 1.0, True)
    assert ((sigmoid(logits, t) >= 0.5) == (sigmoid(logits) >= 0.5)).all()


def test_nothing_to_fit_keeps_temperature_one():
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0
    assert fit_temperature(np.array([[5.0, 0.0]]), np.array([0])) == 1.0


def test_classification_tune_and_decode_apply_the_temperature():
    task = get_task("classification")
    labels = ["a", "b", "c"]
    logits, y = overconfident(300, k=3)
    examples = [TextExample(f"t{i}", (labels[c],)) for i, c in enumerate(y)]
    rows = list(logits.astype(np.float32))
    tuned = task.tune(examples, [], rows, labels)
    assert tuned["temperature_scaling"] > 1
    id2label = dict(enumerate(labels))
    raw = task.decode(examples, [], rows, id2label, {})  # an old artifact's state: T = 1
    cal = task.decode(examples, [], rows, id2label, tuned)
    assert [max(p, key=p.get) for p in raw] == [max(p, key=p.get) for p in cal]
    assert np.mean([max(p.values()) for p in cal]) < np.mean([max(p.values()) for p in raw])
    assert raw == task.decode(examples, [], rows, id2label, {"temperature_scaling": 1.0})
    conf, correct = task.confidences(examples, cal)
    assert conf.shape == correct.shape == (300,)


def test_multilabel_tune_fits_temperature_then_threshold():
    task = get_task("multilabel")
    labels = ["a", "b"]
    rng = np.random.default_rng(0)
    gold = rng.random((200, 2)) < 0.5
    logits = np.where(gold, 7.0, -7.0) * np.where(rng.random((200, 2)) < 0.85, 1, -1)
    examples = [TextExample(f"t{i}", tuple(lb for lb, g in zip(labels, row) if g)) for i, row in enumerate(gold)]
    tuned = task.tune(examples, [], list(logits), labels)
    assert set(tuned) == {"threshold", "temperature_scaling"} and tuned["temperature_scaling"] > 1
    preds = task.decode(examples, [], list(logits), dict(enumerate(labels)), tuned)
    conf, correct = task.confidences(examples, preds)
    assert conf.shape == (400,) and (conf >= 0.5).all()


def overconfident_tagging(n: int, seed: int) -> tuple[list, list, list, list[str]]:
    """``n`` 6-word sentences, one PER entity at words 1-2; the tag logits point at the gold tags for 70%
    of the sentences and at a wrong type (LOC) otherwise, always with a huge margin: over-confident
    entity scores. Features are one window per sentence, each word's first piece at position word + 1."""
    from fieldtune.data.examples import TaggedSentence

    rng = np.random.default_rng(seed)
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    gold = ("O", "B-PER", "I-PER", "O", "O", "O")
    examples, features, logits = [], [], []
    for i in range(n):
        pred = gold if rng.random() < 0.7 else ("O", "B-LOC", "I-LOC", "O", "O", "O")
        row = rng.normal(0, 1, (8, len(labels)))
        for w, tag in enumerate(pred):
            row[w + 1, labels.index(tag)] += 9.0
        examples.append(TaggedSentence(tuple(f"w{w}" for w in range(6)), gold))
        features.append({"example": i, "first": [(w + 1, w) for w in range(6)]})
        logits.append(row)
    return examples, features, logits, labels


def test_ner_entity_scores_are_calibrated_and_tags_never_change():
    task = get_task("ner")
    examples, features, logits, labels = overconfident_tagging(300, seed=0)
    tuned = task.tune(examples, features, logits, labels)
    assert tuned["temperature_scaling"] > 1.5  # 9-logit margins for entities that are 30% wrong
    id2label = dict(enumerate(labels))
    test, test_features, test_logits, _ = overconfident_tagging(300, seed=1)
    raw = task.decode(test, test_features, test_logits, id2label, {})
    cal = task.decode(test, test_features, test_logits, id2label, tuned)
    assert [tags for tags, _ in raw] == [tags for tags, _ in cal]
    (conf_raw, right), (conf_cal, right_cal) = task.confidences(test, raw), task.confidences(test, cal)
    assert conf_raw.shape == (300,) and (right == right_cal).all() and 0.6 < right.mean() < 0.8
    assert ece(conf_cal, right) < ece(conf_raw, right) / 2
    # the score a user sees is the one calibrated: predict's entity score is the mean word confidence
    entities = task.to_output("w0 w1 w2 w3 w4 w5", test[0], cal[0], None)
    assert entities[0]["score"] == pytest.approx(conf_cal[0], abs=1e-6)
    assert task.tune(examples[:1], features[:1], logits[:1], labels) == {"temperature_scaling": 1.0}


def steep(n: int, seed: int, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose top label is right with probability sigmoid(2.5 * logit(conf) - 1.5): under-confident
    near the top, over-confident in the middle. No single temperature fits both ends."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1, (n, k)) * rng.uniform(0.5, 4.0, (n, 1))
    p = softmax(logits)
    top, conf = p.argmax(1), p.max(1)
    right = rng.random(n) < 1 / (1 + np.exp(-(2.5 * np.log(conf / (1 - conf)) - 1.5)))
    other = (top + rng.integers(1, k, n)) % k  # any label but the top one
    return logits, np.where(right, top, other)


def test_top_label_map_keeps_every_rank_and_reaches_its_target():
    rng = np.random.default_rng(4)
    probs = softmax(rng.normal(0, 3, (500, 6)))
    platt = {"a": 1.4, "b": -0.5}
    out = top_label_apply(probs, platt)
    assert np.allclose(out.sum(1), 1)
    assert (np.argsort(out, 1, kind="stable") == np.argsort(probs, 1, kind="stable")).all()  # every rank kept
    c = probs.max(1)
    want = np.maximum(1 / (1 + np.exp(-(1.4 * np.log(c / (1 - c)) - 0.5))), 1 / 6)
    assert np.abs(out.max(1) - want).max() < 1e-4
    assert top_label_apply(np.zeros((0, 3)), platt).shape == (0, 3)


def test_top_label_map_is_chosen_when_one_temperature_cannot_fit_and_lowers_held_out_ece():
    logits, y = steep(3000, seed=0)
    t = fit_temperature(logits, y)
    platt = choose_top_label(softmax(logits, t), y)
    assert platt is not None and platt["a"] > 1.2
    test_logits, test_y = steep(3000, seed=1)
    scaled = softmax(test_logits, t)
    mapped = top_label_apply(scaled, platt)
    right = scaled.argmax(1) == test_y
    assert (mapped.argmax(1) == scaled.argmax(1)).all()
    assert ece(mapped.max(1), right) < 0.7 * ece(scaled.max(1), right)


def test_no_top_label_map_without_enough_errors_or_when_temperature_suffices():
    rng = np.random.default_rng(5)
    logits = rng.normal(0, 1, (3000, 5)) * rng.uniform(0.5, 4.0, (3000, 1))
    p = softmax(logits)
    y = (rng.random((3000, 1)) > p.cumsum(1)).sum(1)  # labels drawn from the scores: calibrated already
    chosen = choose_top_label(softmax(logits, fit_temperature(logits, y)), y)
    assert chosen is None or (abs(chosen["a"] - 1) < 0.15 and abs(chosen["b"]) < 0.15)  # at most the identity
    few = p[:30]
    assert choose_top_label(few, few.argmax(1)) is None  # no wrong dev answer: nothing to learn from


def test_classification_tune_keeps_the_top_label_map_and_uncalibrated_state_drops_it():
    task = get_task("classification")
    labels = list("abcde")
    logits, y = steep(3000, seed=2)
    examples = [TextExample(f"t{i}", (labels[c],)) for i, c in enumerate(y)]
    rows = list(logits)
    tuned = task.tune(examples, [], rows, labels)
    assert set(tuned) == {"temperature_scaling", "top_label"}
    id2label = dict(enumerate(labels))
    cal = task.decode(examples, [], rows, id2label, tuned)
    only_t = task.decode(examples, [], rows, id2label, {"temperature_scaling": tuned["temperature_scaling"]})
    assert [max(p, key=p.get) for p in cal] == [max(p, key=p.get) for p in only_t]
    assert cal != only_t
    assert uncalibrated_state({**tuned, "abstain": {"threshold": 0.5}}) == {"abstain": {"threshold": 0.5}}
    assert task.decode(examples, [], rows, id2label, uncalibrated_state(tuned)) == task.decode(
        examples, [], rows, id2label, {}
    )

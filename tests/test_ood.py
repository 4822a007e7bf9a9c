"""Out-of-scope detection: scores point the right way, the Mahalanobis detector measures distance to the
nearest class, dev thresholds hit their targets, and the metrics match a hand count."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fieldtune.evaluation.ood import (
    MahalanobisDetector,
    auroc,
    energy_score,
    max_prob_score,
    oos_metrics,
    rejected,
    rejection_metrics,
    threshold_for_in_scope_accuracy,
    threshold_for_recall,
)


def test_max_prob_score_is_one_minus_the_top_probability():
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25]])
    assert max_prob_score(probs) == pytest.approx([0.1, 0.6])


def test_energy_is_higher_for_flat_logits_and_matches_its_formula():
    peaked, flat = np.array([[9.0, 0.0, 0.0, 0.0]]), np.array([[1.0, 1.0, 1.0, 1.0]])
    assert energy_score(flat)[0] > energy_score(peaked)[0]
    assert energy_score(flat)[0] == pytest.approx(-(1.0 + math.log(4)))
    # temperature: -T * log sum exp(z / T); stable for large logits
    assert energy_score(np.array([[2.0, 0.0]]), temperature=2.0)[0] == pytest.approx(-2 * math.log(math.e + 1))
    assert np.isfinite(energy_score(np.array([[1000.0, 999.0]]))).all()


def blobs(seed: int = 0, per_class: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three well-separated Gaussian classes in 5-D with a shared, anisotropic covariance."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0, 0, 0], [10, 0, 0, 0, 0], [0, 10, 0, 0, 0]], dtype=float)
    scale = np.array([1.0, 1.0, 0.2, 0.2, 0.2])
    x = np.concatenate([c + rng.normal(size=(per_class, 5)) * scale for c in centers])
    return x, np.repeat(np.array(["a", "b", "c"]), per_class), centers


def test_mahalanobis_near_class_means_far_away_from_all():
    x, y, centers = blobs()
    det = MahalanobisDetector.fit(x, y)
    assert det.means == pytest.approx(centers, abs=0.2)
    near = det.score(centers)
    far = det.score(np.array([[5.0, 5.0, 0, 0, 0], [0, 0, 3.0, 0, 0]]))
    assert near.max() < 0.5 and far.min() > 5 * near.max()
    # the shared covariance is used: 3 units along a tight axis (sd 0.2) is farther than 3 along a wide one
    assert det.score(np.array([[0, 0, 3.0, 0, 0]]))[0] > det.score(np.array([[3.0, 0, 0, 0, 0]]))[0]
    assert list(det.nearest(centers + 0.1)) == ["a", "b", "c"]
    # distances agree with the direct formula
    q = np.array([[1.0, 2.0, 0.1, -0.1, 0.3]])
    direct = [math.sqrt((q[0] - m) @ det.precision @ (q[0] - m)) for m in det.means]
    assert det.distances(q)[0] == pytest.approx(direct)


def test_mahalanobis_save_load_round_trip(tmp_path):
    x, y, _ = blobs(seed=1, per_class=50)
    det = MahalanobisDetector.fit(x, y)
    path = det.save(tmp_path / "maha.npz")
    back = MahalanobisDetector.load(path)
    assert list(back.classes) == ["a", "b", "c"]
    assert back.score(x[:7]) == pytest.approx(det.score(x[:7]))


def test_threshold_for_in_scope_accuracy_hits_its_target_with_the_most_rejections():
    rng = np.random.default_rng(0)
    scores = rng.random(200)
    correct = rng.random(200) < 1.05 - 0.3 * scores  # confident queries are right more often
    assert correct.mean() > 0.85  # every target below is reachable
    for target in (0.5, 0.8, 0.85):
        t = threshold_for_in_scope_accuracy(scores, correct, target)
        acc = (correct & ~rejected(scores, t)).mean()
        assert acc >= target
        lower = np.nextafter(t, -np.inf)  # any lower threshold misses it
        assert (correct & ~rejected(scores, lower)).mean() < target
    # the classifier itself is below the target: reject nothing
    assert threshold_for_in_scope_accuracy(scores, np.zeros(200, bool), 0.9) == math.inf


def test_threshold_for_recall_hits_its_target_with_the_fewest_rejections():
    scores = np.array([0.1, 0.5, 0.5, 0.7, 0.9, 0.2, 0.3, 0.8, 0.6, 0.4])
    for target in (0.3, 0.5, 0.8, 1.0):
        t = threshold_for_recall(scores, target)
        assert rejected(scores, t).mean() >= target
        assert rejected(scores, np.nextafter(t, np.inf)).mean() < target  # no higher one does
    assert threshold_for_recall(scores, 0.0) == math.inf


def test_oos_metrics_by_hand():
    # in-scope: scores and correctness; threshold 0.5 rejects in-scope #2 (right) and #4 (wrong)
    scores_in = np.array([0.1, 0.6, 0.2, 0.9])
    correct_in = np.array([True, True, False, False])
    scores_oos = np.array([0.7, 0.4, 0.8])  # two of three rejected
    m = oos_metrics(scores_in, correct_in, scores_oos, threshold=0.5)
    assert m["in_scope_accuracy"] == pytest.approx(1 / 4)  # only #1: right and kept
    assert m["oos_recall"] == pytest.approx(2 / 3)
    assert m["oos_precision"] == pytest.approx(2 / 4)  # 2 OOS among the 4 rejected
    assert m["in_scope_rejected"] == pytest.approx(2 / 4)
    # AUROC: pairs (oos, in) where oos scores higher: 0.7 > 3 of 4, 0.4 > 2, 0.8 > 3 -> 8 / 12
    assert m["auroc"] == pytest.approx(8 / 12)
    assert auroc(np.array([0.0, 0.1]), np.array([0.5])) == 1.0


def test_rejection_metrics_with_nothing_rejected():
    m = rejection_metrics(np.zeros(3, bool), np.array([True, True, False]), np.zeros(2, bool))
    assert m == {
        "in_scope_accuracy": pytest.approx(2 / 3),
        "oos_recall": 0.0,
        "oos_precision": 0.0,
        "in_scope_rejected": 0.0,
    }

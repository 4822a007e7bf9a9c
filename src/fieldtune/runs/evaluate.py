"""The final evaluation every recipe runs: dev, test, a trivial baseline, and inference cost."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..data.examples import Example
from ..data.prepare import Splits
from ..tasks import Task
from .record import Evaluation
from .trust import calibration_scores, trust_scores

Predict = Callable[[str, list[Example]], list[Any]]  # (split name, its examples) -> the task's predictions
Extra = Callable[[str, list[Example], list[Any]], dict[str, Any]]  # more metrics of a split (e.g. perplexity)


def evaluate_splits(
    predict: Predict,
    task: Task,
    splits: Splits,
    labels: list[str],
    extra: Extra | None = None,
    *,
    uncalibrated: Predict | None = None,
    state: dict[str, Any] | None = None,
) -> Evaluation:
    """Score ``predict`` on dev and test with the task's metrics (plus ``extra``'s), the task's
    baseline on the scored split (test, else dev), and the milliseconds per example of predicting
    that split in batches (the number `fieldtune compare` reports). Both callables get the split's name
    (``dev`` / ``test``), so a recipe can reuse what it computed for that split already.

    Tasks with probabilities also get ``ece`` and ``ece_uncalibrated`` (from ``uncalibrated``'s
    predictions: before temperature scaling; without it, the same as ``ece``), and the abstention /
    conformal numbers of the artifact ``state`` (see :func:`~fieldtune.runs.trust.trust_scores`).
    """
    began = time.perf_counter()
    scores: dict[str, dict[str, Any]] = {}
    predictions: dict[str, list[Any]] = {}
    calibration: dict[str, dict[str, Any]] = {}
    seconds = 0.0
    for name, examples in (("dev", splits.dev), ("test", splits.test)):
        if not examples:
            continue
        tick = time.perf_counter()
        predictions[name] = predict(name, examples)
        seconds = time.perf_counter() - tick  # the last split scored: test when there is one
        scores[name] = task.metrics(examples, predictions[name], labels)
        if extra is not None:
            scores[name].update(extra(name, examples, predictions[name]))
        pairs = task.confidences(examples, predictions[name])
        raw = task.confidences(examples, uncalibrated(name, examples)) if uncalibrated and pairs else None
        scores[name].update(calibration_scores(pairs, raw))
        scores[name].update(trust_scores(task, state or {}, examples, predictions[name]))
        if pairs is not None:
            calibration[name] = {"before": raw or pairs, "after": pairs}
    scored = splits.test or splits.dev
    baseline = {"split": "test" if splits.test else "dev", **task.baseline(splits.train, scored, labels)}
    return Evaluation(
        dev=scores["dev"],
        test=scores.get("test"),
        baseline=baseline,
        test_predictions=predictions.get("test"),
        ms_per_example=round(1000 * seconds / max(1, len(scored)), 3),
        began=began,
        calibration=calibration,
        abstain=(state or {}).get("abstain"),
    )

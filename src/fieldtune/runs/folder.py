"""The run folder: ``runs/<name>/`` with ``run.yaml``, ``log.jsonl``, ``model/``, ``metrics.json``,
``report.md`` and plots — the same layout for every recipe.

The folder is created only once every input has been checked (:func:`start_output`), and each file
is written atomically, so a bad input or a crash never leaves a half run behind.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import RunConfig
from ..evaluation.calibration_plots import calibration_png, precision_coverage_png
from ..evaluation.plots import learning_curve_png
from ..tasks import Task
from ..training.loop import last_checkpoint
from ..utils.atomic import atomic_write_text
from ..utils.files import folder_bytes
from .advice import advise
from .record import RunRecord
from .report import render_report


@dataclass
class RunResult:
    """What ``train`` returns: where things are and the numbers."""

    output_dir: Path
    model_dir: Path
    metrics: dict[str, Any]
    advice: list[str] = field(default_factory=list)  # what the numbers say to do next (see runs.advice)


def start_output(cfg: RunConfig, resume: bool = False) -> None:
    """Create the run folder (with its ``run.yaml``) only now that every input has been checked; to
    resume, its checkpoint must be there (checked before anything in the folder changes)."""
    if resume:
        last_checkpoint(cfg.output / "checkpoints")
    cfg.output.mkdir(parents=True, exist_ok=True)
    yaml_text = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    atomic_write_text(cfg.output / "run.yaml", yaml_text)
    (cfg.output / "log.jsonl").unlink(missing_ok=True)  # a resumed loop re-logs its checkpoint's history


def eval_logger(cfg: RunConfig) -> Callable[[dict[str, Any]], None]:
    """Appends each evaluation record of the loop to ``log.jsonl`` (the loop's ``on_eval``)."""
    path = cfg.output / "log.jsonl"

    def log(record: dict[str, Any]) -> None:
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    return log


def write_run(record: RunRecord, task: Task, save: Callable[[Path], Any]) -> RunResult:
    """The run folder's files: the artifact (``save(target)`` writes it atomically), the plots,
    metrics.json and report.md; then the run is finished and its checkpoint goes.

    Args:
        record: The run; its ``train.artifact_bytes`` is filled in here.
        task: Draws the task's plots from the test predictions.
        save: Writes the artifact folder it is given.
    """
    out = record.output
    out.mkdir(parents=True, exist_ok=True)
    if record.history:
        record.plots.append(learning_curve_png(record.history, record.metric, out / "learning_curve.png"))
    ev = record.evaluation
    if ev.test_predictions is not None:
        record.plots += task.plots(record.splits.test, ev.test_predictions, record.labels, out)
    if ev.calibration:  # reliability before / after temperature scaling, dev and test
        record.plots.append(calibration_png(ev.calibration, out / "calibration.png"))
    if ev.abstain and "dev" in ev.calibration:
        conf, correct = ev.calibration["dev"]["after"]
        chosen = {"threshold": ev.abstain["threshold"], "coverage": ev.abstain["dev_coverage"]}
        chosen["precision"] = ev.abstain["dev_precision"]
        record.plots.append(precision_coverage_png(conf, correct, chosen, out / "precision_coverage.png"))
    save(out / "model")
    record.train.artifact_bytes = folder_bytes(out / "model")
    metrics = record.metrics()
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    advice = advise(record)
    atomic_write_text(out / "report.md", render_report(record, advice))
    # the resumable state is for a run that was killed; a finished one would carry it for nothing: the
    # weights, the optimizer's two moments and the best weights again, about 4x the artifact
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return RunResult(out, out / "model", metrics, advice)

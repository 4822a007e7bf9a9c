"""The typed record of a run: what ``metrics.json`` holds and ``report.md`` shows.

``metrics.json`` = ``{"dev", "test" (when there is a test set), "baseline", "train"}``: the first three
from :class:`Evaluation`, ``train`` from :class:`TrainStats`. Every recipe fills the same dataclasses,
so every run folder has the same keys.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from ..config import RunConfig
from ..data.prepare import Splits
from ..training import setup


@dataclass
class Evaluation:
    """Final metrics with the chosen weights: dev, test (None without a test set), a trivial baseline."""

    dev: dict[str, Any]
    test: dict[str, Any] | None
    baseline: dict[str, Any]  # {"split": "test"|"dev", "name": ..., metrics...}
    test_predictions: list[Any] | None  # the task's predictions on test, for its plots
    ms_per_example: float  # inference time on test (dev without a test set), batched
    began: float = 0.0  # time.perf_counter() when the final evaluation began: the run's wall_s ends there
    # {split: {"before": (conf, correct), "after": ...}}: reliability data of calibration.png (not in metrics.json)
    calibration: dict[str, Any] = field(default_factory=dict)
    abstain: dict[str, Any] | None = None  # the artifact's abstention threshold (state["abstain"]), when set

    def as_dict(self) -> dict[str, Any]:
        scores: dict[str, Any] = {"dev": self.dev}
        if self.test is not None:
            scores["test"] = self.test
        scores["baseline"] = self.baseline
        return scores


@dataclass
class TrainStats:
    """metrics.json's ``train``: cost and settings of the training (zeros when nothing trained)."""

    wall_s: float = 0.0  # data reading to the adapted model, before the final evaluation
    train_s: float = 0.0  # training: steps, evaluations, checkpoints
    step_s: float = 0.0  # optimizer steps only: the throughput denominator
    time_to_best_s: float = 0.0
    best_epoch: float = 0
    best_step: int = 0
    steps: int = 0
    stopped_early: bool = False
    stop_reason: str = ""  # "early stopping", "time limit", "" (the planned budget ran out, or no training)
    epochs: float = 0  # epochs run
    budget: dict[str, Any] = field(default_factory=dict)  # lr, batch size, planned epochs/steps and why
    train_tokens: int = 0  # real (non-padding) tokens, summed over processes
    padded_tokens: int = 0
    tokens_per_s: float = 0.0
    processes: int = 1
    precision: str = "fp32"
    attention: str | None = None
    trainable_params: int = 0
    total_params: int = 0
    ms_per_example: float | None = None
    artifact_bytes: int | None = None  # the saved model's size on disk
    extra: dict[str, Any] = field(default_factory=dict)  # recipe-specific numbers (e.g. SetFit's pairs)

    @classmethod
    def from_loop(
        cls, cfg: RunConfig, state: Any, accelerator: Accelerator, params: dict[str, int], budget: Any
    ) -> TrainStats:
        """From the :class:`~fieldtune.training.loop.Loop`'s final state (tokens summed over processes) and
        the :class:`~fieldtune.training.budget.Budget` it ran."""
        tokens = accelerator.reduce(torch.tensor([state.real_tokens, state.padded_tokens]), reduction="sum").tolist()
        return cls(
            train_s=round(state.seconds, 2),
            step_s=round(state.step_seconds, 2),
            time_to_best_s=round(state.best_seconds, 2),
            best_epoch=state.best_epoch,
            best_step=state.best_step,
            steps=state.step,
            stopped_early=state.stopped_early,
            stop_reason=state.stop_reason,
            epochs=state.history[-1]["epoch"] if state.history else 0,
            budget=budget.as_dict(),
            train_tokens=tokens[0],
            padded_tokens=tokens[1],
            tokens_per_s=round(tokens[0] / max(state.step_seconds, 1e-9), 1),
            processes=accelerator.num_processes,
            precision=setup.precision(cfg),
            attention=setup.attention(cfg),
            trainable_params=params["trainable"],
            total_params=params["total"],
        )

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        return {**row, **row.pop("extra")}


@dataclass
class RunRecord:
    """One run: its config, data, final metrics, training stats and eval history."""

    cfg: RunConfig
    splits: Splits
    labels: list[str]
    evaluation: Evaluation
    train: TrainStats
    history: list[dict[str, Any]] = field(default_factory=list)  # the loop's eval records ([]: nothing trained)
    started: float = field(default_factory=time.perf_counter)
    plots: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.train.wall_s = round(self.evaluation.began - self.started, 2)
        if self.train.ms_per_example is None:
            self.train.ms_per_example = self.evaluation.ms_per_example

    @property
    def params(self) -> dict[str, int]:
        return {"trainable": self.train.trainable_params, "total": self.train.total_params}

    @property
    def metric(self) -> str:
        return self.cfg.selection_metric()

    @property
    def output(self) -> Path:
        return self.cfg.output

    def metrics(self) -> dict[str, Any]:
        """metrics.json."""
        return {**self.evaluation.as_dict(), "train": self.train.as_dict()}

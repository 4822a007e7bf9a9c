"""What recipes share: reading the data for a task, and training with the shared loop."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
from accelerate import Accelerator

from ..config import RunConfig
from ..data.prepare import Splits, prepare_splits
from ..runs import eval_logger
from ..tasks import Task, get_task
from ..training.budget import Budget, plan_budget
from ..training.loop import Loop, LoopState


def read_data(cfg: RunConfig) -> tuple[Task, Splits, list[str]]:
    """The task, its checked train / dev / test examples and the label set (from train)."""
    task = get_task(cfg.task)
    splits = prepare_splits(cfg)
    return task, splits, task.label_list(splits.train)


def fit(
    cfg: RunConfig,
    model: torch.nn.Module,
    features: list[dict[str, Any]],
    dev_metrics: Callable[[torch.nn.Module], dict[str, Any]],
    accelerator: Accelerator,
    pad_id: int,
    *,
    loss: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor],
    kind: str,
    n_labels: int = 0,
    head_lr: float | None = None,
    many_class_lr: float | None = None,
    resume: bool = False,
    progress: bool = True,
) -> tuple[torch.nn.Module, LoopState, Budget]:
    """Train with :class:`Loop` on ``loss`` (a task's :meth:`~fieldtune.tasks.base.Task.loss`) within the
    budget :func:`~fieldtune.training.budget.plan_budget` sets for this data and ``kind`` of model
    (``"encoder"`` / ``"causal_lm"``) with a new head of ``n_labels`` classes: early stopping on dev,
    checkpoints under ``output/checkpoints``, each
    evaluation appended to ``log.jsonl``; the best weights restored.

    Returns:
        The trained model without accelerate's wrappers (so the final metrics are those of the saved
        artifact, which predicts in fp32; bf16 autocast, where on, was for training and model selection),
        the loop's final state and the budget it ran.
    """
    budget = plan_budget(cfg.train, len(features), kind, cfg.method, n_labels, head_lr, many_class_lr)
    if progress and accelerator.is_main_process:  # on a terminal too: the settings chosen for the user
        for reason in budget.why:
            print(f"budget: {reason}", file=sys.stderr, flush=True)
    loop = Loop(
        model,
        features,
        dev_metrics,
        cfg.train,
        cfg.selection_metric(),
        accelerator,
        pad_id,
        ckpt_dir=cfg.output / "checkpoints",
        on_eval=eval_logger(cfg),
        progress=progress,
        loss=loss,
        budget=budget,
        answer_logits_only=kind == "causal_lm",
    )
    state = loop.run(resume=resume)
    return accelerator.unwrap_model(loop.model, keep_fp32_wrapper=False), state, budget

"""Optimizers and learning-rate schedules."""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import get_scheduler

from ..config import TrainConfig
from .sparse_rows import RowAdamW


def build_optimizer(
    model: nn.Module, cfg: TrainConfig, lr: float, head_lr: float | None = None
) -> torch.optim.Optimizer:
    """AdamW or SGD at peak rate ``lr``; biases and normalisation weights get no weight decay.

    The weights the pretrained checkpoint lacked (``model.new_parameters``, set by the encoder loader: the
    fresh head) learn at ``head_lr`` (default ``lr``). The fused AdamW kernel is ~6x cheaper per step than
    the default for-each one on CPU. A parameter with sparse gradients (``train.sparse_embeddings``) is
    updated on the rows it used (:class:`RowAdamW`).
    """
    new = set(getattr(model, "new_parameters", ()))
    params: dict[tuple[bool, bool], list[nn.Parameter]] = {}  # (decays, new head) -> parameters
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = (p.ndim >= 2 and "norm" not in name.lower(), _plain_name(name) in new)
            params.setdefault(key, []).append(p)
    groups = [
        {"params": ps, "weight_decay": cfg.weight_decay if decays else 0.0, "lr": head_lr or lr if head else lr}
        for (decays, head), ps in sorted(params.items())
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    sparse = any(getattr(m, "sparse", False) for m in model.modules() if isinstance(m, nn.Embedding))
    return (RowAdamW if sparse else torch.optim.AdamW)(groups, lr=lr, fused=True)


def _plain_name(name: str) -> str:
    """A parameter's name as the checkpoint spells it, without what PEFT wraps around it."""
    name = name.removeprefix("base_model.model.")
    return name.replace(".modules_to_save.default.", ".")


# the second cycle's peak, as a share of the first's. Half the peak (twelfth session) cost the runs that
# extend: Weibo NER 0.446 -> 0.367, BANKING77 5 per intent 72.40 -> 71.60, multi-label 10 per label
# 82.27 -> 81.35 (bench/RESULTS.md, fourteenth session)
RESTART = 1.0


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int, plan_steps: int | None = None
):
    """Linear warm-up over ``warmup_ratio`` of the steps, then linear / cosine decay or constant.

    With ``plan_steps`` short of ``total_steps`` (the automatic budget: a plan, then on while dev improves)
    the rate follows two cycles: warm-up and decay to zero at the plan's end, so a run that has converged
    by then stops on annealed weights; then, for the extension, a restart at the full peak (``RESTART``)
    that decays to zero at the horizon (a run whose plan ended before it had learned anything — Weibo
    NER, no entity predicted after 255 steps — needs the full rate again). One decay over the whole
    horizon left a run that stopped at its plan on un-annealed weights (PhraseBank, 100 per label:
    88.52 -> 87.20, bench/RESULTS.md).
    """
    if not plan_steps or plan_steps >= total_steps or cfg.schedule == "constant":
        name = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[cfg.schedule]
        return get_scheduler(
            name, optimizer, num_warmup_steps=round(cfg.warmup_ratio * total_steps), num_training_steps=total_steps
        )
    warmup = round(cfg.warmup_ratio * plan_steps)

    def decay(progress: float) -> float:  # 1 -> 0 over a cycle
        progress = min(max(progress, 0.0), 1.0)
        return 1.0 - progress if cfg.schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        if step < plan_steps:
            return decay((step - warmup) / max(1, plan_steps - warmup))
        return RESTART * decay((step - plan_steps) / max(1, total_steps - plan_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

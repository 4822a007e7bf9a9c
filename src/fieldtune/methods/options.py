"""What a method's ``adapt`` function receives, and helpers every method shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..config import PeftConfig


@dataclass(frozen=True)
class MethodOptions:
    """The settings a method may read."""

    freeze_layers: int = 0
    peft: PeftConfig = field(default_factory=PeftConfig)


def backbone(model: nn.Module) -> nn.Module:
    """The pretrained body under a task head (BERT: ``model.bert``)."""
    return getattr(model, model.base_model_prefix, model)


def head_modules(model: nn.Module) -> list[str]:
    """The task head: every top-level child with parameters outside the pretrained backbone
    (BERT: ``classifier``; DistilBERT: ``pre_classifier`` and ``classifier``)."""
    prefix = model.base_model_prefix
    return [name for name, child in model.named_children() if name != prefix and any(True for _ in child.parameters())]

"""How parameters adapt. Each method freezes what it doesn't train; all report the counts.

full    every weight trains
freeze  embeddings + the bottom ``freeze_layers`` transformer layers are frozen
head    only the task head trains (a linear probe on the pretrained features)
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .errors import UserError

_METHODS: dict[str, Callable[[nn.Module, int], None]] = {}


def register_method(name: str):
    """Decorator adding a method; duplicate names are a bug."""

    def wrap(fn: Callable[[nn.Module, int], None]):
        if name in _METHODS:
            raise ValueError(f"method {name!r} is already registered")
        _METHODS[name] = fn
        return fn

    return wrap


def apply_method(model: nn.Module, name: str, freeze_layers: int = 0) -> dict[str, int]:
    """Freeze parameters for method ``name``; returns ``{"trainable": n, "total": n}``."""
    _METHODS[name](model, freeze_layers)
    return count_parameters(model)


def count_parameters(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total}


@register_method("full")
def _full(model: nn.Module, _: int) -> None:
    for p in model.parameters():
        p.requires_grad_(True)


@register_method("head")
def _head(model: nn.Module, _: int) -> None:
    for p in _backbone(model).parameters():
        p.requires_grad_(False)


@register_method("freeze")
def _freeze(model: nn.Module, layers: int) -> None:
    backbone = _backbone(model)
    blocks = _layer_list(backbone)
    if layers > len(blocks):
        raise UserError(
            f"freeze_layers={layers} but the model has {len(blocks)} layers",
            hint=f"use 0..{len(blocks)}, or method: head to freeze all",
        )
    frozen = [backbone.get_input_embeddings(), *blocks[:layers]]
    if hasattr(backbone, "embeddings"):
        frozen.append(backbone.embeddings)  # position / type embeddings and their LayerNorm too
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)


def _backbone(model: nn.Module) -> nn.Module:
    return getattr(model, model.base_model_prefix, model)


def _layer_list(backbone: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks: the longest ModuleList in the backbone."""
    lists = [m for m in backbone.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise UserError("method freeze: can't find the model's layer stack", hint="use method: full or head")
    return max(lists, key=len)

"""How a model adapts: every method registers a :class:`MethodSpec` (what it supports, whether it
trains, its recipe) and, when it chooses the trainable parameters, an ``adapt`` function.

To add a method: a module here that defines its ``adapt`` (if any) and calls :func:`register_method`,
imported below.
"""

from __future__ import annotations

from torch import nn

from ..config import PeftConfig
from . import peft_adapters, training_free, weights  # noqa: F401  (register the methods)
from .options import MethodOptions, head_modules
from .registry import MethodSpec, check, describe_methods, get_method, method_names, methods_for, register_method


def apply_method(
    model: nn.Module, name: str, freeze_layers: int = 0, peft: PeftConfig | None = None
) -> tuple[nn.Module, dict[str, int]]:
    """Prepare ``model`` for method ``name``.

    Returns:
        The module to train (``model``, or a ``peft.PeftModel`` wrapping it for the peft methods)
        and ``{"trainable": n, "total": n}`` of that module.

    Raises:
        UserError: The method can't apply to this model (too many layers to freeze, no default
            peft target modules for the architecture, target modules that match nothing, ...).
    """
    spec = get_method(name)
    if spec.adapt is None:
        raise ValueError(f"method {name!r} does not choose trainable parameters (its recipe trains)")
    trained = spec.adapt(model, MethodOptions(freeze_layers, peft or PeftConfig()))
    return trained, count_parameters(trained)


def count_parameters(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total}


__all__ = [
    "MethodOptions",
    "MethodSpec",
    "apply_method",
    "check",
    "describe_methods",
    "count_parameters",
    "get_method",
    "head_modules",
    "method_names",
    "methods_for",
    "register_method",
]

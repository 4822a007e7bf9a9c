"""How parameters adapt. Each method freezes what it doesn't train; all report the counts.

full           every weight trains
freeze         embeddings + the bottom ``freeze_layers`` transformer layers are frozen
head           only the task head trains (a linear probe on the pretrained features)
lora           low-rank updates of the attention weights + the head train (peft)
ia3            learned per-channel scales of keys, values and feed-forward inputs + the head (peft)
prefix         learned key/value prefixes in every layer + the head (peft; needs a model with
               ``past_key_values``, which BERT in transformers 5 has not: refused with the reason)
prompt_tuning  learned virtual input tokens + the head (peft; sequence tasks only)

The peft methods wrap the model in a ``peft.PeftModel``; the task head is one of its
``modules_to_save``, so it trains and is saved with the adapter (an adapter reloaded without its
head would predict with a random one).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .config import PEFT_METHODS, PeftConfig
from .errors import UserError


@dataclass(frozen=True)
class MethodOptions:
    """The settings a method may read."""

    freeze_layers: int = 0
    peft: PeftConfig = field(default_factory=PeftConfig)


# A method sets ``requires_grad`` on the model and returns the module to train: the model itself,
# or a wrapper around it (the peft methods).
Method = Callable[[nn.Module, MethodOptions], nn.Module]
_METHODS: dict[str, Method] = {}


def register_method(name: str):
    """Decorator adding a method; duplicate names are a bug."""

    def wrap(fn: Method):
        if name in _METHODS:
            raise ValueError(f"method {name!r} is already registered")
        _METHODS[name] = fn
        return fn

    return wrap


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
    trained = _METHODS[name](model, MethodOptions(freeze_layers, peft or PeftConfig()))
    return trained, count_parameters(trained)


def is_peft_method(name: str) -> bool:
    return name in PEFT_METHODS


def count_parameters(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total}


@register_method("full")
def _full(model: nn.Module, _: MethodOptions) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(True)
    return model


@register_method("head")
def _head(model: nn.Module, _: MethodOptions) -> nn.Module:
    if type(model).__name__.endswith("ForCausalLM"):
        raise UserError(
            "method head has nothing to train in a causal LM: its output layer is tied to the input embeddings",
            hint="use method: lora, ia3, prompt_tuning, freeze or full",
        )
    for p in _backbone(model).parameters():
        p.requires_grad_(False)
    return model


@register_method("freeze")
def _freeze(model: nn.Module, options: MethodOptions) -> nn.Module:
    layers = options.freeze_layers
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
    return model


def _backbone(model: nn.Module) -> nn.Module:
    return getattr(model, model.base_model_prefix, model)


def _layer_list(backbone: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks: the longest ModuleList in the backbone."""
    lists = [m for m in backbone.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise UserError("method freeze: can't find the model's layer stack", hint="use method: full or head")
    return max(lists, key=len)


# ---------------------------------------------------------------- peft methods


@register_method("lora")
def _lora(model: nn.Module, options: MethodOptions) -> nn.Module:
    from peft import LoraConfig
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    o = options.peft
    targets = o.target_modules or _default_targets(model, "lora", DEFAULTS)
    return _wrap(model, LoraConfig(r=o.r, lora_alpha=o.alpha, lora_dropout=o.dropout, target_modules=targets))


@register_method("ia3")
def _ia3(model: nn.Module, options: MethodOptions) -> nn.Module:
    from peft import IA3Config
    from peft.utils import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FEEDFORWARD
    from peft.utils import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as DEFAULTS

    targets = options.peft.target_modules or _default_targets(model, "ia3", DEFAULTS)
    # feed-forward modules get their scale on the input side; only those among the targets count
    feedforward = [m for m in FEEDFORWARD.get(_model_type(model), []) if m in targets]
    return _wrap(model, IA3Config(target_modules=targets, feedforward_modules=feedforward))


@register_method("prefix")
def _prefix(model: nn.Module, options: MethodOptions) -> nn.Module:
    from peft import PrefixTuningConfig

    backbone = _backbone(model)
    if not any("past_key_values" in inspect.signature(m.forward).parameters for m in (model, backbone)):
        raise UserError(
            f"method prefix needs an encoder that takes past_key_values, and {type(backbone).__name__} in "
            f"transformers {_transformers_version()} does not",
            hint="use method: lora, ia3 or prompt_tuning",
        )
    return _wrap(model, PrefixTuningConfig(num_virtual_tokens=options.peft.virtual_tokens))


@register_method("prompt_tuning")
def _prompt_tuning(model: nn.Module, options: MethodOptions) -> nn.Module:
    from peft import PromptTuningConfig

    if _task_type(model) not in ("SEQ_CLS", "CAUSAL_LM"):  # RunConfig refuses ner already; this guards direct calls
        raise UserError("method prompt_tuning only works for classification", hint="use method: lora or ia3")
    return _wrap(model, PromptTuningConfig(num_virtual_tokens=options.peft.virtual_tokens))


def _wrap(model: nn.Module, config: Any) -> nn.Module:
    """``peft.get_peft_model`` with the task type and the head as ``modules_to_save`` (trained and
    saved with the adapter)."""
    from peft import get_peft_model

    from .artifacts import quiet_transformers

    config.task_type = _task_type(model)
    # peft adds "classifier" and "score" to modules_to_save itself for these task types; a causal LM has no
    # task head (its lm_head is tied to the input embeddings and stays frozen)
    heads = [] if config.task_type == "CAUSAL_LM" else head_modules(model)
    config.modules_to_save = [m for m in heads if m not in ("classifier", "score")] or None
    try:
        with quiet_transformers():
            return get_peft_model(model, config)
    except ValueError as err:  # e.g. target modules that match nothing in the model
        raise UserError(
            f"peft could not adapt {type(model).__name__}: {str(err).splitlines()[0]}",
            hint="check peft.target_modules against the model's module names (print(model))",
        ) from None


def head_modules(model: nn.Module) -> list[str]:
    """The task head: every top-level child with parameters outside the pretrained backbone
    (BERT: ``classifier``; DistilBERT: ``pre_classifier`` and ``classifier``)."""
    prefix = model.base_model_prefix
    return [name for name, child in model.named_children() if name != prefix and any(True for _ in child.parameters())]


def _task_type(model: nn.Module) -> str:
    name = type(model).__name__
    if name.endswith("ForTokenClassification"):
        return "TOKEN_CLS"
    if name.endswith("ForSequenceClassification"):
        return "SEQ_CLS"
    if name.endswith("ForCausalLM"):
        return "CAUSAL_LM"
    raise UserError(f"the peft methods support sequence / token classification and causal LMs, not {name}")


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def _model_type(model: nn.Module) -> str:
    return getattr(getattr(model, "config", None), "model_type", "") or ""


def _default_targets(model: nn.Module, method: str, defaults: dict[str, list[str]]) -> list[str]:
    """peft's own default target modules for the architecture."""
    kind = _model_type(model)
    if kind not in defaults:
        raise UserError(
            f"method {method}: peft has no default target modules for model type {kind!r}",
            hint="set peft.target_modules to the names of the model's attention Linear layers, e.g. [q_proj, v_proj]",
        )
    return list(defaults[kind])

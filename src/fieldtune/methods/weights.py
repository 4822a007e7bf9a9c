"""Methods that choose which of the model's own weights train.

full    every weight trains
freeze  embeddings + the bottom ``freeze_layers`` transformer layers are frozen
head    only the task head trains (a linear probe on the pretrained features)
"""

from __future__ import annotations

from torch import nn

from ..errors import UserError
from .options import MethodOptions, backbone
from .registry import MethodSpec, register_method

ENCODER_TASKS = {"classification": "encoder", "multilabel": "encoder", "ner": "encoder"}
DECODER_TASKS = {"classification": "llm_classify", "causal_lm": "instruct"}
# all-MiniLM-L6-v2 (6 layers, 22M) learns faster at 1e-4 than at BERT-base's 2e-5..5e-5 (bench/defaults.py);
# a 135M decoder's full update forgets its instruction tuning above ~2e-5
WHOLE_MODEL_LR = {"encoder": 1e-4, "causal_lm": 2e-5}


def full(model: nn.Module, _: MethodOptions) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def head(model: nn.Module, _: MethodOptions) -> nn.Module:
    for p in backbone(model).parameters():
        p.requires_grad_(False)
    return model


def freeze(model: nn.Module, options: MethodOptions) -> nn.Module:
    layers = options.freeze_layers
    body = backbone(model)
    blocks = _layer_list(body)
    if layers > len(blocks):
        raise UserError(
            f"freeze_layers={layers} but the model has {len(blocks)} layers",
            hint=f"use 0..{len(blocks)}, or method: head to freeze all",
        )
    frozen = [body.get_input_embeddings(), *blocks[:layers]]
    if hasattr(body, "embeddings"):
        frozen.append(body.embeddings)  # position / type embeddings and their LayerNorm too
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    return model


def _layer_list(body: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks: the longest ModuleList in the backbone."""
    lists = [m for m in body.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise UserError("method freeze: can't find the model's layer stack", hint="use method: full or head")
    return max(lists, key=len)


register_method(
    MethodSpec(
        "full",
        "all weights train",
        {"encoder": ENCODER_TASKS, "causal_lm": DECODER_TASKS},
        adapt=full,
        lr=WHOLE_MODEL_LR,
    )
)
register_method(
    MethodSpec(
        "freeze",
        "embeddings + the bottom freeze_layers layers are frozen, the rest trains",
        {"encoder": ENCODER_TASKS, "causal_lm": DECODER_TASKS},
        section="freeze_layers",
        adapt=freeze,
        lr=WHOLE_MODEL_LR,
    )
)
register_method(
    MethodSpec(
        "head",
        "only the task head trains (a linear probe)",
        {"encoder": ENCODER_TASKS},
        adapt=head,
        lr={"encoder": 1e-3},  # a linear probe on frozen features: a high rate, no underfitting at 3 epochs
        hints={
            "causal_lm": "method head has nothing to train in a causal LM: its output layer is tied to the input "
            "embeddings; use method: lora, ia3, prompt_tuning, freeze or full"
        },
    )
)

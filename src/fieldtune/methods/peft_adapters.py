"""The parameter-efficient methods, thin over the peft library.

lora           low-rank updates of the attention weights + the head train
ia3            learned per-channel scales of keys, values and feed-forward inputs + the head
prefix         learned key/value prefixes in every layer + the head (needs a model that takes
               ``past_key_values``, which BERT and Llama in transformers 5 do not: refused with the reason)
prompt_tuning  learned virtual input tokens + the head (sequence tasks only: the virtual tokens shift
               every output position, so they can't tag tokens)

The model is wrapped in a ``peft.PeftModel``; the task head is one of its ``modules_to_save``, so it
trains and is saved with the adapter (an adapter reloaded without its head would predict with a
random one).
"""

from __future__ import annotations

import inspect
from typing import Any

import transformers
from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, get_peft_model
from peft.utils import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as IA3_FEEDFORWARD
from peft.utils import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as IA3_DEFAULTS
from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as LORA_DEFAULTS
from torch import nn

from ..errors import UserError
from ..utils.hf import quiet_transformers
from .options import MethodOptions, backbone, head_modules
from .registry import MethodSpec, register_method
from .weights import DECODER_TASKS, ENCODER_TASKS

SEQUENCE_TASKS = {"classification": "encoder", "multilabel": "encoder"}


def lora(model: nn.Module, options: MethodOptions) -> nn.Module:
    o = options.peft
    targets = o.target_modules or _default_targets(model, "lora", LORA_DEFAULTS)
    return _wrap(model, LoraConfig(r=o.r, lora_alpha=o.alpha, lora_dropout=o.dropout, target_modules=targets))


def ia3(model: nn.Module, options: MethodOptions) -> nn.Module:
    targets = options.peft.target_modules or _default_targets(model, "ia3", IA3_DEFAULTS)
    # feed-forward modules get their scale on the input side; only those among the targets count
    feedforward = [m for m in IA3_FEEDFORWARD.get(_model_type(model), []) if m in targets]
    return _wrap(model, IA3Config(target_modules=targets, feedforward_modules=feedforward))


def prefix(model: nn.Module, options: MethodOptions) -> nn.Module:
    body = backbone(model)
    if not any("past_key_values" in inspect.signature(m.forward).parameters for m in (model, body)):
        raise UserError(
            f"method prefix needs a model that takes past_key_values, and {type(body).__name__} in "
            f"transformers {transformers.__version__} does not",
            hint="use method: lora, ia3 or prompt_tuning",
        )
    return _wrap(model, PrefixTuningConfig(num_virtual_tokens=options.peft.virtual_tokens))


def prompt_tuning(model: nn.Module, options: MethodOptions) -> nn.Module:
    return _wrap(model, PromptTuningConfig(num_virtual_tokens=options.peft.virtual_tokens))


def _wrap(model: nn.Module, config: Any) -> nn.Module:
    """``peft.get_peft_model`` with the task type and the head as ``modules_to_save`` (trained and
    saved with the adapter)."""
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


def _task_type(model: nn.Module) -> str:
    name = type(model).__name__
    for suffix, task_type in (
        ("ForTokenClassification", "TOKEN_CLS"),
        ("ForSequenceClassification", "SEQ_CLS"),
        ("ForCausalLM", "CAUSAL_LM"),
    ):
        if name.endswith(suffix):
            return task_type
    raise UserError(f"the peft methods support sequence / token classification and causal LMs, not {name}")


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


_ADAPTER = {"adapter": True, "section": "peft"}
register_method(
    MethodSpec(
        "lora",
        "low-rank updates of the attention weights + the head",
        {"encoder": ENCODER_TASKS, "causal_lm": DECODER_TASKS},
        mergeable=True,
        adapt=lora,
        # banking77 sample, r 8, automatic budget: test 0.861 / 0.854 / 0.972 at 5e-4 / 1e-3 / 2e-3;
        # smollm2 on PhraseBank: 0.934 at 5e-4 (bench/RESULTS.md)
        lr={"encoder": 2e-3, "causal_lm": 5e-4},
        **_ADAPTER,
    )
)
register_method(
    MethodSpec(
        "ia3",
        "learned scales of keys, values and feed-forward inputs + the head",
        {"encoder": ENCODER_TASKS, "causal_lm": DECODER_TASKS},
        mergeable=True,
        adapt=ia3,
        lr={"encoder": 3e-3, "causal_lm": 3e-3},
        **_ADAPTER,
    )
)
register_method(
    MethodSpec(
        "prefix",
        "learned key/value prefixes in every layer + the head",
        {"encoder": ENCODER_TASKS, "causal_lm": {"classification": "llm_classify"}},
        adapt=prefix,
        lr={"encoder": 1e-2, "causal_lm": 1e-2},
        **_ADAPTER,
    )
)
register_method(
    MethodSpec(
        "prompt_tuning",
        "learned virtual input tokens + the head (sequence tasks only)",
        {"encoder": SEQUENCE_TASKS, "causal_lm": {"classification": "llm_classify"}},
        adapt=prompt_tuning,
        lr={"encoder": 1e-2, "causal_lm": 1e-2},
        hints={
            "encoder:ner": "method prompt_tuning can't tag tokens: its virtual tokens shift every position of the "
            "output; use method: lora or ia3 for ner",
            "causal_lm:causal_lm": "prompt_tuning would shift the pre-shifted labels of instruction tuning; "
            "use lora or ia3",
        },
        **_ADAPTER,
    )
)

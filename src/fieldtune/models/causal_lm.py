"""Loading a causal LM (decoder) and its tokenizer, the same way for training, prompting and serving."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import transformers

from ..data.chat import EOS_ENDS_ANSWERS
from ..errors import UserError
from ..utils.hf import quiet_transformers
from ..zoo import resolve

# Gemma's own chat template (the turn format of google/gemma-3-*-it, string contents), for a Gemma
# tokenizer that has none: a base model's GGUF (the gemma3 alias) carries no template. A system
# message goes before the first user turn's text, as Gemma's template puts it. The template is
# marked EOS_ENDS_ANSWERS: the base model never learned to predict <end_of_turn> (its output row is as
# untrained as the unused tokens'): a reply writer tuned to end with it put 0.63 of its probability
# on "slotBox" there and repeated its answer to the token limit. Generated answers are trained to end
# with <eos>, which ends every pretraining document; prompts and label scoring are unchanged.
GEMMA_CHAT_TEMPLATE = (
    EOS_ENDS_ANSWERS + "{{ bos_token }}"
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set prefix = (messages[0]['content'] | trim) + '\\n\\n' %}{% set turns = messages[1:] %}"
    "{% else %}{% set prefix = '' %}{% set turns = messages %}{% endif %}"
    "{% for m in turns %}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else m['role']) + '\\n' }}"
    "{{ (prefix if loop.first else '') + (m['content'] | trim) + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
END_OF_TURN = "<end_of_turn>"


@dataclass
class CausalLM:
    """A decoder and its tokenizer."""

    model: Any
    tokenizer: Any
    path: str  # where it loaded from (resolved alias / folder / hub id)


def load_causal_lm(name: str, attention: str = "sdpa", dtype: Any = None) -> CausalLM:
    """Tokenizer + ``AutoModelForCausalLM`` for an alias, folder or hub id; a pad token is added
    when the tokenizer has none (the EOS token), padding on the right.

    Args:
        name: A zoo alias, a local model folder or a hub id.
        attention: The attention kernel (``attn_implementation``): ``sdpa`` or ``eager``.
        dtype: The weights' dtype, or None for the checkpoint's default.

    Returns:
        The model, its prepared tokenizer and the resolved path.

    Raises:
        UserError: The model can't be loaded or isn't a causal LM.
    """
    path = resolve(name)
    try:
        with quiet_transformers():
            tokenizer = transformers.AutoTokenizer.from_pretrained(path)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                path, attn_implementation=attention, **({"dtype": dtype} if dtype is not None else {})
            )
    except (OSError, ValueError) as err:
        raise UserError(
            f"could not load causal LM {name!r}: {str(err).splitlines()[0]}",
            hint="use model: smollm2, a local causal LM folder, or set HF_HUB_OFFLINE=0 to download a hub id",
        ) from None
    prepare_tokenizer(tokenizer)
    default_chat_template(model, tokenizer)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return CausalLM(model, tokenizer, path)


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Pad token (EOS when missing) and right padding; returns the same tokenizer."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def default_chat_template(model: Any, tokenizer: Any) -> None:
    """A Gemma model whose tokenizer has no chat template (a base GGUF) gets Gemma's turn format, and
    its ``<end_of_turn>`` ends generation (as Gemma's own generation config says); others unchanged."""
    if not str(getattr(model.config, "model_type", "")).startswith("gemma"):
        return
    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if end is None or end == tokenizer.unk_token_id:
        return
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    eos = model.generation_config.eos_token_id
    ids = list(eos) if isinstance(eos, list) else [] if eos is None else [eos]
    if end not in ids:
        model.generation_config.eos_token_id = [*ids, end]

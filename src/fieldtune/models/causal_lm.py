"""Loading a causal LM (decoder) and its tokenizer, the same way for training, prompting and serving."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import transformers

from ..errors import UserError
from ..utils.hf import quiet_transformers
from ..zoo import resolve


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
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return CausalLM(model, tokenizer, path)


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Pad token (EOS when missing) and right padding; returns the same tokenizer."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer

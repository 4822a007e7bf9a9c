"""Loading a pretrained encoder with a fresh task head, for fine-tuning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import transformers

from ..config import RunConfig
from ..errors import UserError
from ..zoo import resolve


@dataclass
class Encoder:
    """A pretrained encoder with a new head, its (fast) tokenizer and the window length to use."""

    model: Any
    tokenizer: Any
    max_length: int


def load_encoder(
    cfg: RunConfig, auto_model: str, labels: list[str], head_config: dict[str, Any], attention: str
) -> Encoder:
    """Tokenizer + pretrained encoder with a fresh head for ``labels``.

    Args:
        cfg: The run's model name and dropout / max_length settings.
        auto_model: The transformers Auto class that adds the head (the task's ``auto_model``).
        labels: The head's outputs, in order.
        head_config: More config for the head (the task's ``model_kwargs``, e.g. the problem type).
        attention: The attention kernel (``attn_implementation``).

    Raises:
        UserError: The model can't be loaded or has no fast tokenizer (needed for word alignment).
    """
    path = resolve(cfg.model)
    overrides = {"attention_probs_dropout_prob": cfg.train.attention_dropout}
    if cfg.train.dropout is not None:
        overrides.update(hidden_dropout_prob=cfg.train.dropout, dropout=cfg.train.dropout)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        config = transformers.AutoConfig.from_pretrained(path)
        for key, value in overrides.items():
            if hasattr(config, key):
                setattr(config, key, value)
        config.update(
            {
                "num_labels": len(labels),
                "id2label": dict(enumerate(labels)),
                "label2id": {label: i for i, label in enumerate(labels)},
                **head_config,
            }
        )
        model, info = getattr(transformers, auto_model).from_pretrained(
            path, config=config, attn_implementation=attention, output_loading_info=True
        )
        model.new_parameters = tuple(info["missing_keys"])  # the fresh head: optim.build_optimizer's head group
    except (OSError, ValueError) as err:
        raise UserError(
            f"could not load model {cfg.model!r}: {str(err).splitlines()[0]}",
            hint="use a bundled alias (`fieldtune models`), a local folder, or set HF_HUB_OFFLINE=0 to "
            "download a hub id",
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(
            f"model {cfg.model!r} has no fast tokenizer", hint="fieldtune needs word alignment from a fast tokenizer"
        )
    limit = getattr(config, "max_position_embeddings", 512)
    return Encoder(model, tokenizer, min(cfg.train.max_length or limit, limit, tokenizer.model_max_length))

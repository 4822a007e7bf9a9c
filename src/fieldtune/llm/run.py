"""``train()`` for a decoder LLM: each task in its own module, one entry point."""

from __future__ import annotations

from typing import Any

from ..config import RunConfig
from ..errors import UserError


def train_llm(cfg: RunConfig, resume: bool = False, progress: bool = True) -> Any:
    """classification: zero_shot / in_context prompting or training to emit the label (classify.py);
    causal_lm: instruction tuning (instruct.py); ner: zero-shot entity extraction as JSON (ner.py)."""
    if cfg.task == "causal_lm":
        from .instruct import train_instruct

        return train_instruct(cfg, resume=resume, progress=progress)
    if cfg.task == "ner":
        from .ner import run_ner

        return run_ner(cfg, progress=progress)
    if cfg.task == "multilabel":
        raise UserError(
            "task multilabel with a causal LM is not supported",
            hint="use an encoder (model: minilm) for multi-label classification",
        )
    from .classify import train_classifier

    return train_classifier(cfg, resume=resume, progress=progress)

"""One loader per artifact kind: the model(s) of an artifact folder, offline, from local files only.

encoder    ``load_artifact``: the task's ``AutoModelFor*`` from the folder, or its base + peft adapter
llm        ``load_llm_artifact``: full weights, base + peft adapter, or (prompting, zero-shot) the base
           model the artifact references, checked against its recorded sha256
embedding  ``load_embedding_artifact``: the sentence-transformers body (the artifact's own, SetFit, or
           the referenced base, zero-shot) and the linear head

Predictors, ``fieldtune export --merge`` and anything else that needs an artifact's model use these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import transformers

from ..artifacts import Artifact, base_model_path, find_model_dir, is_adapter_dir, read_meta
from ..fewshot.head import HEAD_FILE, LinearHead
from ..models.causal_lm import load_causal_lm, prepare_tokenizer
from ..models.embedder import load_sentence_encoder
from ..tasks import get_task
from ..utils.hf import quiet_transformers


def load_artifact(path: str | Path, with_model: bool = True) -> Artifact:
    """Load model + tokenizer + meta of an encoder artifact from a run or model folder.

    Args:
        path: A run folder or its ``model/`` folder.
        with_model: False skips the PyTorch weights (``Artifact.model`` is None then).

    Returns:
        The artifact, its model in eval mode.
    """
    model_dir = find_model_dir(path)
    meta = read_meta(model_dir)
    model = None
    if with_model:
        auto = getattr(transformers, get_task(meta["task"]).auto_model)
        if is_adapter_dir(model_dir):
            model = _with_adapter(model_dir, meta, auto)
        else:
            model = auto.from_pretrained(model_dir, local_files_only=True)
        model.eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    return Artifact(model_dir, model, tokenizer, meta)


def _with_adapter(model_dir: Path, meta: dict[str, Any], auto: Any) -> Any:
    """Base model (architecture and labels from the artifact's config.json) + the saved adapter
    and head, through ``peft.PeftModel.from_pretrained``."""
    base = base_model_path(model_dir, meta)
    config = transformers.AutoConfig.from_pretrained(model_dir, local_files_only=True)
    with quiet_transformers():  # its report calls the head "newly initialized": the adapter brings it
        model = auto.from_pretrained(base, config=config, local_files_only=True)
        return _peft_model(model, model_dir)


def _peft_model(model: Any, model_dir: Path) -> Any:
    # imported here: peft is needed only for adapter artifacts and takes a while to import
    from peft import PeftModel

    with quiet_transformers():
        return PeftModel.from_pretrained(model, model_dir, is_trainable=False)


def has_weights(model_dir: Path) -> bool:
    """Does the folder hold full model weights (one or sharded safetensors)?"""
    return (model_dir / "model.safetensors").is_file() or any(model_dir.glob("model-*.safetensors"))


def load_llm_artifact(model_dir: Path, meta: dict[str, Any]) -> tuple[Any, Any]:
    """The model of an llm artifact (any task) in eval mode, and the artifact's tokenizer.

    The model is the saved full weights; or the base model the artifact references (checked against
    its sha256) with the saved peft adapter on it; or, when nothing was trained, that base model alone.
    It loads with the attention kernel the run recorded (``state.attention``, default ``sdpa``), so the
    predictor computes the same numbers as the run's evaluation did.

    Args:
        model_dir: The artifact folder (see :func:`~fieldtune.artifacts.find_model_dir`).
        meta: Its ``fieldtune.json``.

    Returns:
        ``(model, tokenizer)``, the tokenizer with a pad token and right padding.
    """
    attention = (meta.get("state") or {}).get("attention", "sdpa")
    adapter = is_adapter_dir(model_dir)
    if adapter or not has_weights(model_dir):
        model = load_causal_lm(base_model_path(model_dir, meta), attention=attention).model
        if adapter:
            model = _peft_model(model, model_dir)
    else:
        model = load_causal_lm(str(model_dir), attention=attention).model
    tokenizer = prepare_tokenizer(transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True))
    return model.eval(), tokenizer


def load_embedding_artifact(model_dir: Path, meta: dict[str, Any]) -> tuple[Any, LinearHead]:
    """The sentence-transformers body and linear head of an embedding artifact.

    The body is the artifact's own (SetFit, ``meta["body"] == "artifact"``) or the base model it
    references (zero-shot), checked against the recorded sha256.

    Args:
        model_dir: The artifact folder.
        meta: Its ``fieldtune.json``.

    Returns:
        ``(body, head)``.
    """
    body_dir = model_dir if meta.get("body") == "artifact" else base_model_path(model_dir, meta)
    return load_sentence_encoder(body_dir), LinearHead.load(model_dir / HEAD_FILE)

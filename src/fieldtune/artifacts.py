"""The saved model: Hugging Face files plus ``fieldtune.json``, written atomically.

A crash or Ctrl-C while saving never leaves half an artifact: everything is written to a
temporary sibling folder that is renamed into place only when complete.

A peft run (lora, ia3, prompt_tuning) saves only its adapter: ``adapter_config.json`` and
``adapter_model.safetensors`` (the adapter weights and the trained task head), the model's
``config.json`` (architecture, labels, problem type; no weights) and the tokenizer. The base
weights stay where ``fieldtune.json``'s ``base_model`` says; their sha256 is recorded and checked
when the artifact loads, so an adapter never silently runs on other base weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import transformers

from .errors import UserError
from .zoo import resolve

META = "fieldtune.json"
ADAPTER_CONFIG = "adapter_config.json"  # peft's file name: its presence makes an adapter artifact


@dataclass
class Artifact:
    """A loaded artifact: model, tokenizer and its self-description."""

    path: Path
    model: Any  # None when loaded without weights (an ONNX backend runs the model instead)
    tokenizer: Any
    meta: dict[str, Any]


def save_artifact(model: Any, tokenizer: Any, meta: dict[str, Any], target: Path, extra: Any = None) -> Path:
    """Write ``target`` (a folder) atomically, replacing an older one only once the new is complete.
    ``extra(folder)``, when given, writes further files of the artifact (e.g. an LLM's in-context examples)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        if model is not None:  # None: nothing trained (zero-shot prompting): meta + tokenizer only
            model.save_pretrained(tmp, safe_serialization=True)  # a PeftModel writes only adapter + head
        if is_peft_model(model):  # config.json: the architecture, labels and problem type to rebuild
            base = model.get_base_model()
            base.config.architectures = [type(base).__name__]  # as save_pretrained records it
            base.config.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if extra is not None:
            extra(tmp)
        (tmp / META).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def replace_dir(staging: Path, target: Path) -> None:
    """Swap a complete ``staging`` folder in as ``target``; an older ``target`` goes only after.

    A kill between the two renames leaves the previous version at ``.<target>.old``.
    """
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)  # left by an earlier kill between the renames
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def find_model_dir(path: str | Path) -> Path:
    """Accept a run folder (with ``model/``) or the artifact folder itself."""
    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / META).is_file():
            return candidate
    if not path.exists():
        raise UserError("no such run or model folder", path=path)
    raise UserError(
        f"not a fieldtune model: no {META} here or in model/",
        path=path,
        hint="pass a run folder written by `fieldtune train` or its model/ subfolder",
    )


def read_meta(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / META).read_text(encoding="utf-8"))


def load_artifact(path: str | Path, with_model: bool = True) -> Artifact:
    """Load model + tokenizer + meta from a run or model folder (offline, local files only).

    Args:
        path: A run folder or its ``model/`` folder.
        with_model: False skips the PyTorch weights (``Artifact.model`` is None then).
    """
    model_dir = find_model_dir(path)
    meta = read_meta(model_dir)
    from .tasks import get_task

    model = None
    if with_model:
        auto = getattr(transformers, get_task(meta["task"]).auto_model)
        if is_adapter_dir(model_dir):
            model = _load_adapter(model_dir, meta, auto)
        else:
            model = auto.from_pretrained(model_dir, local_files_only=True)
        model.eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    return Artifact(model_dir, model, tokenizer, meta)


# ---------------------------------------------------------------- adapters (peft methods)


def is_peft_model(model: Any) -> bool:
    """A ``peft.PeftModel`` (without importing peft when nothing has)."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


def is_adapter_dir(model_dir: Path) -> bool:
    """Does this artifact hold a peft adapter (base weights elsewhere) rather than full weights?"""
    return (Path(model_dir) / ADAPTER_CONFIG).is_file()


def base_model_reference(name: str, with_fingerprint: bool = False) -> dict[str, Any]:
    """``fieldtune.json``'s ``base_model``: the name the run used, where it resolved and, for an
    adapter, the sha256 of the base weights (None for a hub id, which has no local folder)."""
    resolved = resolve(name)
    ref: dict[str, Any] = {"name": name, "resolved": resolved}
    if with_fingerprint:
        ref["sha256"] = weights_fingerprint(Path(resolved))
    return ref


def weights_fingerprint(model_dir: Path) -> str | None:
    """sha256 over the weight files of a Hugging Face folder (names and bytes), or None."""
    if not model_dir.is_dir():
        return None
    files = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin"))
    return files_sha256(model_dir, files) if files else None


def files_sha256(root: Path, files: list[Path]) -> str:
    """sha256 over ``files``' paths (relative to ``root``) and contents, in the order given."""
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _load_adapter(model_dir: Path, meta: dict[str, Any], auto: Any) -> Any:
    """Base model (architecture and labels from the artifact's config.json) + the saved adapter
    and head, through ``peft.PeftModel.from_pretrained``."""
    from peft import PeftModel

    base = _base_model_path(model_dir, meta)
    config = transformers.AutoConfig.from_pretrained(model_dir, local_files_only=True)
    with quiet_transformers():  # its report calls the head "newly initialized": the adapter brings it
        model = auto.from_pretrained(base, config=config, local_files_only=True)
        return PeftModel.from_pretrained(model, model_dir, is_trainable=False)


def _base_model_path(model_dir: Path, meta: dict[str, Any]) -> str:
    """Where the adapter's base model is now: the folder recorded at training, else its name
    resolved again (a bundled alias in another environment); checked against the recorded sha256."""
    ref = meta.get("base_model") or {}
    name, resolved = ref.get("name"), ref.get("resolved")
    if resolved and Path(resolved).is_dir():
        path = resolved
    else:
        try:
            path = resolve(name or resolved or "")
        except UserError as err:
            raise UserError(
                f"the base model of this adapter is not available: {err.message}",
                path=model_dir,
                hint=err.hint or f"make {name!r} loadable again, or use a merged artifact (fieldtune export --merge)",
            ) from None
    expected = ref.get("sha256")
    if expected and Path(path).is_dir() and weights_fingerprint(Path(path)) != expected:
        raise UserError(
            f"the base model at {path} is not the one this adapter was trained on (weights sha256 differs)",
            path=model_dir,
            hint=f"install the base model the run used ({name}), or retrain the adapter on this one",
        )
    return path


@contextlib.contextmanager
def quiet_transformers():
    """transformers' warnings off for a block, and the deprecation note peft triggers in it."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            yield
    finally:
        hf_logging.set_verbosity(level)

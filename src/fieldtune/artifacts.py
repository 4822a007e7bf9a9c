"""The saved model: Hugging Face files plus ``fieldtune.json``, written atomically.

A crash or Ctrl-C while saving never leaves half an artifact: everything is written to a
temporary sibling folder that is renamed into place only when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import transformers

from .errors import UserError

META = "fieldtune.json"


@dataclass
class Artifact:
    """A loaded artifact: model, tokenizer and its self-description."""

    path: Path
    model: Any  # None when loaded without weights (an ONNX backend runs the model instead)
    tokenizer: Any
    meta: dict[str, Any]


def save_artifact(model: Any, tokenizer: Any, meta: dict[str, Any], target: Path) -> Path:
    """Write ``target`` (a folder) atomically, replacing an older one only once the new is complete."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
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
        model = auto.from_pretrained(model_dir, local_files_only=True)
        model.eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    return Artifact(model_dir, model, tokenizer, meta)

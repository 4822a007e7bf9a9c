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

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError
from .utils.atomic import staged_dir
from .utils.hashing import files_sha256, json_sha256
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


# licence and notice files a model folder may carry (Gemma's terms and NOTICE line, an Apache NOTICE...);
# an artifact made from it keeps copies, as the terms of such models ask of anyone passing weights on
LICENCE_PATTERNS = ("NOTICE", "NOTICE.*", "LICENSE*", "LICENCE*", "*TERMS*")


def licence_files(folder: str | Path | None) -> list[Path]:
    """The licence / notice files in a local model folder (none for a hub id or a missing folder)."""
    path = Path(folder) if folder else None
    if path is None or not path.is_dir():
        return []
    found = {f for pattern in LICENCE_PATTERNS for f in path.glob(pattern) if f.is_file()}
    return sorted(found)


def save_artifact(
    model: Any, tokenizer: Any, meta: dict[str, Any], target: Path, extra: Any = None, licences_from: Any = None
) -> Path:
    """Write ``target`` (a folder) atomically, replacing an older one only once the new is complete.
    ``extra(folder)``, when given, writes further files of the artifact (e.g. an LLM's in-context examples);
    ``licences_from`` names the folder of the model it was made from, whose licence / notice files
    (:data:`LICENCE_PATTERNS`) are copied into it."""
    target = Path(target)
    with staged_dir(target) as tmp:
        for f in licence_files(licences_from):
            (tmp / f.name).write_bytes(f.read_bytes())
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
    return target


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


def base_model_path(model_dir: Path, meta: dict[str, Any]) -> str:
    """Where the base model an artifact references is now (an adapter's base, or the unchanged model
    of a prompting / zero-shot artifact): the folder recorded at training, else its name resolved
    again (a bundled alias in another environment).

    Args:
        model_dir: The artifact folder (named in errors).
        meta: Its ``fieldtune.json``, whose ``base_model`` is read.

    Returns:
        A local folder or hub id.

    Raises:
        UserError: The base model can't be found, or its weights' sha256 differs from the recorded one.
    """
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


# ---------------------------------------------------------------- checking an artifact, its version


def check_model_dir(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(artifact folder, its fieldtune.json) or a :class:`UserError`: cheap, no weights loaded.

    Checks that the folder is a fieldtune model whose ``fieldtune.json`` reads and names a task
    and labels (whether this fieldtune knows the task is :func:`fieldtune.tasks.artifact_task`'s).
    """
    model_dir = find_model_dir(path)
    try:
        meta = read_meta(model_dir)
    except (OSError, ValueError) as e:
        raise UserError(
            f"cannot read fieldtune.json: {e}",
            path=model_dir,
            hint="re-run `fieldtune train`; the artifact is damaged",
        ) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("labels"), list) or "task" not in meta:
        raise UserError("fieldtune.json has no task/labels", path=model_dir, hint="re-run `fieldtune train`")
    return model_dir, meta


def model_version(meta: dict[str, Any]) -> str:
    """First 12 hex of sha256 over fieldtune.json's ``created`` and ``data`` (the training data's
    fingerprints): the same artifact always gets the same version, a retrained one a new one.
    Artifacts without those fields hash their whole fieldtune.json."""
    if "created" in meta or "data" in meta:
        basis: Any = {"created": meta.get("created"), "data": meta.get("data")}
    else:
        basis = meta
    return json_sha256(basis)[:12]

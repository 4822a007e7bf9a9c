"""Tasks: what a kind of prediction is (encoding, head, decoding, loss, metrics, and what serving,
feedback, drift and retraining need of its outputs and corrections). Each task module registers
its class in :mod:`.registry`; the loop, predictors and server never switch on task names.
"""

from __future__ import annotations

from . import causal_lm, classification, token_classification  # noqa: F401  (imported: they register)
from .base import Task
from .registry import artifact_task, get_task, register, task_names

__all__ = ["Task", "artifact_task", "get_task", "register", "task_names"]

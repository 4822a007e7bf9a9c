"""``fieldtune.json``: what an artifact is and how it was made (the same fields for every recipe)."""

from __future__ import annotations

import platform
from datetime import datetime
from typing import Any

import accelerate
import sklearn
import torch
import transformers

from ..artifacts import base_model_reference
from ..methods import get_method
from ..version import __version__
from .record import RunRecord


def artifact_meta(
    record: RunRecord,
    state: dict[str, Any],
    max_length: int,
    kind: str = "encoder",
    base_fingerprint: bool | None = None,
) -> dict[str, Any]:
    """fieldtune.json of a run's artifact.

    Args:
        state: What the predictor needs beyond weights (a tuned threshold, the prompt, ...).
        kind: How the predictor runs it: ``encoder`` (a model with a task head, full or peft adapter),
            ``llm`` (a causal LM: prompting, classification as generation, instruction tuning) or
            ``embedding`` (sentence embeddings + a linear head: zero-shot and SetFit).
        base_fingerprint: Record the base weights' sha256 (default: when the method saves an adapter),
            for artifacts that store a reference to the base model instead of its weights.
    """
    cfg = record.cfg
    adapter = get_method(cfg.method).adapter
    return {
        "fieldtune_version": __version__,
        "kind": kind,
        "task": cfg.task,
        "labels": record.labels,
        "state": state,
        "max_length": max_length,
        "base_model": base_model_reference(
            cfg.model, with_fingerprint=adapter if base_fingerprint is None else base_fingerprint
        ),
        "method": cfg.method,
        "params": record.params,
        "config": cfg.model_dump(mode="json"),
        "metrics": record.evaluation.as_dict(),
        "data": record.splits.fingerprints,
        "sizes": record.splits.sizes(),
        "notes": record.splits.notes,
        "versions": _versions(adapter),
        # to the microsecond: the registry's model version hashes it with the data, and two runs of the same
        # data within one second (e.g. two seeds of a tiny model) must not get the same version
        "created": datetime.now().astimezone().isoformat(timespec="microseconds"),
    }


def _versions(adapter: bool) -> dict[str, str]:
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "scikit-learn": sklearn.__version__,
    }
    if adapter:
        import peft  # only runs that save a peft adapter need it

        versions["peft"] = peft.__version__
    return versions

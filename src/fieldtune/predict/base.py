"""What every predictor offers (:class:`PredictorProtocol`), the registry of predictors by artifact kind
and task, and :func:`load_predictor`, the one way an artifact folder becomes a predictor.

An artifact's ``fieldtune.json`` says its ``kind`` (``encoder`` when absent, ``llm``, ``embedding``)
and ``task``. A predictor class registers for a kind, optionally narrowed to one task
(:func:`register_predictor`); :func:`load_predictor` picks the (kind, task) entry, else the kind's
entry for any task, and builds it with the class's ``from_model_dir``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from ..artifacts import find_model_dir, read_meta
from ..data.examples import Example
from ..errors import UserError
from ..runs.trust import calibration_scores, trust_scores
from ..tasks.base import Task

CHAT = "chat"  # capability: ``chat(messages, ...)`` and ``stream(messages, ...)`` answer conversations
GENERATE = "generate"  # capability: predictions are generated text (``{"generated_text"}``)
DEFAULT_KIND = "encoder"  # artifacts written before fieldtune.json had a ``kind``


@runtime_checkable
class PredictorProtocol(Protocol):
    """A loaded artifact that predicts on raw text; the CLI, the Python API and the server use only this.

    Attributes:
        task: The :class:`~fieldtune.tasks.base.Task` that shapes inputs, outputs and metrics.
        labels: The label names (empty for generation).
        meta: The artifact's ``fieldtune.json``.
        backend: What computes the outputs: ``torch``, ``torch-bf16``, ``onnx`` or ``onnx-int8``.
        batch_size: Inputs per forward pass (or per generation batch).
        capabilities: Extra abilities beyond ``predict``: :data:`CHAT`, :data:`GENERATE`.
    """

    task: Task
    labels: list[str]
    meta: dict[str, Any]
    backend: str
    batch_size: int
    capabilities: frozenset[str]

    def predict(self, texts: str | list[str], top_k: int | None = None) -> Any:
        """One text -> one output, a list -> a list, in the task's user-facing shape."""

    def predict_examples(self, examples: list[Example]) -> list[Any]:
        """Task-level predictions for already-built examples (what ``task.metrics`` scores)."""

    def evaluate(self, examples: list[Example]) -> dict[str, Any]:
        """Metrics on labelled examples."""


class PredictorFactory(Protocol):
    """What :func:`register_predictor` takes: a class whose ``from_model_dir`` builds a predictor."""

    @classmethod
    def from_model_dir(
        cls, model_dir: Path, meta: dict[str, Any], batch_size: int, backend: str, threads: int | None
    ) -> PredictorProtocol: ...


F = TypeVar("F", bound=type)
_REGISTRY: dict[tuple[str, str | None], type[PredictorFactory]] = {}


def register_predictor(kind: str, task: str | None = None) -> Callable[[F], F]:
    """Class decorator: the predictor of artifacts of ``kind`` (for ``task`` only, or any task when None).

    Args:
        kind: ``fieldtune.json``'s ``kind``.
        task: A task name to narrow the entry to, or None for every task of the kind.

    Returns:
        The decorator, which returns the class unchanged.

    Raises:
        ValueError: (kind, task) is taken already, or the class has no ``from_model_dir``.
    """

    def register(cls: F) -> F:
        if (kind, task) in _REGISTRY:
            taken = _REGISTRY[(kind, task)].__qualname__
            raise ValueError(f"a predictor for kind {kind!r}, task {task!r} is registered already: {taken}")
        if not callable(getattr(cls, "from_model_dir", None)):
            raise ValueError(f"{cls.__qualname__} has no from_model_dir(model_dir, meta, batch_size, backend, threads)")
        _REGISTRY[(kind, task)] = cls
        return cls

    return register


def registered_predictors() -> dict[tuple[str, str | None], type[PredictorFactory]]:
    """A copy of the registry: (kind, task or None) -> predictor class."""
    return dict(_REGISTRY)


def predictor_class(kind: str, task: str | None, model_dir: Path | None = None) -> type[PredictorFactory]:
    """The class registered for (kind, task), else for the kind and any task (``model_dir``: named in errors).

    Raises:
        UserError: Nothing is registered for this kind and task.
    """
    cls = _REGISTRY.get((kind, task)) or _REGISTRY.get((kind, None))
    if cls is None:
        known = sorted({k for k, _ in _REGISTRY})
        what = f"model kind {kind!r}" if kind not in known else f"task {task!r} for model kind {kind!r}"
        raise UserError(
            f"unknown {what} in fieldtune.json",
            path=model_dir,
            hint=f"upgrade fieldtune (this one knows kinds {known})",
        )
    return cls


def load_predictor(
    path: str | Path, batch_size: int = 32, backend: str = "auto", threads: int | None = None
) -> PredictorProtocol:
    """The predictor of a run or model folder, whatever its kind.

    Args:
        path: A run folder or its ``model/`` folder.
        batch_size: Inputs per forward pass.
        backend: ``auto`` or a backend the kind offers (encoders: ``torch``, ``torch-bf16``, ``onnx``,
            ``onnx-fp32``, ``onnx-int8``; causal LMs: ``torch``, and ``torch-bf16`` for classification;
            embedding models: ``torch``).
        threads: ONNX Runtime threads per call (encoders on an ONNX backend; others ignore it).

    Returns:
        A predictor satisfying :class:`PredictorProtocol`.

    Raises:
        UserError: Not a model folder, an unknown kind, or a backend the kind doesn't offer.
    """
    model_dir = find_model_dir(path)
    meta = read_meta(model_dir)
    cls = predictor_class(meta.get("kind", DEFAULT_KIND), meta.get("task"), model_dir)
    return cls.from_model_dir(model_dir, meta, batch_size=batch_size, backend=backend, threads=threads)


def check_backend(backend: str, allowed: tuple[str, ...], message: str, hint: str) -> None:
    """Refuse a backend a predictor kind doesn't offer, before anything loads."""
    if backend not in allowed:
        raise UserError(message, hint=hint)


def predict_texts(predictor: Any, texts: str | list[str], top_k: int | None = None) -> Any:
    """``predict`` of every predictor kind: checks the texts, builds the task's examples, and shapes
    the outputs (with the artifact's abstention and conformal sets, :meth:`Task.trusted_output`);
    ``predictor`` gives ``task``, ``meta`` and ``predict_examples``."""
    single = isinstance(texts, str)
    batch = checked_texts(texts)
    examples = [predictor.task.from_text(t) for t in batch]
    predictions = predictor.predict_examples(examples)
    state = (getattr(predictor, "meta", None) or {}).get("state") or {}  # abstention / conformal settings
    task = predictor.task
    outputs = [
        task.trusted_output(task.to_output(t, ex, p, top_k), p, state, top_k)
        for t, ex, p in zip(batch, examples, predictions)
    ]
    return outputs[0] if single else outputs


def checked_texts(texts: str | list[str]) -> list[str]:
    """``texts`` as a list, every one a non-empty string.

    Raises:
        UserError: An input is empty or not a string (numbered from 1).
    """
    batch = [texts] if isinstance(texts, str) else list(texts)
    for i, text in enumerate(batch):
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"input {i + 1} is empty or not a string", hint="pass non-empty text")
    return batch


def scored(
    task: Any,
    examples: list[Example],
    predictions: list[Any],
    labels: list[str],
    state: dict[str, Any],
    uncalibrated: list[Any] | None = None,
) -> dict[str, Any]:
    """A predictor's ``evaluate``: the task's metrics plus what the training run reported with them —
    ``ece`` / ``ece_uncalibrated`` (``uncalibrated``: the predictions before temperature scaling) and the
    saved abstention / conformal numbers — so a reloaded model scores exactly as its metrics.json says."""
    scores = task.metrics(examples, predictions, labels)
    pairs = task.confidences(examples, predictions)
    raw = task.confidences(examples, uncalibrated) if uncalibrated is not None and pairs else None
    scores.update(calibration_scores(pairs, raw))
    scores.update(trust_scores(task, state, examples, predictions))
    return scores

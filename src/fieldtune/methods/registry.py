"""The method registry: every way a model adapts declares what it supports, in one place.

A method is a :class:`MethodSpec`: the tasks it supports for each model kind and the recipe that runs
each combination, whether it trains weights, whether it saves an adapter (base weights by reference)
that ``fieldtune export --merge`` can fold in, the config section it reads, and — for methods that
change which parameters train — the function that prepares the model. ``check`` asks the registry
whether a (task, method, model kind) cell exists, before any data or weights are read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError

MODEL_KINDS = ("encoder", "causal_lm")
# what to point model: at when a cell needs the other kind of model
MODEL_HINTS = {
    "encoder": "model: minilm (or a local encoder folder / hub id)",
    "causal_lm": "model: smollm2 (or a local causal LM folder / hub id)",
}


@dataclass(frozen=True)
class MethodSpec:
    """One adaptation method.

    Attributes:
        name: The ``method:`` value in run.yaml.
        description: One line for ``--help-config`` and errors.
        recipes: ``{model kind: {task: recipe name}}``: the cells this method supports.
        trains: Whether weights change (False: prompting / embedding zero-shot).
        adapter: Saves a peft adapter; the artifact references the base weights (sha256 checked).
        mergeable: ``fieldtune export --merge`` can fold the adapter into full weights.
        section: The config section with its settings (``peft``, ``prompt``, ``setfit``, ...), if any.
        adapt: ``(model, options) -> module to train`` for methods that choose the trainable parameters.
        hints: Why a cell is refused and what to do instead, keyed ``"kind:task"``, ``kind`` or ``task``
            (the most specific wins); without one the error lists the methods that do support the cell.
        lr: The default peak learning rate per model kind (``train.lr: null``), for methods that train
            with the shared loop: fewer trainable parameters need larger steps.
    """

    name: str
    description: str
    recipes: dict[str, dict[str, str]]
    trains: bool = True
    adapter: bool = False
    mergeable: bool = False
    section: str | None = None
    adapt: Callable[..., Any] | None = None
    hints: dict[str, str] = field(default_factory=dict)
    lr: dict[str, float] = field(default_factory=dict)

    def recipe(self, task: str, kind: str) -> str | None:
        return self.recipes.get(kind, {}).get(task)


_METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add a method; duplicate names are a bug."""
    if spec.name in _METHODS:
        raise ValueError(f"method {spec.name!r} is already registered")
    unknown = set(spec.recipes) - set(MODEL_KINDS)
    if unknown:
        raise ValueError(f"method {spec.name!r}: unknown model kinds {sorted(unknown)}")
    _METHODS[spec.name] = spec
    return spec


def get_method(name: str) -> MethodSpec:
    """The spec of ``name``.

    Raises:
        UserError: No such method.
    """
    try:
        return _METHODS[name]
    except KeyError:
        raise UserError(f"unknown method {name!r}", hint=f"use one of {', '.join(method_names())}") from None


def method_names() -> list[str]:
    return list(_METHODS)


def methods_for(task: str, kind: str) -> list[str]:
    """The methods that support ``task`` with a ``kind`` model."""
    return [name for name, spec in _METHODS.items() if spec.recipe(task, kind)]


def check(task: str, method: str, kind: str, model: str) -> str:
    """The recipe for this cell of the task x method x model-kind grid.

    Raises:
        UserError: The combination isn't supported; the hint says what is.
    """
    spec = get_method(method)
    recipe = spec.recipe(task, kind)
    if recipe is not None:
        return recipe
    model_words = {"encoder": "an encoder", "causal_lm": "a decoder (causal LM)"}
    other = next((k for k in MODEL_KINDS if spec.recipe(task, k)), None)
    if other:
        why = f"method {method} with task {task} needs {model_words[other]}, and {model!r} is {model_words[kind]}"
    else:
        why = f"method {method} does not support task {task}"
    specific = spec.hints.get(f"{kind}:{task}") or spec.hints.get(kind) or spec.hints.get(task)
    elsewhere = f"; method {method} needs {MODEL_HINTS[other]}" if other and methods_for(task, kind) else ""
    raise UserError(why, hint=specific or _alternatives(task, kind) + elsewhere)


def _alternatives(task: str, kind: str) -> str:
    """What does work: other methods with this model, else a model of the kind the task needs."""
    here = methods_for(task, kind)
    if here:
        return f"with this model, task {task} supports method: {', '.join(here)}"
    kinds = [k for k in MODEL_KINDS if methods_for(task, k)]
    if kinds:
        return f"task {task} needs {MODEL_HINTS[kinds[0]]}, with method: {', '.join(methods_for(task, kinds[0]))}"
    return f"no registered method supports task {task}"


def describe_methods() -> list[tuple[str, str, str]]:
    """(method, what it supports, description) for every registered method, for ``--help-config``."""
    rows = []
    for spec in _METHODS.values():
        cells = "; ".join(f"{kind}: {', '.join(tasks)}" for kind, tasks in spec.recipes.items())
        traits = ", ".join(
            t
            for t, on in (("no training", not spec.trains), ("adapter", spec.adapter), ("mergeable", spec.mergeable))
            if on
        )
        settings = f"; settings: {spec.section}" if spec.section else ""
        lrs = ", ".join(f"{kind} {lr:g}" for kind, lr in spec.lr.items())
        lr = f"; default lr: {lrs}" if lrs else ""
        rows.append((spec.name, cells, f"{spec.description}{' (' + traits + ')' if traits else ''}{settings}{lr}"))
    return rows

"""Recipes register here by name; the method registry says which recipe runs each
(task, method, model kind) cell."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..config import RunConfig
from ..runs import RunResult

Run = Callable[..., RunResult]  # (cfg, resume=False, progress=True) -> RunResult


@dataclass(frozen=True)
class Recipe:
    """One way of adapting a model, end to end.

    Attributes:
        name: The name methods refer to in their ``recipes`` table.
        run: Reads the data, adapts, evaluates and writes the run folder.
        validate: Checks the config further (no data read, no weights loaded); raises UserError.
        calibrates: Honours ``abstain:`` (a threshold and conformal sets fitted on dev, saved).
    """

    name: str
    run: Run
    validate: Callable[[RunConfig], None] | None = None
    calibrates: bool = False  # fits abstention thresholds / conformal sets (config section ``abstain``)


_RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    """Add a recipe; duplicate names are a bug."""
    if recipe.name in _RECIPES:
        raise ValueError(f"recipe {recipe.name!r} is already registered")
    _RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str) -> Recipe:
    return _RECIPES[name]


def recipe_names() -> list[str]:
    return sorted(_RECIPES)

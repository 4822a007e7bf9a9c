"""``fieldtune.train(config)``: validate -> pick the recipe -> run -> write.

A recipe is one way of adapting a model (encoder fine-tuning, LLM label scoring / prompting, LLM as a
generator, instruction tuning, NER by prompting, embedding zero-shot / SetFit). Methods say which
recipe runs each (task, model kind) they support (:mod:`fieldtune.methods`); recipes wire the shared
components (training setup, loop, ``evaluate_splits``, the run folder) and depend only downward.

Everything the user gave is checked (config, method x task x model kind, data, model) before the
output folder is created, so a bad input never leaves a partial run behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import RunConfig, load_config
from ..errors import UserError
from ..methods import check
from ..runs import RunResult
from ..utils.hf import offline_env
from ..zoo import model_kind, resolve
from . import embedding, encoder, instruct, llm_classify, llm_ner  # noqa: F401  (register the recipes)
from .registry import Recipe, get_recipe, recipe_names, register_recipe


def plan(cfg: RunConfig) -> Recipe:
    """The recipe for this config, after every check that needs no data and no weights.

    Raises:
        UserError: An unsupported task x method x model-kind combination, or a setting the recipe refuses.
    """
    kind = model_kind(resolve(cfg.model))
    recipe = get_recipe(check(cfg.task, cfg.method, kind, cfg.model))
    if recipe.validate is not None:
        recipe.validate(cfg)
    if cfg.crf and recipe.name != "encoder":
        raise UserError(
            f"crf: method {cfg.method!r} on a {kind.replace('_', ' ')} model has no tag logits to put a CRF on",
            hint="use an encoder (minilm, multilingual, ...) with a fine-tuning method (full, freeze, head, lora, "
            "...), or remove crf",
        )
    if cfg.abstain.enabled and not recipe.calibrates:
        raise UserError(
            f"abstain: method {cfg.method!r} does not fit abstention thresholds or conformal sets",
            hint="use a fine-tuning method of an encoder (full, freeze, head, lora, ...), or remove abstain:",
        )
    return recipe


def train(
    config: str | Path | dict[str, Any] | RunConfig,
    overrides: list[str] = (),
    *,
    resume: bool = False,
    progress: bool = True,
) -> RunResult:
    """Adapt, evaluate and save.

    Args:
        config: A run.yaml path, a dict or a :class:`RunConfig`.
        overrides: Dotted ``key=value`` strings (``train.epochs=3``).
        resume: Continue from the run folder's last checkpoint.
        progress: Progress bars (plain lines when output is not a terminal).

    Returns:
        The run folder, the model folder and the metrics (metrics.json).
    """
    offline_env()
    cfg = load_config(config, list(overrides))
    return plan(cfg).run(cfg, resume=resume, progress=progress)


__all__ = ["Recipe", "RunResult", "get_recipe", "plan", "recipe_names", "register_recipe", "train"]

"""Recipe ``instruct``: instruction tuning of a decoder on conversations (task causal_lm).

Training minimises the cross-entropy of the assistant's answer tokens only (features from
``encode_turn``); model selection uses dev perplexity over those tokens (lower is better), or a
generation metric when ``train.metric`` asks. The final evaluation also generates greedily and scores
the answers by exact match and ROUGE-L. Method zero_shot trains nothing: the base model is evaluated
and the artifact holds no weights (a reference to the base model, sha256 checked).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ..artifacts import is_peft_model, save_artifact
from ..config import RunConfig
from ..errors import UserError
from ..llm.generation import answer_perplexity, generate, generate_answers
from ..methods import apply_method, count_parameters, get_method
from ..models.causal_lm import CausalLM, load_causal_lm
from ..runs import RunRecord, RunResult, TrainStats, artifact_meta, evaluate_splits, start_output, write_run
from ..tasks import get_task
from ..tasks.causal_lm import generation_metrics
from ..training import setup
from .common import fit, read_data
from .registry import Recipe, register_recipe

GENERATION_METRICS = ("rouge_l", "exact_match")
SELECTION_METRICS = ("perplexity", "loss", *GENERATION_METRICS)
PERPLEXITY_BATCH = 8  # conversations per forward when scoring answers: long rows, CPU memory


def validate(cfg: RunConfig) -> None:
    if cfg.selection_metric() not in SELECTION_METRICS:
        raise UserError(
            f"train.metric {cfg.selection_metric()!r} is not a causal_lm metric",
            hint=f"use one of {', '.join(SELECTION_METRICS)} (perplexity: the default, no generation needed)",
        )


def run(cfg: RunConfig, resume: bool = False, progress: bool = True) -> RunResult:
    """Instruction-tune ``cfg.model`` (or, zero_shot, just evaluate it) and write the run folder."""
    started = time.perf_counter()
    task, splits, _ = read_data(cfg)
    accelerator = setup.prepare(cfg)
    lm = load_causal_lm(cfg.model, attention=setup.attention(cfg))
    tokenizer, pad_id = lm.tokenizer, lm.tokenizer.pad_token_id
    max_length = min(cfg.train.max_length or 1024, getattr(lm.model.config, "max_position_embeddings", 2048))
    encoded = {name: task.encode(ex, tokenizer, {}, max_length) for name, ex in splits.named()}
    trains = get_method(cfg.method).trains
    if trains:
        model, stats, history = _train(cfg, lm, encoded, accelerator, resume, progress)
    else:
        start_output(cfg)
        model, history = lm.model, []
        stats = TrainStats(total_params=count_parameters(model)["total"], attention=setup.attention(cfg))
    model.eval()
    batch = min(cfg.train.eval_batch_size, PERPLEXITY_BATCH)

    def answers(_: str, examples: list[Any]) -> list[str]:
        return generate_answers(model, tokenizer, [ex.chat for ex in examples], cfg.prompt.max_new_tokens)

    def perplexity(split: str, *_: Any) -> dict[str, float]:
        return answer_perplexity(model, encoded[split], batch, pad_id)

    evaluation = evaluate_splits(answers, task, splits, [], extra=perplexity)
    record = RunRecord(cfg, splits, [], evaluation, stats, history, started)
    state = {"max_new_tokens": cfg.prompt.max_new_tokens}
    meta = artifact_meta(record, state, max_length, kind="llm", base_fingerprint=not trains or is_peft_model(model))
    weights = model if trains else None
    return write_run(
        record, task, lambda target: save_artifact(weights, tokenizer, meta, target, licences_from=lm.path)
    )


def _train(cfg: RunConfig, lm: CausalLM, encoded: dict[str, list], accelerator: Any, resume: bool, progress: bool):
    """The shared loop over the answer-token loss, selecting on dev perplexity (or a generation metric)."""
    model, params = apply_method(lm.model, cfg.method, cfg.freeze_layers, cfg.peft)
    if accelerator.is_main_process:
        start_output(cfg, resume)
    tokenizer, pad_id, metric = lm.tokenizer, lm.tokenizer.pad_token_id, cfg.selection_metric()

    def dev_metrics(m: torch.nn.Module) -> dict[str, Any]:
        scores = answer_perplexity(m, encoded["dev"], min(cfg.train.eval_batch_size, PERPLEXITY_BATCH), pad_id)
        if metric in GENERATION_METRICS:
            scores.update(_generation_scores(cfg, m, tokenizer, encoded["dev"]))
        return scores

    answer_loss = get_task("causal_lm").loss
    train = encoded["train"]
    model, state, budget = fit(
        cfg,
        model,
        train,
        dev_metrics,
        accelerator,
        pad_id,
        loss=answer_loss,
        kind="causal_lm",
        resume=resume,
        progress=progress,
    )
    return model, TrainStats.from_loop(cfg, state, accelerator, params, budget), state.history


def _generation_scores(cfg: RunConfig, model: Any, tokenizer: Any, features: list[dict]) -> dict[str, Any]:
    """Greedy answers to the dev prompts (the features' prompt part), scored against their answers."""
    prompts = [f["input_ids"][: f["prompt_len"]] for f in features]
    refs = [tokenizer.decode(f["input_ids"][f["prompt_len"] :], skip_special_tokens=True).strip() for f in features]
    outs = generate(model, tokenizer, prompts, cfg.prompt.max_new_tokens)
    return generation_metrics(refs, [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids, _ in outs])


register_recipe(Recipe("instruct", run, validate))

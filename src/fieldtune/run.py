"""``fieldtune.train(config)``: the whole path from data files to an evaluated, saved model.

Everything the user gave is validated (config, data, model) before the output folder is
created, so a bad input never leaves a partial run behind.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import set_seed

from . import __version__
from .artifacts import base_model_reference, save_artifact
from .config import FEW_SHOT_METHODS, PROMPT_METHODS, RunConfig, load_config
from .data.prepare import Splits, prepare_splits
from .errors import UserError
from .evaluation.plots import learning_curve_png
from .evaluation.report import render_report
from .inference import forward_logits
from .methods import apply_method, is_peft_method
from .tasks import Task, get_task
from .training.loop import Loop
from .zoo import model_kind, offline_env, resolve


@dataclass
class RunResult:
    """What ``train`` returns: where things are and the numbers."""

    output_dir: Path
    model_dir: Path
    metrics: dict[str, Any]


def train(config: Any, overrides: list[str] = (), *, resume: bool = False, progress: bool = True) -> RunResult:
    """Fine-tune, evaluate and save. ``config``: a run.yaml path, a dict or a :class:`RunConfig`."""
    started = time.perf_counter()
    offline_env()
    cfg = load_config(config, list(overrides))
    kind = model_kind(resolve(cfg.model))
    if kind == "causal_lm" or cfg.task == "causal_lm" or cfg.method in PROMPT_METHODS + FEW_SHOT_METHODS:
        return _adaptation_runner(cfg, kind)(cfg, resume=resume, progress=progress)
    task = get_task(cfg.task)
    splits = prepare_splits(cfg)
    labels = task.label_list(splits.train)
    accelerator = _accelerator(cfg)
    _set_threads(cfg)
    set_seed(cfg.train.seed)
    model, tokenizer, max_length = load_model(cfg, task, labels)
    model, params = apply_method(model, cfg.method, cfg.freeze_layers, cfg.peft)  # peft: wrapped
    label2id = {label: i for i, label in enumerate(labels)}
    encoded = {
        name: task.encode(ex, tokenizer, label2id, max_length)
        for name, ex in (("train", splits.train), ("dev", splits.dev), ("test", splits.test))
        if ex
    }
    out = cfg.output
    if accelerator.is_main_process:
        start_output(cfg)
    pad_id, id2label = tokenizer.pad_token_id, dict(enumerate(labels))

    def dev_metrics(m: torch.nn.Module) -> dict[str, Any]:
        logits = forward_logits(m, encoded["dev"], cfg.train.eval_batch_size, pad_id)
        return task.metrics(splits.dev, task.decode(splits.dev, encoded["dev"], logits, id2label, {}), labels)

    loop = Loop(
        model,
        encoded["train"],
        dev_metrics,
        cfg.train,
        cfg.selection_metric(),
        accelerator,
        pad_id,
        ckpt_dir=out / "checkpoints",
        on_eval=lambda r: _append_log(out / "log.jsonl", r),
        progress=progress,
    )
    state = loop.run(resume=resume)
    # without accelerate's autocast wrapper: the final metrics are then those of the saved artifact, which
    # loads and predicts in fp32 (bf16 autocast, where on, was for training and model selection)
    model = accelerator.unwrap_model(loop.model, keep_fp32_wrapper=False)
    train_stats = _train_stats(cfg, state, accelerator, params, started)
    result = _finish(
        cfg,
        task,
        splits,
        labels,
        model,
        tokenizer,
        max_length,
        encoded,
        params,
        state.history,
        train_stats,
        accelerator,
    )
    accelerator.wait_for_everyone()
    return result


def _adaptation_runner(cfg: RunConfig, kind: str):
    """The runner for what isn't gradient fine-tuning of an encoder with a head: a decoder LLM
    (prompting, classification as generation, instruction tuning) or few-shot / zero-shot with an
    encoder's sentence embeddings. Each checks what it supports and ends in :func:`write_run`."""
    if kind == "causal_lm":
        from .llm.run import train_llm

        return train_llm
    if cfg.task == "causal_lm":
        raise UserError(
            f"task causal_lm needs a decoder (causal LM), and {cfg.model!r} is an encoder",
            hint="use model: smollm2, or a local causal LM folder / hub id",
        )
    if cfg.method == "in_context":
        raise UserError(
            f"method in_context prompts a causal LM with examples, and {cfg.model!r} is an encoder",
            hint="use model: smollm2, or method: setfit for few-shot learning with an encoder",
        )
    from .fewshot.run import train_fewshot

    return train_fewshot


def _train_stats(
    cfg: RunConfig, state: Any, accelerator: Accelerator, params: dict[str, int], started: float
) -> dict[str, Any]:
    """Timing, throughput (real tokens summed over processes) and settings for metrics.json."""
    tokens = accelerator.reduce(torch.tensor([state.real_tokens, state.padded_tokens]), reduction="sum").tolist()
    return {
        "wall_s": round(time.perf_counter() - started, 2),
        "train_s": round(state.seconds, 2),
        "step_s": round(state.step_seconds, 2),
        "time_to_best_s": round(state.best_seconds, 2),
        "best_epoch": state.best_epoch,
        "best_step": state.best_step,
        "steps": state.step,
        "stopped_early": state.stopped_early,
        "train_tokens": tokens[0],
        "padded_tokens": tokens[1],
        "tokens_per_s": round(tokens[0] / max(state.step_seconds, 1e-9), 1),
        "processes": accelerator.num_processes,
        "precision": "bf16" if use_bf16(cfg) else "fp32",
        "attention": _attention(cfg),
        "trainable_params": params["trainable"],
        "total_params": params["total"],
    }


def _accelerator(cfg: RunConfig) -> Accelerator:
    """A fresh Accelerator per run. accelerate keeps precision and accumulation in a process-wide
    singleton; resetting it (but not the process group) lets one process run several trainings
    with different settings, e.g. a notebook or the test suite."""
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    return Accelerator(
        mixed_precision="bf16" if use_bf16(cfg) else "no",
        cpu=not _has_device(),
        gradient_accumulation_steps=cfg.train.grad_accum,
    )


def _has_device() -> bool:
    """Any accelerator? Without one, accelerate must be told cpu=True, or a multi-process launch
    (torchrun / `accelerate launch --multi_gpu`) silently trains N unsynchronised copies."""
    xpu = getattr(torch, "xpu", None)
    return torch.cuda.is_available() or torch.backends.mps.is_available() or bool(xpu and xpu.is_available())


def use_bf16(cfg: RunConfig) -> bool:
    """bf16 autocast when asked, or on 'auto' where the hardware has native bf16 matmul."""
    if cfg.train.precision != "auto":
        return cfg.train.precision == "bf16"
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags


def load_model(cfg: RunConfig, task: Task, labels: list[str]):
    """Tokenizer + pretrained encoder with a fresh head for ``labels``."""
    path = resolve(cfg.model)
    overrides = {"attention_probs_dropout_prob": cfg.train.attention_dropout}
    if cfg.train.dropout is not None:
        overrides.update(hidden_dropout_prob=cfg.train.dropout, dropout=cfg.train.dropout)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        config = transformers.AutoConfig.from_pretrained(path)
        for key, value in overrides.items():
            if hasattr(config, key):
                setattr(config, key, value)
        config.update(
            {
                "num_labels": len(labels),
                "id2label": dict(enumerate(labels)),
                "label2id": {label: i for i, label in enumerate(labels)},
                **task.model_kwargs(labels),
            }
        )
        model = getattr(transformers, task.auto_model).from_pretrained(
            path, config=config, attn_implementation=_attention(cfg)
        )
    except (OSError, ValueError) as err:
        raise UserError(
            f"could not load model {cfg.model!r}: {str(err).splitlines()[0]}",
            hint="use a bundled alias (`fieldtune models`), a local folder, or set HF_HUB_OFFLINE=0 to "
            "download a hub id",
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(
            f"model {cfg.model!r} has no fast tokenizer", hint="fieldtune needs word alignment from a fast tokenizer"
        )
    limit = getattr(config, "max_position_embeddings", 512)
    max_length = min(cfg.train.max_length or limit, limit, tokenizer.model_max_length)
    return model, tokenizer, max_length


def _attention(cfg: RunConfig) -> str:
    if cfg.train.attention != "auto":
        return cfg.train.attention
    return "sdpa" if torch.cuda.is_available() else "eager"


def _finish(
    cfg, task, splits: Splits, labels, model, tokenizer, max_length, encoded, params, history, train_stats, accelerator
) -> RunResult:
    """Final dev/test evaluation with the best weights, then the artifact, metrics, report, plots."""
    id2label = dict(enumerate(labels))
    model.eval()
    dev_logits = forward_logits(model, encoded["dev"], cfg.train.eval_batch_size, tokenizer.pad_token_id)
    state = task.tune(splits.dev, encoded["dev"], dev_logits, labels)
    metrics: dict[str, Any] = {
        "dev": task.metrics(splits.dev, task.decode(splits.dev, encoded["dev"], dev_logits, id2label, state), labels)
    }
    scored, test_preds = splits.dev, None
    if splits.test:
        t0 = time.perf_counter()
        logits = forward_logits(model, encoded["test"], cfg.train.eval_batch_size, tokenizer.pad_token_id)
        test_preds = task.decode(splits.test, encoded["test"], logits, id2label, state)
        # inference cost for `fieldtune compare`: batched, tokenised beforehand
        train_stats["ms_per_example"] = round(1000 * (time.perf_counter() - t0) / len(splits.test), 3)
        metrics["test"] = task.metrics(splits.test, test_preds, labels)
        scored = splits.test
    metrics["baseline"] = {"split": "test" if splits.test else "dev", **task.baseline(splits.train, scored, labels)}
    metrics["train"] = train_stats
    if not accelerator.is_main_process:
        return RunResult(cfg.output, cfg.output / "model", metrics)
    meta = run_meta(cfg, labels, state, max_length, metrics, params, splits)
    save = lambda target: save_artifact(model, tokenizer, meta, target)  # noqa: E731
    return write_run(cfg, task, splits, labels, metrics, test_preds, history, params, meta, save)


def write_run(
    cfg: RunConfig,
    task: Task,
    splits: Splits,
    labels: list[str],
    metrics: dict[str, Any],
    test_preds: list[Any] | None,
    history: list[dict[str, Any]],
    params: dict[str, int],
    meta: dict[str, Any],
    save: Any,
) -> RunResult:
    """The run folder's files, shared by every way of adapting a model: the artifact (``save(target)``
    writes it atomically, see :func:`save_artifact`), metrics.json, report.md and the plots.

    Args:
        metrics: ``dev``, ``test`` (when there is a test set), ``baseline`` and ``train`` sections.
        test_preds: The task's predictions on the test set, for its plots (None: no test set).
        history: The loop's eval records, for the learning curve ([] when nothing trained).
        meta: fieldtune.json, from :func:`run_meta` plus what the kind of artifact adds.
    """
    out = cfg.output
    out.mkdir(parents=True, exist_ok=True)
    plots = [learning_curve_png(history, cfg.selection_metric(), out / "learning_curve.png")] if history else []
    if test_preds is not None:
        plots += task.plots(splits.test, test_preds, labels, out)
    save(out / "model")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    summary = {
        "config": cfg.model_dump(mode="json"),
        "metrics": metrics,
        "sizes": splits.sizes(),
        "labels": labels,
        "params": params,
        "metric": cfg.selection_metric(),
        "notes": splits.notes,
        "plots": plots,
    }
    (out / "report.md").write_text(render_report(summary), encoding="utf-8")
    return RunResult(out, out / "model", metrics)


def run_meta(
    cfg: RunConfig,
    labels: list[str],
    state: dict[str, Any],
    max_length: int,
    metrics: dict[str, Any],
    params: dict[str, int],
    splits: Splits,
    kind: str = "encoder",
    base_fingerprint: bool | None = None,
) -> dict[str, Any]:
    """fieldtune.json: what the artifact is and how it was made.

    Args:
        kind: How the Predictor runs it: ``encoder`` (a model with a task head, full or peft adapter),
            ``llm`` (a causal LM: prompting, classification as generation, instruction tuning) or
            ``embedding`` (sentence embeddings + a linear head: zero-shot and SetFit).
        base_fingerprint: Record the base weights' sha256 (default: for peft methods), for artifacts
            that store a reference to the base model instead of its weights.
    """
    import accelerate
    import seqeval  # noqa: F401
    import sklearn

    return {
        "fieldtune_version": __version__,
        "kind": kind,
        "task": cfg.task,
        "labels": labels,
        "state": state,
        "max_length": max_length,
        "base_model": base_model_reference(
            cfg.model, with_fingerprint=is_peft_method(cfg.method) if base_fingerprint is None else base_fingerprint
        ),
        "method": cfg.method,
        "params": params,
        "config": cfg.model_dump(mode="json"),
        "metrics": {k: metrics[k] for k in ("dev", "test", "baseline") if k in metrics},
        "data": splits.fingerprints,
        "sizes": splits.sizes(),
        "notes": splits.notes,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "accelerate": accelerate.__version__,
            "scikit-learn": sklearn.__version__,
            **({"peft": _peft_version()} if is_peft_method(cfg.method) else {}),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _peft_version() -> str:
    import peft

    return peft.__version__


def start_output(cfg: RunConfig) -> None:
    """Create the run folder only now that every input has been checked."""
    cfg.output.mkdir(parents=True, exist_ok=True)
    (cfg.output / "run.yaml").write_text(_yaml(cfg), encoding="utf-8")
    (cfg.output / "log.jsonl").unlink(missing_ok=True)  # a resumed loop re-logs its checkpoint's history


def _append_log(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _set_threads(cfg: RunConfig) -> None:
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("WORLD_SIZE", "1"))))


def _yaml(cfg: RunConfig) -> str:
    import yaml

    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)

"""Recipe ``encoder``: fine-tune a pretrained encoder with a task head (classification, multi-label,
NER) by any weight method (full, freeze, head, or a peft adapter)."""

from __future__ import annotations

import time
from typing import Any

import torch

from ..artifacts import save_artifact
from ..config import RunConfig
from ..evaluation.calibration import uncalibrated_state
from ..inference import forward_logits
from ..methods import apply_method, count_parameters, head_modules
from ..models.encoder import load_encoder
from ..runs import RunRecord, RunResult, TrainStats, artifact_meta, evaluate_splits, start_output, write_run
from ..runs.trust import fit_trust
from ..tasks.crf import attach_crf, crf_loss, crf_scores, detach_crf
from ..training import setup
from .common import fit, read_data
from .registry import Recipe, register_recipe


def run(cfg: RunConfig, resume: bool = False, progress: bool = True) -> RunResult:
    """Fine-tune, evaluate with the best weights, and write the run folder."""
    started = time.perf_counter()
    task, splits, labels = read_data(cfg)
    accelerator = setup.prepare(cfg)
    enc = load_encoder(cfg, task.auto_model, labels, task.model_kwargs(labels), setup.attention(cfg))
    start_head(enc.model, task.head_bias(splits.train, labels))  # before peft copies the head
    model, params = apply_method(enc.model, cfg.method, cfg.freeze_layers, cfg.peft)  # peft: wrapped
    crf = attach_crf(model, len(labels)) if cfg.crf else None  # after the method: it trains under every one
    if crf is not None:
        params = count_parameters(model)
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"packing": False})})  # whole rows
    trained_state = (lambda: {"crf": crf_scores(crf)}) if crf is not None else dict
    label2id = {label: i for i, label in enumerate(labels)}
    id2label = dict(enumerate(labels))
    encoded = {name: task.encode(ex, enc.tokenizer, label2id, enc.max_length) for name, ex in splits.named()}
    if accelerator.is_main_process:
        start_output(cfg, resume)
    pad_id = enc.tokenizer.pad_token_id

    def logits(m: torch.nn.Module, features: list[dict[str, Any]]) -> list[Any]:
        return forward_logits(m, features, cfg.train.eval_batch_size, pad_id)

    def dev_metrics(m: torch.nn.Module) -> dict[str, Any]:
        decoded = task.decode(splits.dev, encoded["dev"], logits(m, encoded["dev"]), id2label, trained_state())
        return task.metrics(splits.dev, decoded, labels)

    model, state, budget = fit(
        cfg,
        model,
        encoded["train"],
        dev_metrics,
        accelerator,
        pad_id,
        loss=task.loss if crf is None else crf_loss(crf),
        kind="encoder",
        n_labels=len(labels),
        head_lr=task.new_head_lr,
        many_class_lr=task.many_class_lr,
        resume=resume,
        progress=progress,
    )
    model.eval()
    dev_logits = logits(model, encoded["dev"])
    tuned = trained_state()  # a CRF's scores
    tuned.update(task.tune(splits.dev, encoded["dev"], dev_logits, labels, tuned))  # a temperature, a threshold
    detach_crf(model)  # the weights are saved without it: its scores are in the state
    calibrated = task.decode(splits.dev, encoded["dev"], dev_logits, id2label, tuned)
    tuned.update(fit_trust(cfg.abstain, task, splits.dev, calibrated))  # abstention, conformal q̂
    seen: dict[str, list[Any]] = {}  # each split's logits, as predict computed them

    def predict(split: str, examples: list[Any]) -> list[Any]:
        # the splits are tokenised already; the timed split (test, else dev) is a batched forward + decode,
        # as ms_per_example has always measured it, so dev's logits from tune are reused only when untimed
        reuse = split == "dev" and splits.test
        scores = seen[split] = dev_logits if reuse else logits(model, encoded[split])
        return task.decode(examples, encoded[split], scores, id2label, tuned)

    def uncalibrated(split: str, examples: list[Any]) -> list[Any]:  # the same logits, no temperature: ECE before
        raw = uncalibrated_state(tuned)
        return task.decode(examples, encoded[split], seen[split], id2label, raw)

    evaluation = evaluate_splits(predict, task, splits, labels, uncalibrated=uncalibrated, state=tuned)
    stats = TrainStats.from_loop(cfg, state, accelerator, params, budget)
    record = RunRecord(cfg, splits, labels, evaluation, stats, state.history, started)
    if accelerator.is_main_process:  # one process writes the run folder; the others wait for it
        meta = artifact_meta(record, tuned, enc.max_length)
        result = write_run(record, task, lambda target: save_artifact(model, enc.tokenizer, meta, target))
    else:
        result = RunResult(cfg.output, cfg.output / "model", record.metrics())
    accelerator.wait_for_everyone()
    return result


def start_head(model: torch.nn.Module, bias: Any) -> None:
    """Set the bias of the head's output layer (the last linear layer of the task head) to ``bias``."""
    if bias is None:
        return
    layers = [
        m for name in head_modules(model) for m in getattr(model, name).modules() if isinstance(m, torch.nn.Linear)
    ]
    if layers and layers[-1].bias is not None and layers[-1].out_features == len(bias):
        with torch.no_grad():
            layers[-1].bias.copy_(torch.as_tensor(bias, dtype=layers[-1].bias.dtype))


register_recipe(Recipe("encoder", run, calibrates=True))

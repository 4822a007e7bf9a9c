"""The training loop on ``accelerate``: one process on a laptop CPU, DDP under ``accelerate launch``.

Runs the :class:`~fieldtune.training.budget.Budget` it is given: evaluates on dev each epoch (or every N
steps), keeps the best weights, stops after ``patience`` evaluations without improvement (not before the
budget's ``min_steps``), at the budget's last step or its wall-time cap, restores the best weights, and
writes a resumable checkpoint at each evaluation so ``--resume`` continues a killed run exactly where its
last checkpoint was.
"""

from __future__ import annotations

import inspect
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from ..config import TrainConfig
from ..errors import UserError
from ..tasks.losses import IGNORE
from ..utils.atomic import replace_dir
from ..utils.progress import log_line, progress_bar
from .batching import LengthGroupedBatches, can_pack, collate, collate_packed
from .budget import CONVERGED_GAIN, Budget
from .optim import build_optimizer, build_scheduler
from .sparse_rows import clip_grad_norm, sparse_embedding

LOWER_IS_BETTER = frozenset({"loss", "perplexity"})  # selection metrics where smaller wins


@dataclass
class LoopState:
    """Everything a resumed run needs besides weights, optimizer and RNG (saved by accelerate)."""

    epoch: int = 0  # current epoch (0-based)
    batch: int = 0  # batches of the current epoch already consumed
    step: int = 0  # optimizer steps taken
    best: float | None = None  # best dev metric so far
    best_step: int = 0
    best_epoch: float = 0.0  # epochs completed when the best model was seen
    best_seconds: float = 0.0  # seconds into training when the best model was seen
    bad_evals: int = 0  # evaluations since the last improvement
    plan_gain: float | None = None  # the plan's last evaluation's relative gain over the best before it
    real_tokens: int = 0  # non-padding word-pieces trained on (this process)
    padded_tokens: int = 0  # word-pieces including padding
    seconds: float = 0.0  # seconds so far (steps, evaluations, checkpoints), across resumes
    step_seconds: float = 0.0  # seconds spent in training steps only: the throughput denominator
    stopped_early: bool = False
    stop_reason: str = ""  # "early stopping", "time limit", or "" (the budget's last step)
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Loop:
    """Wires model, data, optimizer and checkpoints; :meth:`run` trains and returns the state."""

    model: torch.nn.Module
    features: list[dict[str, Any]]
    evaluate: Callable[[torch.nn.Module], dict[str, Any]]  # unwrapped model -> dev metrics
    cfg: TrainConfig
    metric: str
    accelerator: Accelerator
    pad_id: int
    ckpt_dir: Path | None = None
    on_eval: Callable[[dict[str, Any]], None] = lambda record: None
    progress: bool = True
    # (logits, labels, labelled targets in an average training batch) -> the batch's loss: the task's
    # Task.loss (an LLM trained on answer tokens: the causal_lm task's, whatever task it serves)
    loss: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor] = field(kw_only=True)
    budget: Budget = field(kw_only=True)  # lr, batch size, epochs, steps, evaluations, time cap
    # a causal LM: compute logits only where some row of the batch has a target (``logits_to_keep``). A
    # 262k-token vocabulary (gemma3) over every position of 8 reviews was 24 GB: killed for memory
    answer_logits_only: bool = field(default=False, kw_only=True)

    def run(self, resume: bool = False) -> LoopState:
        acc, cfg, budget = self.accelerator, self.cfg, self.budget
        self.packed = cfg.packing and can_pack(self.model, self.features)
        self.sampler = LengthGroupedBatches(
            [len(f["input_ids"]) for f in self.features],
            budget.batch_size,
            group=cfg.group_by_length and not self.packed,
            seed=cfg.seed,
        )
        collate_fn = partial(collate_packed if self.packed else collate, pad_id=self.pad_id)
        loader = DataLoader(self.features, batch_sampler=self.sampler, collate_fn=collate_fn)
        self.sparse = None
        if cfg.sparse_embeddings and cfg.optimizer == "adamw":
            self.sparse = sparse_embedding(self.model, acc.num_processes)
        # prompt learning prepends virtual tokens, which would shift the kept positions
        config = getattr(self.model, "active_peft_config", None)
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        self.keep_answers = (
            self.answer_logits_only
            and not getattr(config, "is_prompt_learning", False)
            and "logits_to_keep" in inspect.signature(base.forward).parameters
        )
        optimizer = build_optimizer(self.model, cfg, budget.lr, budget.head_lr)
        scheduler = build_scheduler(optimizer, cfg, budget.total_steps, budget.plan_steps)  # single-process steps
        self.model, self.optimizer, self.loader, self.scheduler = acc.prepare(self.model, optimizer, loader, scheduler)
        self.state, self.best_weights = LoopState(), None
        if resume:
            self._restore()
        try:
            self._train()
        finally:
            if self.sparse is not None:
                self.sparse.sparse = False  # the trained model is an ordinary one
        if self.best_weights is not None:
            acc.unwrap_model(self.model).load_state_dict(self.best_weights)
        return self.state

    def _train(self) -> None:
        state, budget, acc = self.state, self.budget, self.accelerator
        self.model.train()
        self._loss_sum, self._loss_n, started = 0.0, 0, time.perf_counter() - state.seconds
        self._clock = lambda: time.perf_counter() - started
        every = budget.eval_every
        while state.epoch < budget.epochs and not self._done():
            self.sampler.use_epoch(state.epoch)
            batches = acc.skip_first_batches(self.loader, state.batch) if state.batch else self.loader
            bar = progress_bar(
                batches,
                desc=f"epoch {state.epoch + 1}/{budget.epochs}",
                initial=state.batch,
                total=len(self.loader),
                disable=not (self.progress and acc.is_main_process),
                leave=False,
            )
            for batch in bar:
                tick = time.perf_counter()
                self._step(batch)
                state.step_seconds += time.perf_counter() - tick
                if acc.sync_gradients:  # an end that is the epoch's end is the else branch's to evaluate
                    end = self._at_end() and state.batch < len(self.loader)
                    if (end or (every and state.step % every == 0)) and (self._eval() or end):
                        break
                bar.set_postfix(loss=f"{self._loss_sum / max(self._loss_n, 1):.4f}")
            else:
                state.epoch, state.batch = state.epoch + 1, 0
                last = state.epoch >= budget.epochs or self._done()
                if not every or (last and state.step % every):  # every N steps: and the last step
                    self._eval()
                continue
            bar.close()
            break

    def _step(self, batch: dict[str, torch.Tensor]) -> None:
        state, acc = self.state, self.accelerator
        real = batch.pop("num_real_tokens", None)  # packed batches: their mask is 4-D
        with acc.accumulate(self.model):
            loss = self._loss(batch)
            acc.backward(loss)
            if acc.sync_gradients and self.cfg.grad_clip:
                if self.sparse is not None:
                    clip_grad_norm(self.model.parameters(), self.cfg.grad_clip)
                else:
                    acc.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        state.batch += 1
        state.step += int(acc.sync_gradients)
        state.real_tokens += int(real if real is not None else batch["attention_mask"].sum())
        state.padded_tokens += batch["input_ids"].numel()
        self._loss_sum, self._loss_n = self._loss_sum + float(loss.detach()), self._loss_n + 1

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The task's loss of the model's logits. Labels stay out of the model's call: a head that
        computed its own loss too would do the work twice (a causal LM over its whole vocabulary). A causal
        LM's logits are computed only at the positions with a target (labels are already shifted)."""
        labels, inputs = batch["labels"], {k: v for k, v in batch.items() if k != "labels"}
        if self.keep_answers:
            logits, labels = answer_logits(self.model, inputs, labels)
        else:
            logits = self.model(**inputs).logits
        return self.loss(logits, labels, self._targets_per_batch)

    @property
    def _targets_per_batch(self) -> float:
        """Labelled targets (label entries other than -100: words, answer tokens, texts) in an
        average training batch, for token losses that weigh every word the same."""
        if not hasattr(self, "_tpb"):
            targets = sum(_targets(f["labels"]) for f in self.features)
            self._tpb = max(1.0, targets / max(1, len(self.sampler)))
        return self._tpb

    def _eval(self) -> bool:
        """Evaluate on dev, track the best weights, checkpoint. Returns True to stop early."""
        state, acc = self.state, self.accelerator
        state.seconds = self._clock()
        self.model.eval()
        with torch.no_grad(), acc.autocast():
            dev = self.evaluate(acc.unwrap_model(self.model))
        self.model.train()
        value = dev[self.metric]
        lower = self.metric in LOWER_IS_BETTER
        improved = state.best is None or (value < state.best if lower else value > state.best)
        if state.step <= self.budget.plan_steps:
            state.plan_gain = relative_gain(value, state.best, lower)
        if improved:
            state.best, state.best_step, state.best_seconds = value, state.step, state.seconds
            state.best_epoch = self._epochs_done()
            state.bad_evals = 0
            self.best_weights = {k: v.detach().clone() for k, v in acc.unwrap_model(self.model).state_dict().items()}
        else:
            state.bad_evals += 1
        patience = self._patience()
        if patience and state.bad_evals >= patience and state.step >= self.budget.min_steps:
            state.stopped_early, state.stop_reason = True, "early stopping"
        record = {
            "event": "eval",
            "epoch": self._epochs_done(),
            "step": state.step,
            "seconds": round(state.seconds, 2),
            "train_loss": round(self._loss_sum / max(self._loss_n, 1), 6),
            "best": improved,
            "dev": {k: v for k, v in dev.items() if not isinstance(v, (dict, list))},
        }
        self._loss_sum, self._loss_n = 0.0, 0
        state.history.append(record)
        best = " (best)" if improved else ""
        line = f"eval at epoch {record['epoch']}, step {state.step}: dev {self.metric} {value:.4f}{best}"
        log_line(f"{line}, train loss {record['train_loss']:.4f}", self.progress and acc.is_main_process)
        if acc.is_main_process:
            self.on_eval(record)
        if self.ckpt_dir is not None and self.cfg.checkpoint:
            self._checkpoint()
        return state.stopped_early

    def _patience(self) -> int | None:
        """Evaluations without improvement that stop the run: the budget's, and past the plan of a run that
        had converged there (its last evaluation gained less than ``CONVERGED_GAIN``) the budget's
        ``converged_patience``."""
        budget, state = self.budget, self.state
        converged = state.plan_gain is not None and state.plan_gain < CONVERGED_GAIN
        if state.step > budget.plan_steps and converged:
            return budget.converged_patience
        return budget.patience

    def _at_end(self) -> bool:
        """The budget's last step, or its time cap (decided by the main process's clock, so that every
        process of a DDP run stops at the same step)."""
        state = self.state
        if state.step >= self.budget.total_steps:
            return True
        over = self.budget.max_seconds is not None and self._clock() >= self.budget.max_seconds
        if self.accelerator.num_processes > 1:
            over = bool(self.accelerator.reduce(torch.tensor([int(over)]), reduction="sum").item())
        if over:
            state.stop_reason = "time limit"
        return over

    def _done(self) -> bool:
        return self.state.stopped_early or self.state.step >= self.budget.total_steps or bool(self.state.stop_reason)

    def _epochs_done(self) -> float:
        return round(self.state.epoch + self.state.batch / max(len(self.loader), 1), 2)

    def _checkpoint(self) -> None:
        """Write ``last/`` atomically: to a temp folder first, then swap it in."""
        acc, tmp, last = self.accelerator, self.ckpt_dir / "last.tmp", self.ckpt_dir / "last"
        if acc.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        if acc.is_main_process:
            torch.save(self.best_weights, tmp / "best_weights.pt")
            (tmp / "loop.json").write_text(json.dumps(asdict(self.state)))
            replace_dir(tmp, last)
        acc.wait_for_everyone()

    def _restore(self) -> None:
        last = last_checkpoint(self.ckpt_dir)
        self.accelerator.load_state(str(last))
        self.state = LoopState(**json.loads((last / "loop.json").read_text()))
        self.best_weights = torch.load(last / "best_weights.pt", weights_only=True)
        if self.accelerator.is_main_process:  # the log restarts from what the checkpoint knew
            for record in self.state.history:
                self.on_eval(record)


def relative_gain(value: float, best: float | None, lower_is_better: bool) -> float:
    """How much ``value`` improves on ``best``, relative to it (1.0 with nothing to compare to)."""
    if best is None or best == 0:
        return 1.0
    return (best - value if lower_is_better else value - best) / abs(best)


def last_checkpoint(ckpt_dir: Path | None) -> Path:
    """The checkpoint a resumed run continues from: ``last/``, or ``.last.old`` when a run was killed
    while swapping them.

    Raises:
        UserError: There is none (never trained, or finished: a finished run removes its checkpoint).
    """
    found = [d / n for d in ([ckpt_dir] if ckpt_dir else []) for n in ("last", ".last.old")]
    found = [d for d in found if (d / "loop.json").is_file()]
    if not found:
        finished = ckpt_dir is not None and (ckpt_dir.parent / "metrics.json").is_file()
        raise UserError(
            f"nothing to resume: no checkpoint in {ckpt_dir}"
            + (" (this run finished: a finished run removes its checkpoint)" if finished else ""),
            hint="run without --resume to start fresh",
        )
    return found[0]


def answer_logits(
    model: torch.nn.Module, inputs: dict[str, Any], labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A causal LM's logits at the positions where some row has a target (labels already shifted), and
    the labels there: the same loss as over every position, without a vocabulary-wide row for each."""
    keep = (labels != IGNORE).any(0).nonzero().squeeze(1)
    return model(**inputs, logits_to_keep=keep).logits, labels[:, keep]


def _targets(labels: Any) -> int:
    """How many entries of one feature's labels carry a target (-100 marks none)."""
    return sum(1 for x in labels if x != -100) if isinstance(labels, list) else int(labels != -100)

"""How long and how hard to train: the training budget, from the config and the size of the data.

Explicit settings mean exactly what they say. Left null (the default), they are chosen for the data:

- **learning rate**: the method's default for the model kind (``MethodSpec.lr``: adapters and probes train
  few parameters and need larger steps than a whole model), or the task's for a head over more than
  ``MANY_CLASSES`` labels when that is higher and the per-label floor sets the plan (few examples a class)
  (``Task.many_class_lr``: 3e-4 for single-label classification);
- **the new head's learning rate**: the task's (``Task.new_head_lr``: 1e-3, a linear probe's rate, for
  NER; the body's for the others), or the body's when that is higher (an explicit ``train.lr`` applies to
  the head too): at full fine-tuning's 1e-4 a freshly initialised tag classifier learned Weibo NER's rare
  tags only after its plan (test F1 0.446; with the head at 1e-3: 0.518); a text classifier on 75
  PhraseBank headlines fell from 86.5 to 72.2 with it;
- **batch size**: 16 for an encoder (32 from ``LARGE_DATA`` examples on), 8 for a decoder;
- **epochs**: the plan is enough for ``train.min_steps`` optimizer steps (``STEPS_PER_LABEL`` per label
  when that is more, ``MANY_CLASS_STEPS_PER_LABEL`` at the many-class rate: 539 for 77 intents), at least
  ``MIN_EPOCHS``; the run may go on to ``EXTEND`` times the plan (at most ``train.max_epochs``) while dev
  keeps improving — early stopping ends it. The
  learning rate decays to zero at the plan's end and restarts at its peak for the extension
  (``optim.build_scheduler``). 400 sentences in batches of 32 are 13 steps an
  epoch: the old fixed 3 epochs were 39 steps and an underfit model. A stop at the plan was still too
  early wherever the data was large or its labels sparse: BANKING77's 10,003 questions (3 epochs: test
  accuracy 0.852, dev still rising; 8 epochs: 0.924), Resume NER (dev still rising after 3), Weibo NER
  (3 epochs: not one entity predicted), multi-label with 10 texts per label (0.740 at the plan, 0.815
  with 1.5x the steps);
- **evaluation**: once per epoch, at most ``MAX_EVALS`` times in a run (tiny data: every few epochs);
- **stopping**: early stopping after ``train.patience`` (3) evaluations without improvement, never before
  ``min_steps``; past the plan, after ``CONVERGED_PATIENCE`` (2) when the plan's last evaluation gained
  less than ``CONVERGED_GAIN`` (2%, relative) on the best before it (a run that had converged: the
  extension is for runs still climbing); a wall-time cap (``train.max_minutes``, 60 for the
  automatic budget). An explicit ``train.epochs`` / ``train.max_steps`` runs exactly that unless
  ``train.patience`` is set too: 3 flat evaluations on a tiny dev set used to end a 30-epoch run at its
  12th step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..config import TrainConfig
from ..methods import get_method

# BANKING77 with 5 examples per intent (77 labels): 200 steps gave test accuracy 0.563, 750 steps 0.721
# (bench/defaults.py); the head of a many-class task needs updates per class, not a fixed count
STEPS_PER_LABEL = 10
# a single-label head over more than MANY_CLASSES classes learns at the task's many-class rate (Classification: 3e-4),
# and MANY_CLASS_STEPS_PER_LABEL steps a label are enough there. BANKING77 with 5 / 10 / 20 per intent: at 1e-4 and
# 10 a label 72.40 / 80.70 / 86.10 in 152 / 172 / 223 s; at 3e-4 and 7 a label 74.20 / 81.10 / 85.00 in 94 / 109 /
# 114 s (the dev-chosen grid, same run: 71.80 / 81.60 / 85.10 in 132 / 85 / 140 s); at 5 a label, 20 per intent 83.10.
# Multi-label keeps 10 a label at 1e-4: its 30 sigmoids at 7 a label scored dev F1 0 through the plan (test 20.7).
# Only where the per-label floor sets the plan (few examples a class): with all 9,003 BANKING77 questions 3 epochs
# are more steps than the floor, and 1e-4 scored 92.00 in 656 s (to the horizon), 3e-4 90.90 in 350 s
MANY_CLASSES = 20
MANY_CLASS_STEPS_PER_LABEL = 7
MIN_EPOCHS = 3  # large data: the automatic budget never plans fewer passes than the old default
EXTEND = 3  # the automatic budget's horizon: this many times the planned epochs, while dev improves
MAX_EVALS = 25  # evaluations per run at most when train.eval_every is null
LARGE_DATA = 5_000  # encoder batch 32 from here on: steps enough at either size, fewer of them is faster
AUTO_MAX_MINUTES = 60.0
AUTO_PATIENCE = 3  # evaluations without improvement, for the automatic budget
# past the plan, a run whose plan's last evaluation gained less than CONVERGED_GAIN (relative) on the best
# before it stops after CONVERGED_PATIENCE flat evaluations instead of AUTO_PATIENCE: PhraseBank all and Resume
# NER (+0.9 points at the plan's end) spent three epochs finding nothing better; the runs the extension serves
# were still climbing there (multi-label +6.6 points, Weibo NER +17 to +27). One flat evaluation was too few:
# BANKING77 10 per intent (+0.8 at the plan) dipped once past it, then climbed 2.6 points (test 0.793 vs 0.807)
CONVERGED_GAIN = 0.02
CONVERGED_PATIENCE = 2
ENCODER_BATCH, LARGE_ENCODER_BATCH, DECODER_BATCH = 16, 32, 8
FALLBACK_LR = {"encoder": 1e-4, "causal_lm": 2e-5}  # a method without its own default


@dataclass(frozen=True)
class Budget:
    """The resolved training settings the loop runs with, and why each was chosen."""

    lr: float
    head_lr: float  # the new head's (the weights the pretrained checkpoint lacks)
    batch_size: int
    epochs: int  # passes at most
    total_steps: int  # the schedule's length in optimizer steps; training ends here at the latest
    plan_steps: int  # the automatic budget's plan (the first learning-rate cycle ends here); else total_steps
    min_steps: int  # no early stopping before this step
    patience: int | None  # evaluations without improvement before stopping (None: never stop early)
    # the patience past the plan when the plan ended converged (see CONVERGED_GAIN); = patience unless automatic
    converged_patience: int | None = field(default=None, kw_only=True)
    eval_every: int | None  # optimizer steps between evaluations (None: at the end of each epoch)
    max_seconds: float | None  # wall-time cap
    automatic: bool  # epochs / steps chosen from the data (train.epochs and train.max_steps null)
    why: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_budget(
    t: TrainConfig,
    n_examples: int,
    kind: str,
    method: str = "full",
    n_labels: int = 0,
    head_lr: float | None = None,
    many_class_lr: float | None = None,
) -> Budget:
    """The budget for ``n_examples`` training features (sentences, windows or texts) of a ``kind`` model.

    Args:
        t: The run's ``train`` settings; explicit ones win.
        n_examples: Training features the loop batches (the step count is the single-process one, as
            the schedule's).
        kind: ``"encoder"`` or ``"causal_lm"``.
        method: The adaptation method, whose default learning rate applies when ``t.lr`` is null.
        n_labels: Labels (tags for NER) the head learns: many classes need more updates than a few.
        head_lr: The task's rate for a new head at least (``Task.new_head_lr``); None: the body's.
        many_class_lr: The task's rate at least for a head over more than ``MANY_CLASSES`` labels
            (``Task.many_class_lr``); None: the method's.
    """
    why: list[str] = []
    batch = t.batch_size or _default_batch(n_examples, kind)
    per_epoch = math.ceil(math.ceil(n_examples / batch) / t.grad_accum)
    method_lr = get_method(method).lr.get(kind) or FALLBACK_LR[kind]
    few_each = MANY_CLASS_STEPS_PER_LABEL * n_labels > MIN_EPOCHS * per_epoch  # the per-label floor sets the plan
    many = t.lr is None and n_labels > MANY_CLASSES and few_each and (many_class_lr or 0) > method_lr
    lr = t.lr or (many_class_lr if many else method_lr)
    if many:
        why.append(
            f"lr {lr:g}: {n_labels} classes (more than {MANY_CLASSES}) with few examples each: a head over many "
            "classes learns at this rate"
        )
    elif t.lr is None:
        why.append(f"lr {lr:g}: method {method}'s default for {kind.replace('_', ' ')} models")
    new_head_lr = t.head_lr or (max(lr, head_lr) if t.lr is None and head_lr else lr)  # a set lr: all of it
    if t.head_lr is None and new_head_lr != lr and kind == "encoder":
        why.append(f"head lr {new_head_lr:g}: a new tag classifier learns at a linear probe's rate at least")
    if t.batch_size is None:
        why.append(f"batch size {batch}: {n_examples:,} training examples, {kind.replace('_', ' ')} model")
    automatic = t.epochs is None and t.max_steps is None
    per_label = MANY_CLASS_STEPS_PER_LABEL if many else STEPS_PER_LABEL
    floor = max(t.min_steps, per_label * n_labels)
    if automatic:
        planned = min(t.max_epochs, max(MIN_EPOCHS, math.ceil(floor / per_epoch)))
        epochs = min(t.max_epochs, EXTEND * planned)
        reason = "train.min_steps" if floor == t.min_steps else f"{per_label} per label, {n_labels} labels"
        why.append(
            f"{epochs} epochs at most: {per_epoch} steps per epoch; planned {planned} epochs (at least {floor} "
            f"steps ({reason}) and {MIN_EPOCHS} epochs; the learning rate decays to 0 there), then on while dev "
            f"improves (restarting at the full rate), up to {EXTEND}x the plan and at most {t.max_epochs} "
            "(train.max_epochs); early stopping ends sooner"
            + (
                f" (past the plan: {CONVERGED_PATIENCE} flat evaluations if the plan's last gained"
                f" < {CONVERGED_GAIN:.0%})"
                if t.patience is None
                else ""
            )
        )
        total, plan_steps = epochs * per_epoch, planned * per_epoch
    else:
        epochs = t.epochs or math.ceil(t.max_steps / per_epoch)
        total = min(epochs * per_epoch, t.max_steps or epochs * per_epoch)
        plan_steps = total
    eval_every = t.eval_every or _eval_interval(per_epoch, total)
    if t.eval_every is None and eval_every:
        why.append(f"evaluate every {eval_every} steps: at most {MAX_EVALS} evaluations")
    minutes = t.max_minutes or (AUTO_MAX_MINUTES if automatic else None)
    patience = (AUTO_PATIENCE if automatic else None) if t.patience is None else (t.patience or None)
    return Budget(
        lr=lr,
        head_lr=new_head_lr,
        batch_size=batch,
        epochs=epochs,
        total_steps=total,
        plan_steps=plan_steps,
        min_steps=min(floor, total) if automatic else 0,
        patience=patience,
        converged_patience=CONVERGED_PATIENCE if automatic and t.patience is None else patience,
        eval_every=eval_every,
        max_seconds=minutes * 60 if minutes else None,
        automatic=automatic,
        why=why,
    )


def _default_batch(n_examples: int, kind: str) -> int:
    if kind == "causal_lm":
        return DECODER_BATCH  # a 135M decoder step on 8 prompts already takes seconds on a CPU
    return LARGE_ENCODER_BATCH if n_examples >= LARGE_DATA else ENCODER_BATCH


def _eval_interval(per_epoch: int, total: int) -> int | None:
    """None (each epoch's end) unless that would mean more than ``MAX_EVALS`` evaluations."""
    if total / per_epoch <= MAX_EVALS:
        return None
    return math.ceil(total / MAX_EVALS)

"""What a run's numbers say to do next, in plain words: shown by ``fieldtune train`` and in report.md.

- **Still improving**: the best dev score came at the last evaluation and the training loss was still
  falling, so more training would likely help (the budget, not the model, was the limit).
- **Tiny dev set**: with fewer than ``MIN_DEV`` dev examples, or fewer than ``MIN_PER_LABEL`` of some
  label, the dev metric moves by whole examples and model selection / early stopping are noisy.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..data.examples import labels_of
from .record import RunRecord

MIN_DEV = 50  # dev examples below which one example moves accuracy by more than 2 points
MIN_PER_LABEL = 5  # dev examples of a label below which its recall moves in steps of 20 points or more


def advise(record: RunRecord) -> list[str]:
    """Advice for this run (empty when there is nothing to say)."""
    return [a for a in (_still_improving(record), _tiny_dev(record)) if a]


def still_improving(history: list[dict[str, Any]]) -> bool:
    """Best dev score at the last of at least two evaluations, and the training loss still falling."""
    evals = [h for h in history if h.get("event") == "eval"]
    if len(evals) < 2 or not evals[-1].get("best"):
        return False
    return evals[-1]["train_loss"] < evals[-2]["train_loss"]


def _still_improving(record: RunRecord) -> str | None:
    if not still_improving(record.history):
        return None
    last = [h for h in record.history if h.get("event") == "eval"][-1]
    budget = record.train.budget
    epochs = max(1, round(float(last["epoch"])))
    if record.train.stop_reason == "time limit":
        longer = f"train.max_minutes (the run stopped at its time limit after {epochs} epochs)"
    elif budget.get("automatic"):
        longer = f"train.epochs={2 * epochs}: the automatic budget planned {budget['epochs']}"
    else:
        longer = f"train.epochs={2 * epochs}"
    return (
        f"still improving: dev {record.metric} was best at the last evaluation (epoch {last['epoch']}, step "
        f"{last['step']}) and the training loss was still falling ({last['train_loss']:.4f}); train longer "
        f"({longer}; early stopping keeps the best) or raise train.lr (now {budget.get('lr', 0):g})"
    )


def _tiny_dev(record: RunRecord) -> str | None:
    dev = record.splits.dev
    counts = Counter(label for ex in dev for label in labels_of(ex))
    rare = [label for label in _gold_names(record) if counts[label] < MIN_PER_LABEL]
    problems = [f"{len(dev)} examples"] if len(dev) < MIN_DEV else []
    if rare:
        shown = ", ".join(rare[:5]) + (f" and {len(rare) - 5} more" if len(rare) > 5 else "")
        problems.append(f"fewer than {MIN_PER_LABEL} examples of {shown}")
    if not problems:
        return None
    return (
        f"small dev set ({'; '.join(problems)}): the dev metric moves in big steps, so model selection and "
        "early stopping are noisy; give a larger data.dev (or raise data.dev_fraction)"
    )


def _gold_names(record: RunRecord) -> list[str]:
    """Labels the dev set could hold: entity types for NER (its labels are B-/I- tags), else the labels."""
    types = {label[2:] for label in record.labels if label[:2] in ("B-", "I-")}
    return sorted(types) if types else list(record.labels)

"""The Hugging Face Trainer contender of bench/defaults.py: transformers' own defaults, no model selection.

The same bundled all-MiniLM-L6-v2 weights and the same files as fieldtune's runs. ``TrainingArguments``
keeps its defaults (3 epochs, lr 5e-5, batch 8, linear decay without warm-up, no weight decay); only
the bookkeeping is set (no checkpoints, no evaluation during training, no reporting, a bigger *eval*
batch, which does not change training). The final model is scored on dev and test:

- NER: token classification, labels on the first word-piece of each word (bench/conll2003.py's ``encode``),
  seqeval entity F1;
- classification: sequence classification, accuracy;
- multi-label: ``problem_type="multi_label_classification"`` (BCE), a 0.5 threshold on the sigmoid, micro-F1.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import numpy as np
from conll2003 import LABELS as NER_LABELS
from conll2003 import decode, encode, model_dir, read_conll, score


def read_rows(path: Path, multi: bool) -> list[tuple[str, Any]]:
    """(text, label) rows of a benchmark CSV; labels are lists for multi-label."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if multi:
        return [(r["text"], r["labels"].split("|")) for r in rows]
    return [(r["text"], r["label"]) for r in rows]


def classification_features(tok: Any, rows: list, labels: list[str], multi: bool) -> list[dict[str, Any]]:
    """Tokenised texts with an int label (or a float multi-hot vector for multi-label)."""
    index = {label: i for i, label in enumerate(labels)}
    enc = tok([t for t, _ in rows], truncation=True, return_token_type_ids=False)
    feats = []
    for i, (_, y) in enumerate(rows):
        if multi:
            target: Any = [0.0] * len(labels)
            for label in y:
                target[index[label]] = 1.0
        else:
            target = index[y]
        feats.append({"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": target})
    return feats


def load_data(task: str, files: dict[str, str], tok: Any) -> tuple[dict[str, list], list[str]]:
    """Features of train / dev / test and the label list (from train, sorted)."""
    if task == "ner":
        return {s: encode(tok, read_conll(Path(p))) for s, p in files.items()}, NER_LABELS
    multi = task == "multilabel"
    rows = {s: read_rows(Path(p), multi) for s, p in files.items()}
    seen = {label for _, y in rows["train"] for label in (y if multi else [y])}
    labels = sorted(seen)
    return {s: classification_features(tok, r, labels, multi) for s, r in rows.items()}, labels


def build_model(task: str, labels: list[str]) -> Any:
    """The bundled encoder with a fresh head for the task."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    ids = {label: i for i, label in enumerate(labels)}
    kwargs: dict[str, Any] = {"num_labels": len(labels), "id2label": dict(enumerate(labels)), "label2id": ids}
    if task == "ner":
        return AutoModelForTokenClassification.from_pretrained(model_dir(), **kwargs)
    if task == "multilabel":
        kwargs["problem_type"] = "multi_label_classification"
    return AutoModelForSequenceClassification.from_pretrained(model_dir(), **kwargs)


def metric(task: str, logits: np.ndarray, gold: np.ndarray) -> float:
    """Entity F1 (NER), accuracy (classification) or micro-F1 at 0.5 (multi-label)."""
    if task == "ner":
        rows = [decode(lab, pred) for lab, pred in zip(gold, logits.argmax(-1), strict=True)]
        return score([g for g, _, _ in rows], [p for _, p, _ in rows])["f1"]
    if task == "multilabel":
        from sklearn.metrics import f1_score

        return float(f1_score(gold.astype(int), (logits > 0).astype(int), average="micro", zero_division=0))
    return float((logits.argmax(-1) == gold).mean())


def default_args(workdir: Path, seed: int, **bookkeeping: Any) -> Any:
    """``TrainingArguments`` with the Trainer's training defaults; only bookkeeping set (no checkpoints,
    evaluation or reporting during training, a bigger eval batch; ``bookkeeping``: e.g. ``max_steps``)."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(workdir / "hf"),
        seed=seed,
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        per_device_eval_batch_size=64,
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        **bookkeeping,
    )


def run(task: str, files: dict[str, str], seed: int, workdir: Path) -> dict[str, Any]:
    """Train with the Trainer's defaults; the final model's dev and test metric, time, steps, epochs."""
    from transformers import (
        AutoTokenizer,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        Trainer,
        set_seed,
    )

    t0 = time.perf_counter()
    set_seed(seed)
    tok = AutoTokenizer.from_pretrained(model_dir())
    feats, labels = load_data(task, files, tok)
    collator = DataCollatorForTokenClassification(tok) if task == "ner" else DataCollatorWithPadding(tok)
    targs = default_args(workdir, seed)
    trainer = Trainer(
        model=build_model(task, labels),
        args=targs,
        train_dataset=feats["train"],
        data_collator=collator,
        processing_class=tok,
    )
    trainer.train()
    wall = time.perf_counter() - t0
    out = {"wall_s": wall, "steps": trainer.state.global_step, "epochs_run": trainer.state.epoch}
    for split in ("dev", "test"):
        pred = trainer.predict(feats[split])
        out[f"{split}_metric"] = metric(task, pred.predictions, pred.label_ids)
    out["settings"] = {
        "epochs": targs.num_train_epochs,
        "lr": targs.learning_rate,
        "batch_size": targs.per_device_train_batch_size,
        "weight_decay": targs.weight_decay,
        "warmup": targs.warmup_steps,
    }
    return out

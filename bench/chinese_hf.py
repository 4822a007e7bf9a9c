"""The Hugging Face Trainer on Chinese NER with the same ``multilingual`` weights: the reference a user would
otherwise pick, for issue 13's "training tokens/s of ``multilingual`` ≥ 2.5× the HF Trainer" (``bench/chinese.py
--rows hf_trainer``).

What a user following the token-classification tutorial writes: the characters as pre-split words
(``is_split_into_words=True``), the label on each word's first piece (-100 elsewhere), ``TrainingArguments``
with their defaults (3 epochs, lr 5e-5, batch 8, linear decay, fp32), dynamic padding, the final model scored
on test with seqeval (strict IOB2: the files are read by fieldtune's reader, BMES tags as IOB2, so both score
the same entities).

Throughput is counted two ways, because the two tokenise the same text differently: XLM-R's pieces for
pre-split characters keep a lone metaspace piece before most characters (``▁`` + ``招``), so the Trainer
sees ~1.8 pieces per character where fieldtune sees one. *Characters per second* (the training text's
characters × epochs / training seconds) compares the same work; pieces per second is reported beside it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from defaults_hf import default_args  # bench/defaults_hf.py, this script's folder


def read_sentences(path: Path) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(characters, IOB2 tags) per sentence, read by fieldtune's own CoNLL reader (BMES / BIOES -> IOB2), so
    both systems train and are scored on the same entities."""
    from fieldtune.config import DataConfig
    from fieldtune.data.readers import read_examples

    return [(s.tokens, s.tags) for s in read_examples(path, "ner", DataConfig(train=path)).examples]


def encode(tok: Any, sentences: list, label2id: dict[str, int]) -> list[dict[str, list[int]]]:
    """The tutorial's alignment: the label on each word's first piece, -100 on the rest and on specials."""
    enc = tok([list(c) for c, _ in sentences], is_split_into_words=True, truncation=True)
    feats = []
    for i, (_, tags) in enumerate(sentences):
        labels, prev = [], None
        for wid in enc.word_ids(i):
            labels.append(-100 if wid is None or wid == prev else label2id[tags[wid]])
            prev = wid
        feats.append({"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": labels})
    return feats


def run(files: dict[str, Path], workdir: Path, seed: int, max_steps: int | None = None) -> dict[str, Any]:
    """Train with the Trainer's defaults (or ``max_steps`` of them: a throughput-only run); test F1 and speed."""
    from seqeval.metrics import f1_score, precision_score, recall_score
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        set_seed,
    )

    from fieldtune.zoo import resolve

    set_seed(seed)
    path = resolve("multilingual")
    tok = AutoTokenizer.from_pretrained(path)
    data = {s: read_sentences(Path(files[s])) for s in ("train", "test")}
    labels = sorted({t for _, tags in data["train"] for t in tags})
    label2id = {label: i for i, label in enumerate(labels)}
    feats = {s: encode(tok, rows, label2id) for s, rows in data.items()}
    counted = {"pieces": 0}

    class CountingTrainer(Trainer):
        def training_step(self, model: Any, inputs: dict, num_items_in_batch: Any = None) -> Any:
            counted["pieces"] += int(inputs["attention_mask"].sum())
            return super().training_step(model, inputs, num_items_in_batch)

    model = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )
    targs = default_args(workdir, seed, max_steps=max_steps or -1)
    trainer = CountingTrainer(
        model=model,
        args=targs,
        train_dataset=feats["train"],
        data_collator=DataCollatorForTokenClassification(tok),
        processing_class=tok,
    )
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    pred = trainer.predict(feats["test"])
    gold, guess = [], []
    for lab, p in zip(pred.label_ids, np.asarray(pred.predictions).argmax(-1), strict=True):
        keep = lab != -100
        gold.append([labels[i] for i in lab[keep]])
        guess.append([labels[i] for i in p[keep]])
    epochs = float(trainer.state.epoch or 0)
    chars = sum(len(c) for c, _ in data["train"])
    return {
        "test_f1": f1_score(gold, guess),
        "test_precision": precision_score(gold, guess),
        "test_recall": recall_score(gold, guess),
        "train_s": round(train_s, 1),
        "steps": trainer.state.global_step,
        "epochs": round(epochs, 3),
        "pieces_per_s": round(counted["pieces"] / train_s, 1),
        "chars_per_s": round(chars * epochs / train_s, 1),
        "settings": {
            "epochs": targs.num_train_epochs,
            "max_steps": max_steps,
            "lr": targs.learning_rate,
            "batch_size": targs.per_device_train_batch_size,
        },
    }


def fieldtune_chars_per_s(metrics: dict[str, Any], train_file: Path) -> float:
    """Characters per second of a fieldtune run: the training text's characters × epochs run / step seconds."""
    chars = sum(len(c) for c, _ in read_sentences(train_file))
    t = metrics["train"]
    return round(chars * t["epochs"] / max(t["step_s"], 1e-9), 1)

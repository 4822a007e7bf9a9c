#!/usr/bin/env python
"""Ways to adapt a pretrained model to one classification dataset, side by side: quality and cost.

Rows (each one `fieldtune.train` run with a config built here, in its own subprocess, so a row that fails
or runs out of memory is reported with its error and the others go on):

    zero_shot_llm        smollm2, method zero_shot (label words scored by the LLM)
    zero_shot_llm_nolist the same with the instruction "Classify the text." (no list of the labels)
    zero_shot_embedding  minilm, method zero_shot (cosine to label descriptions)
    in_context_llm       smollm2, method in_context, data.shots=8 (the most similar examples in the prompt)
    setfit               minilm, method setfit, data.shots=8
    setfit_frozen        minilm, method setfit, data.shots=8, setfit.body_epochs=0 (no contrastive step: the
                         cross-validated logistic regression on the encoder's own sentence embeddings)
    head                 minilm, method head (linear probe on a frozen encoder)
    lora_encoder         minilm, method lora
    lora_llm             smollm2, method lora (the LLM trained to emit the label)
    full                 minilm, method full

LLM rows score a stratified subset of the test set (--llm-test-limit; scoring 77 label words per text
with a 135M decoder on a CPU is slow): the table's "split (n)" column says how many examples each row
scored, and compare.md repeats it.

    python bench/adaptation.py --dataset banking77 --data ../shared/data/banking77
    python bench/adaptation.py --dataset phrasebank --data ../shared/data/financial_phrasebank
    python bench/adaptation.py --dataset banking77 --data ../shared/data/banking77 --quick \\
        --rows zero_shot_embedding,setfit,head                                         # smoke run
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

Row = tuple[str, str]  # (text, label)

# name -> (model, method, few-shot k, train settings, is an LLM row)
ROWS: dict[str, tuple[str, str, int | None, dict[str, Any], bool]] = {
    "zero_shot_llm": ("smollm2", "zero_shot", None, {}, True),
    "zero_shot_llm_nolist": ("smollm2", "zero_shot", None, {}, True),
    "zero_shot_embedding": ("minilm", "zero_shot", None, {}, False),
    "in_context_llm": ("smollm2", "in_context", 8, {}, True),
    "setfit": ("minilm", "setfit", 8, {}, False),
    "setfit_frozen": ("minilm", "setfit", 8, {}, False),
    "head": ("minilm", "head", None, {"epochs": 10, "lr": 1e-3, "batch_size": 32}, False),
    "lora_encoder": ("minilm", "lora", None, {"epochs": 8, "lr": 5e-4, "batch_size": 16, "patience": 2}, False),
    "lora_llm": ("smollm2", "lora", None, {"epochs": 2, "lr": 2e-4, "batch_size": 8}, True),
    "full": ("minilm", "full", None, {"epochs": 8, "lr": 1e-4, "batch_size": 16, "patience": 2}, False),
}
# per-dataset changes to a row: (data settings, train settings, prompt settings). BANKING77 has 10k training
# texts: the LLM is LoRA-trained on 16 per intent (the full set would take hours on a CPU), with a short
# instruction (a trained model needs no list of the 77 intents in every prompt: ~450 tokens less per example);
# the encoder rows need fewer epochs than on the 1.6k PhraseBank sentences.
DATASET_ROWS: dict[str, dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]] = {
    "banking77": {
        "lora_llm": ({"shots": 16}, {"epochs": 1, "lr": 5e-4}, {"instruction": "What does the bank customer want?"}),
        "head": ({}, {"epochs": 5, "lr": 3e-3, "batch_size": 32}, {}),
        "lora_encoder": ({}, {"epochs": 5, "lr": 1e-3, "batch_size": 32}, {}),
        "full": ({}, {"epochs": 5, "lr": 1e-4, "batch_size": 32}, {}),
    },
    "phrasebank": {
        "lora_llm": ({}, {"epochs": 1, "lr": 5e-4}, {}),
    },
}
# in-context prompts are 4x the cost per input with calibration (the prior is measured after each input's own
# shots); the in-context rows run uncalibrated
ROW_PROMPTS: dict[str, dict[str, Any]] = {
    "in_context_llm": {"calibrate": False},
    # the instruction without the list of labels (with 77 intents the list is ~450 tokens a 135M model reads)
    "zero_shot_llm_nolist": {"instruction": "Classify the text."},
}
ROW_SETFIT: dict[str, dict[str, Any]] = {"setfit_frozen": {"body_epochs": 0}}
QUICK_TRAIN = {"epochs": 1, "patience": None}  # --quick: one epoch, whatever the row says
QUICK_LABELS, QUICK_TRAIN_PER_LABEL, QUICK_TEST_PER_LABEL = 10, 16, 4


# --------------------------------------------------------------------------- data


def read_csv(path: Path) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as f:
        return [(r["text"], r["category"]) for r in csv.DictReader(f)]


def read_phrasebank(path: Path) -> list[Row]:
    """``sentence@label`` lines in Latin-1; the label follows the last @."""
    rows = []
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.strip():
            text, _, label = line.rpartition("@")
            rows.append((text.strip(), label.strip()))
    return rows


def write_csv(path: Path, rows: list[Row]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def stratified_take(rows: list[Row], n: int, seed: int) -> list[Row]:
    """``n`` rows with every label in proportion to its share (each label shuffled with ``seed``, then the
    rows with the lowest rank / label size first), in the original order."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, (_, label) in enumerate(rows):
        groups[label].append(i)
    rng = random.Random(seed)
    keyed = []
    for label in sorted(groups):
        idx = groups[label]
        rng.shuffle(idx)
        keyed += [((rank + 0.5) / len(idx), label, i) for rank, i in enumerate(idx)]
    keep = {i for _, _, i in sorted(keyed)[:n]}
    return [r for i, r in enumerate(rows) if i in keep]


def split_70_10_20(rows: list[Row], seed: int) -> tuple[list[Row], list[Row], list[Row]]:
    """A seeded stratified 70 / 10 / 20 split (Financial PhraseBank has no official one)."""
    test = stratified_take(rows, round(0.2 * len(rows)), seed)
    rest = _without(rows, test)
    dev = stratified_take(rest, round(0.1 * len(rows)), seed)
    return _without(rest, dev), dev, test


def _without(rows: list[Row], taken: list[Row]) -> list[Row]:
    counts: dict[Row, int] = defaultdict(int)
    for r in taken:
        counts[r] += 1
    out = []
    for r in rows:
        if counts[r]:
            counts[r] -= 1
        else:
            out.append(r)
    return out


def prepare_data(args: argparse.Namespace, work: Path) -> tuple[dict[str, Path], list[str]]:
    """train / dev / test (and llm_test) CSV files in ``work``, and notes for the table."""
    if args.dataset == "banking77":
        train, test = read_csv(args.data / "train.csv"), read_csv(args.data / "test.csv")
        train, dev = _split_dev(train, args.seed)
        notes = ["BANKING77: official test set; dev = a stratified 10% of train (seeded)"]
    else:
        source = args.data / "Sentences_AllAgree.txt" if args.data.is_dir() else args.data
        train, dev, test = split_70_10_20(read_phrasebank(source), args.seed)
        notes = [f"Financial PhraseBank AllAgree: seeded stratified 70/10/20 split (seed {args.seed})"]
    if args.quick:
        labels = sorted({label for _, label in train})[:QUICK_LABELS]
        keep = lambda rows, k: stratified_take([r for r in rows if r[1] in labels], k * len(labels), args.seed)  # noqa: E731
        train, dev, test = keep(train, QUICK_TRAIN_PER_LABEL), keep(dev, 2), keep(test, QUICK_TEST_PER_LABEL)
        notes.append(f"--quick: {len(labels)} labels, {len(train)} train / {len(dev)} dev / {len(test)} test")
    files = {
        name: write_csv(work / f"{name}.csv", rows) for name, rows in (("train", train), ("dev", dev), ("test", test))
    }
    llm_test = test
    if args.llm_test_limit and args.llm_test_limit < len(test):
        llm_test = stratified_take(test, args.llm_test_limit, args.seed)
        notes.append(f"LLM rows score a stratified subset of test: {len(llm_test)} of {len(test)} examples")
    files["llm_test"] = write_csv(work / "llm_test.csv", llm_test)
    llm_dev = dev
    if args.llm_dev_limit and args.llm_dev_limit < len(dev):
        llm_dev = stratified_take(dev, args.llm_dev_limit, args.seed)
        notes.append(f"LLM rows select on a stratified subset of dev: {len(llm_dev)} of {len(dev)} examples")
    files["llm_dev"] = write_csv(work / "llm_dev.csv", llm_dev)
    notes.append(f"sizes: train {len(train)}, dev {len(dev)}, test {len(test)} ({len({r[1] for r in train})} labels)")
    return files, notes


def _split_dev(train: list[Row], seed: int) -> tuple[list[Row], list[Row]]:
    dev = stratified_take(train, round(0.1 * len(train)), seed)
    return _without(train, dev), dev


# --------------------------------------------------------------------------- rows


def row_config(name: str, files: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    model, method, shots, train, llm = ROWS[name]
    data: dict[str, Any] = {
        "train": str(files["train"]),
        "dev": str(files["llm_dev" if llm else "dev"]),
        "test": str(files["llm_test" if llm else "test"]),
    }
    if shots:
        data["shots"] = shots
    extra_data, extra_train, extra_prompt = DATASET_ROWS.get(args.dataset, {}).get(name, ({}, {}, {}))
    if not args.quick:
        data |= extra_data
        train = {**train, **extra_train}
    prompt = {**ROW_PROMPTS.get(name, {}), **extra_prompt}
    cfg: dict[str, Any] = {
        "task": "classification",
        "model": model,
        "method": method,
        "data": data,
        "output": str(args.out / name),
        "train": {"seed": args.seed, **train, **(QUICK_TRAIN if args.quick and train else {})},
    }
    if prompt:
        cfg["prompt"] = prompt
    setfit = {**ROW_SETFIT.get(name, {}), **({"iterations": 2} if args.quick and method == "setfit" else {})}
    if setfit:
        cfg["setfit"] = setfit
    return cfg


def run_row(name: str, cfg: dict[str, Any], out: Path) -> str | None:
    """Train one row in a subprocess; its error (one line), or None when it finished."""
    config = out / "configs" / f"{name}.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    error = config.with_suffix(".error")
    error.unlink(missing_ok=True)
    started = time.perf_counter()
    print(f"\n=== {name}: {cfg['model']} {cfg['method']}", flush=True)
    proc = subprocess.run([sys.executable, __file__, "--run-config", str(config)], check=False)
    print(f"=== {name}: exit {proc.returncode} after {time.perf_counter() - started:.0f} s", flush=True)
    if proc.returncode == 0:
        return None
    return error.read_text(encoding="utf-8") if error.is_file() else f"exit code {proc.returncode}"


def train_one(config: Path) -> int:
    """Child process: one fieldtune.train run; an exception is written beside the config for the parent."""
    try:
        import fieldtune

        fieldtune.train(json.loads(config.read_text(encoding="utf-8")))
    except Exception as e:  # noqa: BLE001 - any failure is a row's result, reported in the table
        message = str(e).splitlines()[0] if str(e) else ""
        config.with_suffix(".error").write_text(f"{type(e).__name__}: {message}"[:300], encoding="utf-8")
        raise
    return 0


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=("banking77", "phrasebank"), default="banking77")
    parser.add_argument(
        "--data",
        type=Path,
        help="banking77: folder with train.csv / test.csv; phrasebank: its folder or Sentences_AllAgree.txt",
    )
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    parser.add_argument("--llm-test-limit", type=int, default=None, help="LLM rows: a stratified test subset of N")
    parser.add_argument("--llm-dev-limit", type=int, default=None, help="LLM rows: a stratified dev subset of N")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default bench/results/adaptation-DATASET)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_LABELS} labels, tiny splits, 1 epoch")
    parser.add_argument("--skip-done", action="store_true", help="keep rows whose run folder has metrics.json")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--run-config", type=Path, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.run_config:
        sys.exit(train_one(args.run_config))
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown or args.data is None:
        parser.error(f"unknown rows {unknown}; choose from {list(ROWS)}" if unknown else "--data is required")
    suffix = "-quick" if args.quick else ""
    args.out = (args.out or Path(__file__).parent / "results" / f"adaptation-{args.dataset}{suffix}").resolve()
    args.data = args.data.resolve()
    files, notes = prepare_data(args, args.out / "data")
    failed: dict[str, str] = {}
    for name in rows:
        if args.skip_done and (args.out / name / "metrics.json").is_file():
            continue
        error = run_row(name, row_config(name, files, args), args.out)
        if error:
            failed[name] = error
    render(rows, failed, notes, args.out)


def render(rows: list[str], failed: dict[str, str], notes: list[str], out: Path) -> None:
    """The comparison of the finished rows (+ the failed ones with their error): terminal, .md, .json, .png."""
    from tables import show  # bench/tables.py (the script's folder is on sys.path)

    from fieldtune.compare import cells, compare_runs, headers

    done = [out / name for name in rows if name not in failed and (out / name / "metrics.json").is_file()]
    failed |= {name: "no metrics.json" for name in rows if name not in failed and out / name not in done}
    table, where = compare_runs(done, "accuracy", out / "compare", failed=failed, notes=notes)
    show(headers("accuracy"), [cells(r) for r in table], f"adaptation: {out.name}")
    print("\n".join(notes))
    print(f"table: {where / 'compare.md'}\nplot: {where / 'compare.png'}")


if __name__ == "__main__":
    main()

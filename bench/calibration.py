#!/usr/bin/env python
"""Calibration and conformal sets on BANKING77 and CLINC150 (issue 14, section 1 and 2), `minilm` full
fine-tuning with the automatic budget.

For each dataset: train once (cached in --out; CLINC150 on its 150 in-scope intents), then from the
saved artifact as users load it:
- test ECE (15 bins) before and after the temperature scaling fitted on dev (the artifact's own);
- split-conformal prediction sets fitted on dev (`trust.fit_trust`, as `abstain.conformal_alpha`
  does at training) for alpha 0.05 / 0.1 / 0.2: empirical test coverage and mean set size;
- abstention for a target precision of 0.95 on dev: test coverage and precision of the answered.

    OMP_NUM_THREADS=2 .venv/bin/python bench/calibration.py --data ../shared/data
    # reuse a trained CLINC150 model (e.g. bench/oos.py's in-scope one):
    .venv/bin/python bench/calibration.py --datasets clinc150 --model clinc150=bench/results/oos/models/a-full
    # explicit training settings instead of the automatic budget (the run folder is named after them):
    .venv/bin/python bench/calibration.py --datasets banking77 --train epochs=8 --train lr=1e-4 --train batch_size=16

BANKING77 has no dev split: the script takes 10% of train (stratified, seeded, as fieldtune would) and
writes train/dev files, so training and the conformal and abstention fits use the same dev rows.
Results: calibration.json + calibration.md in --out.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

import fieldtune
from fieldtune.config import AbstainConfig
from fieldtune.data.examples import TextExample
from fieldtune.data.splits import stratified_split
from fieldtune.runs.trust import fit_trust, trust_scores

ALPHAS = (0.05, 0.1, 0.2)
TARGET_PRECISION = 0.95


def read(path: Path, label: str) -> list[TextExample]:
    with path.open(encoding="utf-8", newline="") as f:
        return [TextExample(text=r["text"], labels=(r[label],)) for r in csv.DictReader(f)]


def data_config(data: Path, out: Path, dataset: str, seed: int) -> tuple[dict[str, str], str]:
    if dataset == "clinc150":
        folder = data / "clinc150"
        return {s: str(folder / f"{s}.csv") for s in ("train", "dev", "test")}, "intent"
    folder, split = data / "banking77", out / "banking77-data"
    if not (split / "dev.csv").exists():  # 10% of train, stratified and seeded, as fieldtune's own dev split
        train, dev = stratified_split(read(folder / "train.csv", "category"), 0.1, seed)
        for name, rows in (("train", train), ("dev", dev)):
            write(split / f"{name}.csv", rows)
    return {"train": str(split / "train.csv"), "dev": str(split / "dev.csv"), "test": str(folder / "test.csv")}, "label"


def write(path: Path, rows: list[TextExample]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *((r.text, r.labels[0]) for r in rows)])


def train_model(out: Path, dataset: str, files: dict[str, str], seed: int, train: dict[str, Any]) -> Path:
    """Train (once: cached in ``out``) with the automatic budget, or with the ``train`` settings given."""
    run = out / (dataset + "".join(f"-{k}{v}" for k, v in sorted(train.items())))
    if not (run / "model" / "fieldtune.json").exists():
        cfg = {"task": "classification", "model": "minilm", "data": files, "output": str(run)}
        cfg["train"] = {"seed": seed, **train}
        fieldtune.train(cfg)
    return run / "model"


def setting(text: str) -> tuple[str, Any]:
    """``--train epochs=8`` -> ("epochs", 8): a number when it reads as one."""
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def measure(model_dir: Path, dev: list[TextExample], test: list[TextExample]) -> dict[str, Any]:
    predictor = fieldtune.load(model_dir, backend="torch", batch_size=64)
    start = time.perf_counter()
    dev_pred, test_pred = predictor.predict_examples(dev), predictor.predict_examples(test)
    metrics = predictor.evaluate(test)
    result: dict[str, Any] = {
        "test_examples": len(test),
        "dev_examples": len(dev),
        "test_accuracy": metrics["accuracy"],
        "test_ece_uncalibrated": metrics["ece_uncalibrated"],
        "test_ece": metrics["ece"],
        "temperature": predictor.meta.get("state", {}).get("temperature_scaling"),
        "conformal": {},
    }
    for alpha in ALPHAS:
        state = fit_trust(AbstainConfig(conformal_alpha=alpha), predictor.task, dev, dev_pred)
        scores = trust_scores(predictor.task, state, test, test_pred)
        result["conformal"][str(alpha)] = {
            "target_coverage": 1 - alpha,
            "test_coverage": scores["conformal_coverage"],
            "mean_set_size": scores["mean_set_size"],
        }
    state = fit_trust(AbstainConfig(target_precision=TARGET_PRECISION), predictor.task, dev, dev_pred)
    result["abstain"] = {**state["abstain"], **trust_scores(predictor.task, state, test, test_pred)}
    result["eval_s"] = round(time.perf_counter() - start, 1)
    return result


def table(results: dict[str, Any]) -> str:
    lines = [
        "| dataset | test acc | ECE before | ECE after | conformal 90%: coverage / set size | 95%: | 80%: |"
        " abstain @ dev precision 0.95: test coverage / precision |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        c = r["conformal"]
        sets = [f"{c[a]['test_coverage']:.3f} / {c[a]['mean_set_size']:.2f}" for a in ("0.1", "0.05", "0.2")]
        a = r["abstain"]
        lines.append(
            f"| {name} | {r['test_accuracy']:.3f} | {r['test_ece_uncalibrated']:.3f} | {r['test_ece']:.3f} | "
            + " | ".join(sets)
            + f" | {a['abstain_coverage']:.3f} / {a['abstain_precision']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/calibration"))
    ap.add_argument("--datasets", default="banking77,clinc150")
    ap.add_argument("--model", action="append", default=[], help="DATASET=MODEL_DIR: use this model, train none")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument(
        "--train", action="append", default=[], type=setting, help="KEY=VALUE train setting (e.g. epochs=8), repeatable"
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    given = dict(m.split("=", 1) for m in args.model)
    results = {}
    for dataset in args.datasets.split(","):
        files, label = data_config(args.data, args.out, dataset, args.seed)
        model_dir = (
            Path(given[dataset])
            if dataset in given
            else train_model(args.out, dataset, files, args.seed, dict(args.train))
        )
        model_dir = model_dir / "model" if (model_dir / "model").is_dir() else model_dir
        test_label = "category" if dataset == "banking77" else label
        dev = read(Path(files["dev"]), label)
        results[dataset] = measure(model_dir, dev, read(Path(files["test"]), test_label))
        results[dataset]["model"] = str(model_dir)
        print(dataset, json.dumps(results[dataset]), flush=True)
    (args.out / "calibration.json").write_text(json.dumps(results, indent=2))
    (args.out / "calibration.md").write_text(table(results))
    print(table(results))


if __name__ == "__main__":
    main()

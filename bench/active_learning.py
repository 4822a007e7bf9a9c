#!/usr/bin/env python
"""Active learning on BANKING77: which texts to label next, each strategy against random sampling.

Start from --start labelled examples per intent (the same seeded set for every strategy), then in each
round: train a model on the labelled set (the same method and seed every round), score it on the full
test set, and let the strategy pick --round-size more texts from the rest of the training set (their
gold labels then join: a perfect annotator). The model (--method): ``frozen`` by default — minilm's
sentence embeddings, computed once for pool and test, and a logistic regression at C = 16 fitted in
seconds (fieldtune's ``setfit`` with ``setfit.body_epochs=0`` cross-validates C; its CV took up to 460 s
a round here); ``full`` runs ``fieldtune.train`` each round, fine-tuning minilm with a fixed --epochs /
--lr / --batch-size and no early stopping (dev = the labelled set itself) — a fixed 8 epochs are 177
steps at 354 labels, an underfit 77-way head (test accuracy 0.39 at both 154 and 354 labels in a first
run), and 55 such rounds do not fit a session on 2 cores. Strategies are
fieldtune's own (``fieldtune.active``: uncertainty, margin, entropy, diverse, random), run exactly as
``fieldtune suggest`` runs them; the pool's sentence embeddings (for diverse) are computed once.

Writes bench/results/active_learning/results.json (one curve per strategy, saved after every round: a
killed run resumes where it stopped) and bench/figures/active_learning.png (test accuracy vs labels).
The summary says, per strategy, how many labels it needed to reach random sampling's accuracy at
--target labels (2,000; interpolated between rounds).

    OMP_NUM_THREADS=2 python bench/active_learning.py --data ../shared/data/banking77
    OMP_NUM_THREADS=1 python bench/active_learning.py --data ../shared/data/banking77 --quick   # smoke run
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

import fieldtune  # noqa: E402
from fieldtune.active.scoring import STRATEGIES, scores  # noqa: E402
from fieldtune.active.select import select  # noqa: E402
from fieldtune.monitoring.text_features import embed  # noqa: E402
from fieldtune.predict import load_predictor  # noqa: E402

HERE = Path(__file__).resolve().parent
Row = tuple[str, str]  # (text, intent)
HEAD_C = 16.0  # BANKING77, untouched minilm, 8 per intent: test 0.828 / 0.836 / 0.836 / 0.835 at C 4 / 16 / 64 / 256
QUICK = {"intents": 8, "test_per_intent": 20, "round_size": 16, "rounds": 3, "epochs": 2}


def read_csv(path: Path) -> list[Row]:
    with open(path, newline="", encoding="utf-8") as f:
        return [(r["text"], r["category"]) for r in csv.DictReader(f)]


def write_csv(path: Path, rows: list[Row]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def prepare(args: argparse.Namespace) -> tuple[list[Row], list[Row], list[int]]:
    """(pool = the training set, test set, indices of the seeded start set: --start per intent)."""
    train, test = read_csv(args.data / "train.csv"), read_csv(args.data / "test.csv")
    if args.quick:
        keep = sorted({label for _, label in train})[: QUICK["intents"]]
        train = [r for r in train if r[1] in keep]
        by_label = defaultdict(list)
        for r in test:
            if r[1] in keep and len(by_label[r[1]]) < QUICK["test_per_intent"]:
                by_label[r[1]].append(r)
        test = [r for label in keep for r in by_label[label]]
    rng = random.Random(args.seed)
    per_label: dict[str, list[int]] = defaultdict(list)
    for i, (_, label) in enumerate(train):
        per_label[label].append(i)
    start = sorted(i for label in sorted(per_label) for i in rng.sample(per_label[label], args.start))
    return train, test, start


def train_round(rows: list[Row], test_file: Path, work: Path, args: argparse.Namespace) -> tuple[Path, float, float]:
    """Fine-tune on ``rows`` with the fixed budget; (model folder, test accuracy, seconds)."""
    train_file = write_csv(work / "labelled.csv", rows)
    config: dict[str, Any] = {
        "task": "classification",
        "model": "minilm",
        "data": {"train": str(train_file), "dev": str(train_file), "test": str(test_file)},
        "output": str(work / "run"),
        "train": {"seed": args.seed, "checkpoint": False},
    }
    config["method"] = "full"
    config["train"].update(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, patience=None)
    started = time.perf_counter()
    result = fieldtune.train(config, progress=False)
    return result.model_dir, float(result.metrics["test"]["accuracy"]), time.perf_counter() - started


def choose(model_dir: Path, pool: list[Row], rest: list[int], strategy: str, vectors: np.ndarray, args) -> list[int]:
    """The strategy's --round-size picks among the unlabelled ``rest`` (indices into the pool)."""
    predictor = load_predictor(model_dir, batch_size=64)
    examples = [predictor.task.from_text(pool[i][0]) for i in rest]
    predictions = predictor.predict_examples(examples) if strategy != "random" else [{"x": 1.0}] * len(rest)
    values = scores("classification", predictions, strategy)
    picked = select(values, args.round_size, strategy, args.seed, lambda idx: vectors[np.asarray(rest)[idx]])
    return [rest[i] for i in picked]


class FrozenHead:
    """--method frozen: the model of every round is a logistic regression (C = ``HEAD_C``) on minilm's
    sentence embeddings, which are computed once for the pool and the test set. It is what fieldtune's
    ``setfit`` method with ``setfit.body_epochs=0`` trains, less the cross-validation of C (9 values x 4
    folds: 250-460 s a round at 1,300-1,600 labels on the shared 2-core machine in a first run; a fit at
    one C takes seconds)."""

    def __init__(self, pool: list[Row], test: list[Row], vectors: np.ndarray) -> None:
        self.pool, self.vectors = pool, vectors
        self.labels = sorted({label for _, label in pool})
        self.test_vectors = embed([text for text, _ in test])
        self.test_gold = np.array([self.labels.index(label) for _, label in test])

    def train(self, labelled: list[int]) -> tuple[Any, float, float]:
        """(fitted head, test accuracy, seconds)."""
        from sklearn.linear_model import LogisticRegression

        started = time.perf_counter()
        y = np.array([self.labels.index(self.pool[i][1]) for i in labelled])
        head = LogisticRegression(C=HEAD_C, max_iter=1000).fit(self.vectors[labelled], y)
        guess = head.classes_[head.predict_proba(self.test_vectors).argmax(1)]
        return head, float((guess == self.test_gold).mean()), time.perf_counter() - started

    def choose(self, head: Any, rest: list[int], strategy: str, args: argparse.Namespace) -> list[int]:
        """As :func:`choose`, with the head's probabilities as the predictions (``{label: p}`` per text)."""
        probs = head.predict_proba(self.vectors[rest])
        names = [self.labels[c] for c in head.classes_]
        predictions = [dict(zip(names, row.tolist())) for row in probs]
        values = scores("classification", predictions, strategy)
        picked = select(values, args.round_size, strategy, args.seed, lambda idx: self.vectors[np.asarray(rest)[idx]])
        return [rest[i] for i in picked]


def run_strategy(name: str, state: dict[str, Any], pool, test_file, vectors, args, save, frozen=None) -> None:
    """Rounds of train -> score -> choose until a round has trained on --max-labels or more (resumes ``state``)."""
    labelled: list[int] = state.setdefault("labelled", list(state["start"]))
    curve: list[dict[str, Any]] = state.setdefault("curve", [])
    work = args.output / "work" / name
    while not state.get("done"):
        work.mkdir(parents=True, exist_ok=True)
        if frozen is not None:
            model, accuracy, train_s = frozen.train(labelled)
        else:
            model, accuracy, train_s = train_round([pool[i] for i in labelled], test_file, work, args)
        started = time.perf_counter()
        taken = set(labelled)
        rest = [i for i in range(len(pool)) if i not in taken]
        last = len(labelled) >= args.max_labels or not rest
        if last:
            new = []
        elif frozen is not None:
            new = frozen.choose(model, rest, name, args)
        else:
            new = choose(model, pool, rest, name, vectors, args)
        point = {"labelled": len(labelled), "accuracy": round(accuracy, 4), "train_s": round(train_s, 1)}
        point["select_s"] = round(time.perf_counter() - started, 1)
        curve.append(point)
        print(f"{name:12s} {point}", flush=True)
        labelled.extend(new)
        shutil.rmtree(work, ignore_errors=True)  # 88 MB a model: keep only the numbers
        state["done"] = last
        save()


def labels_to_reach(curve: list[dict[str, Any]], accuracy: float) -> float | None:
    """Labels at which ``curve`` first reaches ``accuracy`` (linear between rounds), None if never."""
    for before, after in zip([None, *curve], curve):
        if after["accuracy"] >= accuracy:
            if before is None or after["accuracy"] == before["accuracy"]:
                return float(after["labelled"])
            share = (accuracy - before["accuracy"]) / (after["accuracy"] - before["accuracy"])
            return before["labelled"] + share * (after["labelled"] - before["labelled"])
    return None


def accuracy_at(curve: list[dict[str, Any]], labelled: int) -> float | None:
    xs, ys = [p["labelled"] for p in curve], [p["accuracy"] for p in curve]
    if not xs or labelled > xs[-1]:
        return None
    return float(np.interp(labelled, xs, ys))


def summarise(results: dict[str, Any], target: int) -> dict[str, Any]:
    """Random's accuracy at ``target`` labels and how many labels each strategy needed for it."""
    random_curve = results["strategies"].get("random", {}).get("curve", [])
    goal = accuracy_at(random_curve, target)
    out: dict[str, Any] = {"random_accuracy_at_target": goal, "target_labels": target, "labels_needed": {}}
    for name, state in results["strategies"].items():
        out["labels_needed"][name] = None if goal is None else labels_to_reach(state.get("curve", []), goal)
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, state in results["strategies"].items():
        curve = state.get("curve", [])
        style = "--" if name == "random" else "-"
        ax.plot([p["labelled"] for p in curve], [p["accuracy"] for p in curve], style, marker="o", ms=3, label=name)
    ax.set_xlabel("labelled examples")
    ax.set_ylabel("test accuracy")
    how = {"frozen": "frozen encoder + logistic head", "full": "full fine-tuning"}[results["settings"]["method"]]
    ax.set_title(f"Active learning on BANKING77\n({results['settings']['pool']:,} pool, minilm, {how})", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="folder with BANKING77 train.csv and test.csv")
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated; random is the baseline")
    p.add_argument("--start", type=int, default=2, help="labelled examples per intent to start from")
    p.add_argument("--round-size", type=int, default=200)
    p.add_argument("--max-labels", type=int, default=2000, help="the last round trains on at least this many")
    p.add_argument("--target", type=int, default=2000, help="compare with random's accuracy at this many labels")
    p.add_argument(
        "--method",
        choices=("frozen", "full"),
        default="frozen",
        help="frozen: minilm's sentence embeddings (once) + a logistic regression at C=16 (fieldtune's setfit with "
        "setfit.body_epochs=0, C fixed): seconds a round; full: fieldtune.train fine-tuning each round with "
        "--epochs/--lr/--batch-size (a fixed 8 epochs underfits the first rounds: 177 steps for 354 labels)",
    )
    p.add_argument("--epochs", type=int, default=8, help="method full: the fixed budget of every round")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run: 8 intents, rounds of 16, 3 rounds, 2 epochs")
    p.add_argument("--output", type=Path, default=None, help="results folder (default bench/results/active_learning)")
    p.add_argument("--figure", type=Path, default=None, help="default bench/figures/active_learning.png")
    args = p.parse_args(argv)
    suffix = ("-quick" if args.quick else "") + ("-full" if args.method == "full" else "")
    args.output = args.output or HERE / "results" / f"active_learning{suffix}"
    args.figure = args.figure or HERE / "figures" / f"active_learning{suffix}.png"
    if args.quick:
        args.round_size, args.epochs = QUICK["round_size"], QUICK["epochs"]
        args.max_labels = args.start * QUICK["intents"] + QUICK["round_size"] * (QUICK["rounds"] - 1)
        args.target = args.max_labels
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pool, test, start = prepare(args)
    args.output.mkdir(parents=True, exist_ok=True)
    test_file = write_csv(args.output / "test.csv", test)
    path = args.output / "results.json"
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings.update(pool=len(pool), test=len(test), start_labels=len(start))
    results = json.loads(path.read_text()) if path.is_file() else {}
    if results.get("settings", {}).get("start_labels") not in (None, len(start)):
        sys.exit(f"{path} is from other settings: move it away to start again")
    results["settings"] = settings
    strategies = results.setdefault("strategies", {})

    def save() -> None:
        results["summary"] = summarise(results, args.target)
        path.write_text(json.dumps(results, indent=1))

    started = time.perf_counter()
    vectors = embed([text for text, _ in pool])  # once: diverse spreads each batch over these
    print(f"pool {len(pool)}, test {len(test)}, start {len(start)}; embedded in {time.perf_counter() - started:.0f} s")
    frozen = FrozenHead(pool, test, vectors) if args.method == "frozen" else None
    for name in [s.strip() for s in args.strategies.split(",") if s.strip()]:
        state = strategies.setdefault(name, {"start": start})
        run_strategy(name, state, pool, test_file, vectors, args, save, frozen)
    save()
    plot(results, args.figure)
    print(json.dumps(results["summary"], indent=1))
    print(f"total {time.perf_counter() - started:.0f} s; {path}, {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

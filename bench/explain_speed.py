"""Explanations on the shipped BANKING77 sample: how long one integrated-gradients explanation takes,
and whether the attributions are faithful.

Trains a classifier on the sample (``train.epochs`` explicit, default 1), then
  speed:         median wall time of ``explain(..., method="ig", steps=50)`` over 20 test queries
                 (one warm-up first), and of occlusion for reference;
  faithfulness:  comprehensiveness on every test text — delete the top-k attributed words (highest
                 scores) and k random words (seeded, averaged over draws); the mean drop of the
                 predicted label's probability, k = 1 and 3, for integrated gradients and occlusion.

    OMP_NUM_THREADS=1 .venv/bin/python bench/explain_speed.py
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import fieldtune
from fieldtune.explain import explain, load_for_explaining
from fieldtune.explain.text import label_probabilities

SAMPLE = Path(fieldtune.__file__).parent / "samples" / "banking77"


def train(output: Path, epochs: int) -> Path:
    config = {
        "task": "classification",
        "model": "minilm",
        "data": {"train": str(SAMPLE / "train.csv"), "test": str(SAMPLE / "test.csv")},
        "output": str(output),
        "train": {"epochs": epochs, "lr": 1e-4, "batch_size": 16, "seed": 42},
    }
    result = fieldtune.train(config, progress=False)
    print(f"trained {epochs} epoch(s): test accuracy {result.metrics['test']['accuracy']:.3f}")
    return result.output_dir


def timed_ms(predictor, texts: list[str], method: str, steps: int) -> float:
    explain(predictor, texts[0], method=method, steps=steps)  # warm-up: first-call allocations
    times = []
    for text in texts:
        start = time.perf_counter()
        explain(predictor, text, method=method, steps=steps)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def without(text: str, spans: list[tuple[int, int]]) -> str:
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + text[end:]
    return text


def comprehensiveness(predictor, texts: list[str], method: str, ks: tuple[int, ...], draws: int, seed: int) -> dict:
    """Mean drop of the predicted label's probability: top-k attributed words deleted vs k random ones."""
    rng = random.Random(seed)
    drops: dict[str, list[float]] = {f"top{k}": [] for k in ks} | {f"random{k}": [] for k in ks}
    for text in texts:
        result = explain(predictor, text, method=method)
        label, full, attrs = result["label"], result["score"], result["attributions"]
        ranked = sorted(attrs, key=lambda a: -a["score"])
        variants, keys = [], []
        for k in ks:
            variants.append(without(text, [(a["start"], a["end"]) for a in ranked[:k]]))
            keys.append(f"top{k}")
            for _ in range(draws):
                picked = rng.sample(attrs, min(k, len(attrs)))
                variants.append(without(text, [(a["start"], a["end"]) for a in picked]))
                keys.append(f"random{k}")
        for key, probs in zip(keys, label_probabilities(predictor, variants)):
            drops[key].append(full - probs[label])
    # random draws: the mean over draws per text, then over texts (each text weighs the same)
    out = {}
    for k in ks:
        out[f"top{k}"] = round(float(np.mean(drops[f"top{k}"])), 4)
        per_text = np.array(drops[f"random{k}"]).reshape(len(texts), draws).mean(1)
        out[f"random{k}"] = round(float(per_text.mean()), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--draws", type=int, default=5, help="random deletions per text and k")
    parser.add_argument("--model", type=Path, default=None, help="an existing run instead of training one")
    args = parser.parse_args()
    with open(SAMPLE / "test.csv", newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.model or train(Path(tmp) / "run", args.epochs)
        predictor = load_for_explaining(run_dir)
        words = [len(explain(predictor, t, method="occlusion")["attributions"]) for t in texts[: args.queries]]
        report = {
            "queries": args.queries,
            "mean_words": round(statistics.mean(words), 1),
            "ig_ms_median": round(timed_ms(predictor, texts[: args.queries], "ig", args.steps), 1),
            "occlusion_ms_median": round(timed_ms(predictor, texts[: args.queries], "occlusion", args.steps), 1),
            "texts": len(texts),
        }
        for method in ("ig", "occlusion"):
            report[f"comprehensiveness_{method}"] = comprehensiveness(predictor, texts, method, (1, 3), args.draws, 0)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

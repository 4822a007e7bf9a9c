"""bench/oos.py's comparison: logits and pooled embeddings of the trained models, every OOS method's
dev-chosen threshold, test metrics, the table and results.json (see bench/oos.py for the methods)."""

from __future__ import annotations

import json
import math
import platform
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import fieldtune
from fieldtune.evaluation.calibration import softmax
from fieldtune.evaluation.ood import (
    MahalanobisDetector,
    auroc,
    energy_score,
    max_prob_score,
    oos_metrics,
    rejection_metrics,
    threshold_for_in_scope_accuracy,
    threshold_for_recall,
)

Row = tuple[str, str]
OOS = "oos"
LAYERS = 4  # mahalanobis_layers: the last 4 layers' mean-pooled states, concatenated
TARGET_RECALL, TARGET_ACCURACY = 0.80, 0.90  # the target (test)
FALLBACK_DROP = 0.05  # target out of reach: give up at most 5 points of the classifier's own dev accuracy
EVAL_SPLITS = ("dev", "oos_dev", "test", "oos_test")


# --------------------------------------------------------------------------- features


@torch.no_grad()
def encode(model_dir: Path, texts: list[str], batch_size: int = 64) -> dict[str, np.ndarray]:
    """One forward pass over ``texts``: ``logits``, ``mean_last`` (mask-aware mean of the last hidden
    state), ``mean_layers`` (the last LAYERS layers' means side by side) and ``cls`` (the pooled [CLS]
    feature the classification head reads)."""
    predictor = fieldtune.load(model_dir, backend="torch")
    model, tok = predictor.artifact.model, predictor.artifact.tokenizer
    order = np.argsort([len(t) for t in texts])  # similar lengths per batch: little padding
    out: dict[str, list[np.ndarray]] = {"logits": [], "mean_last": [], "mean_layers": [], "cls": []}
    for start in range(0, len(texts), batch_size):
        batch = [texts[i] for i in order[start : start + batch_size]]
        enc = tok(batch, padding=True, truncation=True, max_length=predictor.max_length, return_tensors="pt")
        res = model(**enc, output_hidden_states=True)
        mask = enc["attention_mask"].unsqueeze(-1).float()
        means = [(h * mask).sum(1) / mask.sum(1) for h in res.hidden_states[-LAYERS:]]
        out["logits"].append(res.logits.float().numpy())
        out["mean_last"].append(means[-1].numpy())
        out["mean_layers"].append(torch.cat(means, dim=-1).numpy())
        out["cls"].append(model.bert.pooler(res.hidden_states[-1]).numpy())
    inverse = np.argsort(order)
    return {k: np.concatenate(v)[inverse] for k, v in out.items()}


def check_calibrated(model_dir: Path, texts: list[str], logits: np.ndarray, temperature: float) -> float:
    """Largest gap between softmax(logits / T) and the predictor's own top score on a few texts: the
    probabilities used here are the ones ``fieldtune.load(...).predict`` returns."""
    predictor = fieldtune.load(model_dir, backend="torch")
    scores = np.array([p["score"] for p in predictor.predict(texts[:32])])
    return float(np.abs(softmax(logits[:32], temperature).max(axis=1) - scores).max())


def features(run_dir: Path, splits: dict[str, list[Row]], names: tuple[str, ...], cache: Path) -> dict[str, Any]:
    """Encoded splits of one model, cached in ``cache`` (an .npz per split) so reruns skip the forward passes."""
    model_dir = run_dir / "model"
    feats: dict[str, Any] = {}
    for name in names:
        path = cache / f"{name}.npz"
        if not path.is_file():
            t0 = time.perf_counter()
            arrays = encode(model_dir, [t for t, _ in splits[name]])
            with path.open("wb") as f:
                np.savez(f, **arrays)
            print(f"[oos] encoded {name} ({len(splits[name])}) in {time.perf_counter() - t0:.0f}s", flush=True)
        with np.load(path) as arrays:
            feats[name] = dict(arrays)
    return feats


def variant_features(
    variant: str, run_dir: Path, splits: dict[str, list[Row]], out: Path, threads: int
) -> dict[str, Any]:
    """The encoded splits one variant needs: (a) also train (the Mahalanobis fit), (b) only dev and test."""
    torch.set_num_threads(threads)
    names = ("train", *EVAL_SPLITS) if variant == "a" else EVAL_SPLITS
    cache = out / "features" / run_dir.name
    cache.mkdir(parents=True, exist_ok=True)
    return features(run_dir, splits, names, cache)


# --------------------------------------------------------------------------- methods


def method_scores(feats: dict[str, Any], labels: list[str], meta: dict, splits: dict[str, list[Row]]) -> dict:
    """Model (a)'s scores per method and split (higher = more OOS), and whether each in-scope prediction
    is right."""
    temperature = meta["state"].get("temperature_scaling", 1.0)
    scores: dict[str, dict[str, np.ndarray]] = {"max_prob": {}, "energy": {}}
    for name in EVAL_SPLITS:
        logits = feats[name]["logits"]
        scores["max_prob"][name] = max_prob_score(softmax(logits, temperature))
        scores["energy"][name] = energy_score(logits)
    train_y = [y for _, y in splits["train"]]
    for method, key in (
        ("mahalanobis", "mean_last"),
        ("mahalanobis_cls", "cls"),
        ("mahalanobis_layers", "mean_layers"),
    ):
        det = MahalanobisDetector.fit(feats["train"][key], train_y)
        scores[method] = {name: det.score(feats[name][key]) for name in EVAL_SPLITS}
    correct = {name: _correct(feats[name]["logits"], labels, splits[name]) for name in ("dev", "test")}
    return {"scores": scores, "correct": correct, "temperature": temperature}


def _correct(logits: np.ndarray, labels: list[str], rows: list[Row]) -> np.ndarray:
    return np.array([labels[i] == y for i, (_, y) in zip(logits.argmax(axis=1), rows, strict=True)])


def oos_class_scores(feats: dict[str, Any], labels: list[str], meta: dict, splits: dict[str, list[Row]]) -> dict:
    """Model (b): rejected when the argmax is ``oos``; ranking score p(oos) (calibrated); in-scope
    correctness over the 151 classes; and ``combined``: the energy of the in-scope logits, with every
    argmax-oos query put above all of them (so a threshold can reject more than the oos class does)."""
    temperature = meta["state"].get("temperature_scaling", 1.0)
    k = labels.index(OOS)
    out: dict[str, Any] = {"rejected": {}, "p_oos": {}, "combined": {}}
    for name in EVAL_SPLITS:
        logits = feats[name]["logits"]
        is_oos = logits.argmax(axis=1) == k
        out["rejected"][name] = is_oos
        out["p_oos"][name] = softmax(logits, temperature)[:, k]
        energy = energy_score(np.delete(logits, k, axis=1))
        out["combined"][name] = np.where(is_oos, 1e6, energy)  # finite: roc_auc_score refuses inf
    out["correct"] = {name: _correct(feats[name]["logits"], labels, splits[name]) for name in ("dev", "test")}
    return out


def evaluate_scores(s: dict[str, np.ndarray], correct: dict[str, np.ndarray], target: float) -> dict[str, Any]:
    """One score method: the dev-chosen threshold (dev in-scope accuracy >= target), its dev and test
    metrics, and the test metrics at the threshold giving dev OOS recall 0.80 (the other operating point).

    When the classifier's own dev accuracy is below ``target`` no threshold reaches it; then the threshold
    keeps dev in-scope accuracy >= that accuracy - FALLBACK_DROP (a comparable point for every method,
    marked ``dev_target_met: false``) instead of rejecting nothing."""
    t = threshold_for_in_scope_accuracy(s["dev"], correct["dev"], target)
    met = math.isfinite(t)
    if not met:
        t = threshold_for_in_scope_accuracy(s["dev"], correct["dev"], correct["dev"].mean() - FALLBACK_DROP)
    t_recall = threshold_for_recall(s["oos_dev"], TARGET_RECALL)
    return {
        "threshold": t,
        "dev_target_met": met,
        "dev": oos_metrics(s["dev"], correct["dev"], s["oos_dev"], t),
        "test": oos_metrics(s["test"], correct["test"], s["oos_test"], t),
        "test_at_dev_recall_0.80": oos_metrics(s["test"], correct["test"], s["oos_test"], t_recall),
    }


def evaluate_oos_class(b: dict[str, Any]) -> dict[str, Any]:
    """Model (b)'s fixed rule (argmax == oos): no threshold; AUROC by p(oos)."""
    result: dict[str, Any] = {"threshold": None, "dev_target_met": None}
    for split, oos in (("dev", "oos_dev"), ("test", "oos_test")):
        m = rejection_metrics(b["rejected"][split], b["correct"][split], b["rejected"][oos])
        m["auroc"] = auroc(b["p_oos"][split], b["p_oos"][oos])
        result[split] = m
    return result


# --------------------------------------------------------------------------- report

LABELS = {
    "max_prob": "(a) 1 - calibrated max prob",
    "energy": "(a) energy (T=1)",
    "mahalanobis": "(a) Mahalanobis, mean-pooled last layer",
    "mahalanobis_cls": "(a) Mahalanobis, pooled [CLS] (head input)",
    "mahalanobis_layers": f"(a) Mahalanobis, last {LAYERS} layers' means concatenated",
    "oos_class": "(b) trained oos class (argmax = oos)",
    "oos_class_energy": "(b) oos class or energy of in-scope logits > t",
}


def table(results: dict[str, Any]) -> str:
    """The markdown table: test metrics at the dev-chosen threshold, plus the second operating point."""
    lines = [
        "| method | in-scope acc | OOS recall | OOS precision | AUROC | dev in-scope acc | "
        "test at dev OOS recall 0.80: acc / recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results["methods"].items():
        t, d = r["test"], r["dev"]
        met = "" if r["dev_target_met"] in (None, True) else " (fallback)"
        alt = r.get("test_at_dev_recall_0.80")
        alt_s = f"{alt['in_scope_accuracy']:.3f} / {alt['oos_recall']:.3f}" if alt else "-"
        lines.append(
            f"| {LABELS[name]} | {t['in_scope_accuracy']:.3f} | {t['oos_recall']:.3f} | {t['oos_precision']:.3f} | "
            f"{t['auroc']:.3f} | {d['in_scope_accuracy']:.3f}{met} | {alt_s} |"
        )
    return "\n".join(lines) + "\n"


def compare(runs: dict[str, Path], splits: dict[str, list[Row]], args: Namespace, train_s: float) -> dict:
    """Score every method on test + oos_test with dev-chosen thresholds; write results.json and table.md."""
    t0 = time.perf_counter()
    tag = runs["a"].name.removeprefix("a-")
    if args.target_accuracy != TARGET_ACCURACY:  # a second operating point: its own files
        tag += f"-acc{args.target_accuracy}"
    feats, meta, labels = {}, {}, {}
    for v in ("a", "b"):
        feats[v] = variant_features(v, runs[v], splits, args.out, args.threads)
        meta[v] = json.loads((runs[v] / "model" / "fieldtune.json").read_text())
        labels[v] = meta[v]["labels"]
    a = method_scores(feats["a"], labels["a"], meta["a"], splits)
    b = oos_class_scores(feats["b"], labels["b"], meta["b"], splits)
    methods = {name: evaluate_scores(s, a["correct"], args.target_accuracy) for name, s in a["scores"].items()}
    methods["oos_class"] = evaluate_oos_class(b)
    methods["oos_class_energy"] = evaluate_scores(b["combined"], b["correct"], args.target_accuracy)
    texts = [t for t, _ in splits["test"]]
    results = {
        "models": {v: str(runs[v]) for v in runs},
        "trained": {v: json.loads((runs[v] / "done.json").read_text()) for v in runs},
        "temperature": {"a": a["temperature"], "b": meta["b"]["state"].get("temperature_scaling", 1.0)},
        "calibration_check_max_gap": check_calibrated(
            runs["a"] / "model", texts, feats["a"]["test"]["logits"], a["temperature"]
        ),
        "closed_set_test_accuracy": {"a": float(a["correct"]["test"].mean()), "b": float(b["correct"]["test"].mean())},
        "threshold_rule": f"lowest threshold with dev in-scope accuracy >= {args.target_accuracy} "
        f"(reject score > threshold); out of reach: >= the closed-set dev accuracy - {FALLBACK_DROP}",
        "sizes": {k: len(v) for k, v in splits.items()},
        "train_limit": args.train_limit,
        "methods": methods,
        "target": {"oos_recall": TARGET_RECALL, "in_scope_accuracy": TARGET_ACCURACY},
        "met_by": [
            n
            for n, r in methods.items()
            if r["test"]["oos_recall"] >= TARGET_RECALL and r["test"]["in_scope_accuracy"] >= TARGET_ACCURACY
        ],
        "eval_s": round(time.perf_counter() - t0, 1),
        "script_s": round(train_s + time.perf_counter() - t0, 1),
        "env": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads},
    }
    (args.out / f"results-{tag}.json").write_text(json.dumps(results, indent=2))
    md = table(results)
    (args.out / f"table-{tag}.md").write_text(md)
    print(md, flush=True)
    print(f"[oos] met the target (test OOS recall >= 0.80 at in-scope acc >= 0.90): {results['met_by'] or 'none'}")
    return results

#!/usr/bin/env python
"""Support answer retrieval on BANKING77 (issue 15, target: recall@5 >= 0.95, fusion beating each side).

The knowledge base is the 77 answer templates of ``src/fieldtune/samples/support/templates.csv`` (one per
intent, our own text). The queries are BANKING77's 3,080 test questions; a query's gold item is its
intent's template. Side by side in one run, through :class:`fieldtune.apps.support.retrieval.Retriever`:

    bm25            BM25 over the template (title + answer)
    bm25+q          BM25 over the template and the train questions of its intent (document expansion)
    dense           minilm as it is (cosine)
    dense-ft        minilm fine-tuned on (train question -> its template) pairs with in-batch negatives
                    (biencoder.fine_tune, MultipleNegativesRankingLoss, 1 epoch, batch 32)
    hybrid(...)     reciprocal rank fusion (k = 60, top 50 of each) of one dense and one BM25
    hybrid-w(...)   the same with the dense side weighted: ``w / (60 + rank)``, w from {1, 1.5, 2, 3}
                    chosen by MRR on the dev questions

The last ``--dev-per-intent`` (10) train questions of every intent are held out as dev questions (for
the fusion weight only); fine-tuning and BM25's expansions use the rest.

Metrics: recall@1, recall@5, MRR (over the top 50: a gold item below is 0), and the latency of one
query at a time (p50 / p95 ms, 200 queries, query encoding included).

``--scale N`` adds the index-size measurement: N synthetic items (the templates' and test questions'
minilm embeddings tiled with noise and re-normalised; BM25 texts the train questions and templates
tiled), then one query at a time through the Retriever (bm25 / dense / hybrid), and the bare dense
search: numpy matrix product + argpartition against faiss ``IndexFlatIP`` (when faiss is importable),
one query and batches of 256, one thread each.

The fine-tuned encoder is cached in ``bench/results/support/biencoder-<tag>/`` (``--retrain`` redoes it);
results go to ``bench/results/support/retrieval[-<tag>].json`` and ``.md``.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python bench/support_retrieval.py --data ../shared/data --scale 100000
    # smoke (a few minutes): 10 train questions per intent, no scale
    OMP_NUM_THREADS=1 .venv/bin/python bench/support_retrieval.py --data ../shared/data --train-limit 10
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE.parent / "src" / "fieldtune" / "samples" / "support" / "templates.csv"
DEPTH = 50
LATENCY_QUERIES = 200
WEIGHTS = (1.0, 1.5, 2.0, 3.0)  # the dense side's RRF weight, picked on dev
SEED = 13


def read_rows(path: Path) -> list[tuple[str, str]]:
    """(text, category) rows of a BANKING77 CSV."""
    with path.open(encoding="utf-8", newline="") as f:
        return [(r["text"], r["category"]) for r in csv.DictReader(f)]


def per_intent(rows: list[tuple[str, str]], limit: int | None) -> list[tuple[str, str]]:
    """The first ``limit`` rows of every intent (all when None)."""
    if not limit:
        return rows
    seen: dict[str, int] = defaultdict(int)
    out = []
    for text, intent in rows:
        if seen[intent] < limit:
            seen[intent] += 1
            out.append((text, intent))
    return out


def split_dev(rows: list[tuple[str, str]], per_intent_dev: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(the rest, dev): the last ``per_intent_dev`` rows of every intent in file order are dev."""
    count: dict[str, int] = defaultdict(int)
    for _, intent in rows:
        count[intent] += 1
    seen: dict[str, int] = defaultdict(int)
    rest, dev = [], []
    for text, intent in rows:
        seen[intent] += 1
        (dev if seen[intent] > count[intent] - per_intent_dev else rest).append((text, intent))
    return rest, dev


def pick_weight(retriever: Any, queries: list[str], gold: list[str]) -> float:
    """The dense RRF weight of :data:`WEIGHTS` with the best MRR on ``queries`` (the smaller on a tie)."""
    best, best_mrr = 1.0, -1.0
    for weight in WEIGHTS:
        retriever.dense_weight = weight
        mrr = scores(retriever.search_many(queries, DEPTH, "hybrid"), gold)["mrr"]
        if mrr > best_mrr + 1e-9:
            best, best_mrr = weight, mrr
    retriever.dense_weight = 1.0
    return best


def scores(results: list[list[Any]], gold: list[str]) -> dict[str, float]:
    """recall@1, recall@5 and MRR of ranked hits against one gold id per query."""
    ranks = [next((r for r, h in enumerate(hits, 1) if h.id == g), None) for hits, g in zip(results, gold)]
    n = len(ranks)
    return {
        "recall@1": sum(r == 1 for r in ranks) / n,
        "recall@5": sum(r is not None and r <= 5 for r in ranks) / n,
        "mrr": sum(1 / r for r in ranks if r) / n,
    }


def latency(retriever: Any, queries: list[str], mode: str, n: int = LATENCY_QUERIES) -> dict[str, float]:
    """p50 / p95 ms of one ``search`` call (k = 5) over the first ``n`` queries, after one warm-up."""
    retriever.search(queries[0], 5, mode)
    times = []
    for q in queries[:n]:
        start = time.perf_counter()
        retriever.search(q, 5, mode)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"p50_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))]}


def fine_tuned(out: Path, pairs: list[tuple[str, str]], epochs: int, retrain: bool) -> tuple[Path, float | None]:
    """The cached fine-tuned encoder folder (trained now if missing) and the training seconds (None: cached)."""
    from fieldtune.apps.support.biencoder import fine_tune

    if (out / "config.json").is_file() and not retrain:
        return out, None
    print(f"fine-tuning minilm on {len(pairs)} pairs, {epochs} epoch(s) ...", flush=True)
    start = time.perf_counter()
    fine_tune(pairs, out, epochs=epochs, seed=SEED)
    return out, time.perf_counter() - start


def run_quality(args: argparse.Namespace, out: Path, tag: str) -> tuple[dict[str, Any], Any, list[str]]:
    """Every contender on the test questions; returns (results, the minilm Retriever, test queries)."""
    from fieldtune.apps.support.kb import kb_texts, load_templates
    from fieldtune.apps.support.retrieval import Retriever
    from fieldtune.models.embedder import load_sentence_encoder

    templates = load_templates(args.templates)
    ids, kinds, texts = kb_texts(templates, [])
    by_intent = {t.intent: t for t in templates}
    train, dev = split_dev(read_rows(args.data / "banking77" / "train.csv"), args.dev_per_intent)
    train = per_intent(train, args.train_limit)
    test = read_rows(args.data / "banking77" / "test.csv")
    queries, gold = [q for q, _ in test], [by_intent[c].id for _, c in test]
    text_of = dict(zip(ids, texts))
    pairs = [(q, text_of[by_intent[c].id]) for q, c in train]
    expansions: dict[str, list[str]] = defaultdict(list)
    for q, c in train:
        expansions[by_intent[c].id].append(q)
    ft_path, ft_seconds = fine_tuned(out / f"biencoder-{tag}", pairs, args.epochs, args.retrain)

    results: dict[str, Any] = {}
    retrievers: dict[str, Any] = {}
    for name, model in (("dense", "minilm"), ("dense-ft", str(ft_path))):
        encoder = load_sentence_encoder(model)
        plain = Retriever(ids, kinds, texts, encoder)
        retrievers[name] = plain
        retrievers[name + "+q"] = Retriever(ids, kinds, texts, encoder, plain.embeddings, expansions=expansions)
    dev_queries, dev_gold = [q for q, _ in dev], [by_intent[c].id for _, c in dev]
    fused = {
        "dense": "dense, bm25",
        "dense-ft": "dense-ft, bm25",
        "dense+q": "dense, bm25+q",
        "dense-ft+q": "dense-ft, bm25+q",
    }
    weights = {name: pick_weight(retrievers[name], dev_queries, dev_gold) for name in fused} if dev else {}
    runs = [("bm25", "dense", "bm25", 1.0), ("bm25+q", "dense+q", "bm25", 1.0)]
    runs += [("dense", "dense", "dense", 1.0), ("dense-ft", "dense-ft", "dense", 1.0)]
    runs += [(f"hybrid({label})", name, "hybrid", 1.0) for name, label in fused.items()]
    runs += [
        (f"hybrid-w({label}) w={weights[name]:g}", name, "hybrid", weights[name])
        for name, label in fused.items()
        if weights
    ]
    for label, which, mode, weight in runs:
        retrievers[which].dense_weight = weight
        start = time.perf_counter()
        found = retrievers[which].search_many(queries, DEPTH, mode)
        row = {**scores(found, gold), "batch_s": time.perf_counter() - start}
        row.update(latency(retrievers[which], queries, mode))
        results[label] = row
        print(f"{label:36s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    meta = {
        "templates": len(ids),
        "test_queries": len(queries),
        "train_pairs": len(pairs),
        "dev_queries": len(dev),
        "dense_weights_picked_on_dev": weights,
        "train_limit_per_intent": args.train_limit,
        "epochs": args.epochs,
        "fine_tune_s": ft_seconds,
        "threads": os.environ.get("OMP_NUM_THREADS"),
    }
    return {"meta": meta, "results": results}, retrievers["dense"], queries


def run_scale(n: int, base: Any, queries: list[str], texts: list[str]) -> dict[str, Any]:
    """Search cost at ``n`` items: the Retriever per mode, and numpy vs faiss on the bare vectors."""
    from fieldtune.apps.support.retrieval import Retriever, top_k

    rng = np.random.default_rng(SEED)
    seeds = np.vstack([base.embeddings, _embed(base.encoder, queries)])
    vectors = seeds[np.arange(n) % len(seeds)] + rng.normal(0, 0.05, (n, seeds.shape[1])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors.astype(np.float32)
    big_texts = [texts[i % len(texts)] for i in range(n)]
    start = time.perf_counter()
    big = Retriever([f"s{i}" for i in range(n)], ["passage"] * n, big_texts, base.encoder, vectors)
    out: dict[str, Any] = {"items": n, "build_s (bm25 index)": time.perf_counter() - start}
    for mode in ("bm25", "dense", "hybrid"):
        out[f"retriever_{mode}"] = latency(big, queries, mode, 100)
    q = _embed(base.encoder, queries[:256])
    out["numpy_1"] = _per_query(lambda v: top_k((v @ vectors.T)[0], DEPTH), q[:100], 1)
    out["numpy_256"] = _per_query(lambda v: [top_k(r, DEPTH) for r in v @ vectors.T], q, 256)
    try:
        import faiss
    except ImportError:
        out["faiss"] = "not installed"
        return out
    faiss.omp_set_num_threads(1)  # the same one core as numpy under OMP_NUM_THREADS=1
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    out["faiss_1"] = _per_query(lambda v: index.search(v, DEPTH), q[:100], 1)
    out["faiss_256"] = _per_query(lambda v: index.search(v, DEPTH), q, 256)
    out["faiss_version"] = faiss.__version__
    return out


def _embed(encoder: Any, texts: list[str]) -> np.ndarray:
    """Unit-length float32 embeddings, as the Retriever makes them."""
    vectors = encoder.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _per_query(search: Any, vectors: np.ndarray, batch: int) -> dict[str, float]:
    """Median and p95 ms per query of ``search`` over ``vectors`` in batches of ``batch``."""
    search(vectors[:batch])  # warm-up
    times = []
    for start in range(0, len(vectors), batch):
        chunk = vectors[start : start + batch]
        t0 = time.perf_counter()
        search(chunk)
        times.append((time.perf_counter() - t0) * 1000 / len(chunk))
    times.sort()
    return {"p50_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))]}


def write_report(report: dict[str, Any], path: Path) -> None:
    """The results as JSON and a Markdown table."""
    path.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    meta = report["meta"]
    lines = [
        "# Support retrieval on BANKING77",
        "",
        f"{meta['templates']} templates, {meta['test_queries']} test questions; fine-tuned on "
        f"{meta['train_pairs']} train pairs ({meta['dev_queries']} held out as dev), {meta['epochs']} epoch(s)"
        + (f" in {meta['fine_tune_s']:.0f} s" if meta["fine_tune_s"] else " (cached model)")
        + f"; OMP_NUM_THREADS={meta['threads']}.",
        "",
        "| retriever | recall@1 | recall@5 | MRR | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in report["results"].items():
        lines.append(
            f"| {name} | {r['recall@1']:.3f} | {r['recall@5']:.3f} | {r['mrr']:.3f} "
            f"| {r['p50_ms']:.1f} | {r['p95_ms']:.1f} |"
        )
    if "scale" in report:
        lines += ["", f"## Search at {report['scale']['items']:,} items (ms per query)", "", "```"]
        lines += [json.dumps(report["scale"], indent=2), "```"]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder holding banking77/{train,test}.csv")
    parser.add_argument("--templates", type=Path, default=TEMPLATES)
    parser.add_argument("--train-limit", type=int, default=None, help="train questions per intent (default all)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--dev-per-intent", type=int, default=10, help="train questions per intent held out as dev")
    parser.add_argument("--scale", type=int, default=0, help="also measure search at this many items")
    parser.add_argument("--retrain", action="store_true", help="fine-tune again even when cached")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "support")
    args = parser.parse_args(argv)
    tag = "full" if not args.train_limit and args.epochs == 1 else f"limit{args.train_limit or 'all'}-e{args.epochs}"
    args.out.mkdir(parents=True, exist_ok=True)
    report, base, queries = run_quality(args, args.out, tag)
    if args.scale:
        texts = [q for q, _ in read_rows(args.data / "banking77" / "train.csv")]
        report["scale"] = run_scale(args.scale, base, queries, texts)
        print(json.dumps(report["scale"], indent=2))
    name = "retrieval" if tag == "full" else f"retrieval-{tag}"
    write_report(report, args.out / name)
    print(f"wrote {args.out / name}.json and .md", file=sys.stderr)


if __name__ == "__main__":
    main()

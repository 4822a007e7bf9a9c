"""`fieldtune watch` benchmark: sentiment accuracy, and items scored + stored per second vs per-item pipelines.

    OMP_NUM_THREADS=2 .venv/bin/python bench/watch.py --data ../shared/data --items 50000

1. Sentiment: `minilm`, full fine-tuning with the automatic budget on Financial PhraseBank
   AllAgree (seeded stratified 70/10/20 split, as in bench/adaptation.py); test accuracy.
2. NER: `minilm` on 2,000 seeded CoNLL-2003 training sentences (organisation mentions).
3. Both exported to ONNX int8 (`fieldtune export --int8`, parity-checked).
4. Throughput: ``--items`` synthetic headlines (`fieldtune.apps.watch.synthetic.stream` over a month,
   300 fictional companies, all on the watch list, 10% syndicated copies) ingested into a fresh SQLite
   database by the watch pipeline —
   validate, store, score (sentiment + topics by example phrases + entities + NER + embeddings for
   de-duplication), collapse copies, save — timed end to end: items per second. The same on torch.
5. Baseline in the same run: the same models called per item through `transformers.pipeline`
   (text-classification + token-classification) and sentence-transformers `encode`, on the first
   ``--baseline-items`` items (per-item calls are slow; the rate is what is compared).

Models are cached in --out between runs (delete the folder to retrain). Results: watch.json + watch.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from adaptation import read_phrasebank, split_70_10_20, write_csv  # noqa: E402
from conll2003 import read_conll  # noqa: E402
from defaults_data import sentences, write_conll  # noqa: E402

from fieldtune import train  # noqa: E402
from fieldtune.apps.watch.config import load_watch_config  # noqa: E402
from fieldtune.apps.watch.demo import TOPICS  # noqa: E402
from fieldtune.apps.watch.items import parse_item  # noqa: E402
from fieldtune.apps.watch.pipeline import ingest  # noqa: E402
from fieldtune.apps.watch.scoring import Scorer  # noqa: E402
from fieldtune.apps.watch.synthetic import stream  # noqa: E402
from fieldtune.export import export_onnx  # noqa: E402
from fieldtune.store.watch_store import WatchStore  # noqa: E402


def model(out: Path, name: str, config: dict) -> Path:
    """Train once; later runs reuse the saved model folder."""
    model_dir = out / name / "model"
    if not (model_dir / "fieldtune.json").exists():
        train({**config, "output": str(out / name)})
    if not any(model_dir.glob("*int8*.onnx")):
        export_onnx(model_dir, int8=True)
    return model_dir


def sentiment_model(data: Path, out: Path, seed: int) -> tuple[Path, float]:
    tr, dev, test = split_70_10_20(read_phrasebank(data / "financial_phrasebank" / "Sentences_AllAgree.txt"), seed)
    files = {
        s: write_csv(out / "phrasebank" / f"{s}.csv", rows) for s, rows in (("train", tr), ("dev", dev), ("test", test))
    }
    cfg = {
        "task": "classification",
        "model": "minilm",
        "data": {k: str(v) for k, v in files.items()},
        "train": {"seed": seed},
    }
    model_dir = model(out, "sentiment", cfg)
    metrics = json.loads((model_dir.parent / "metrics.json").read_text())
    return model_dir, metrics["test"]["accuracy"]


def ner_model(data: Path, out: Path, seed: int) -> Path:
    folder = data / "conll2003"
    tr = write_conll(out / "conll" / "train.txt", sentences(read_conll(folder / "train.txt"), 2000, seed))
    dev = write_conll(out / "conll" / "dev.txt", sentences(read_conll(folder / "valid.txt"), 500, seed))
    return model(
        out,
        "ner",
        {"task": "ner", "model": "minilm", "data": {"train": str(tr), "dev": str(dev)}, "train": {"seed": seed}},
    )


PREFIXES = "Apex Birch Cobalt Delta Ember Falcon Granite Harbor Iris Juniper Kestrel Lumen Meridian Nova Onyx".split()
PREFIXES += (
    "Pinnacle Quartz Redwood Summit Tidal Umber Vertex Willow Xenon Yarrow Zephyr Atlas Boreal Cedar Dune".split()
)
SUFFIXES = "Bank Energy Motors Airlines Pharma Retail Mining Telecom Insurance Capital".split()
MANY = {f"{p} {s}": [] for p in PREFIXES for s in SUFFIXES}  # 300 companies, the name as the only alias


def pipeline_rate(out: Path, sentiment: Path, ner: Path, items: list[dict], backend: str) -> float:
    folder = out / f"run-{backend}"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("watch.db*"):
        old.unlink()
    cfg = load_watch_config(
        {
            "sentiment": str(sentiment.resolve()),
            "ner": str(ner.resolve()),
            "topics": TOPICS,
            "entities": MANY,
            "backend": backend,
        },
        base_dir=folder,
    )
    scorer, store = Scorer.from_config(cfg), WatchStore(cfg.db)
    parsed = [parse_item(obj, f"item {i}") for i, obj in enumerate(items)]
    start = time.perf_counter()
    report = ingest(cfg, store, scorer, parsed, detect=False)
    wall = time.perf_counter() - start
    assert report.stored == len(items) and not report.rejected, report.as_dict()
    print(f"  {backend}: {len(items)} items in {wall:.1f} s ({report.duplicates} copies)", flush=True)
    return len(items) / wall


def baseline_rate(sentiment: Path, ner: Path, items: list[dict]) -> float:
    """Per-item Hugging Face pipelines (the way most tutorials score a stream)."""
    from sentence_transformers import SentenceTransformer
    from transformers import pipeline

    from fieldtune.models.embedder import load_sentence_encoder

    classify = pipeline("text-classification", model=str(sentiment), top_k=None)
    tag = pipeline("token-classification", model=str(ner), aggregation_strategy="simple")
    embed: SentenceTransformer = load_sentence_encoder("minilm")
    start = time.perf_counter()
    for obj in items:
        classify(obj["title"])
        tag(obj["title"])
        embed.encode(obj["title"])
    return len(items) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/watch"))
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--baseline-items", type=int, default=1_000)
    ap.add_argument("--backends", default="onnx-int8,torch")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--models-only", action="store_true", help="train + export the models, measure nothing")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sentiment, accuracy = sentiment_model(args.data, args.out, args.seed)
    ner = ner_model(args.data, args.out, args.seed)
    print(f"sentiment test accuracy (PhraseBank AllAgree): {accuracy:.3f}", flush=True)
    if args.models_only:
        return
    per_hour = max(6.0, args.items / (24 * 30))  # a month of news
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    items = list(stream(start, 24 * 31, per_hour=per_hour, seed=args.seed, companies=MANY))
    items = items[: args.items]
    rates = {b: pipeline_rate(args.out, sentiment, ner, items, b) for b in args.backends.split(",")}
    rates["per-item transformers.pipeline"] = baseline_rate(sentiment, ner, items[: args.baseline_items])
    base = rates["per-item transformers.pipeline"]
    result = {
        "items": len(items),
        "sentiment_accuracy": accuracy,
        "items_per_s": rates,
        "speedup": {k: v / base for k, v in rates.items()},
    }
    (args.out / "watch.json").write_text(json.dumps(result, indent=2))
    lines = ["| pipeline | items/s | × per-item pipelines |", "|---|---:|---:|"]
    lines += [f"| {k} | {v:.0f} | {v / base:.1f}× |" for k, v in rates.items()]
    (args.out / "watch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""`fieldtune watch` benchmark: sentiment accuracy, and items scored + stored per second vs per-item pipelines.

    OMP_NUM_THREADS=2 .venv/bin/python bench/watch.py --data ../shared/data --items 50000

Two ways to train the watch's models, side by side:
- ``full``: full fine-tuning; each headline then runs three int8 encoders (sentiment, NER, title
  encoder for topics and de-duplication);
- ``freeze``: ``method: freeze`` with the bottom ``--freeze-sentiment`` / ``--freeze-ner`` layers kept
  as ``minilm``'s; the watch then runs them and the title encoder as one int8 graph
  (`fieldtune.apps.watch.shared`), the shared layers once.

1. Sentiment: `minilm` on Financial PhraseBank AllAgree (seeded stratified 70/10/20 split, as in
   bench/adaptation.py), automatic budget; test accuracy of the PyTorch model, and of the int8 path
   the watch runs (scored through `Scorer`, as ingest does).
2. NER: `minilm` on 2,000 seeded CoNLL-2003 training sentences; dev entity F1.
3. Both exported to ONNX int8 (`fieldtune export --int8`, parity-checked).
4. Throughput: ``--items`` synthetic headlines (`fieldtune.apps.watch.synthetic.stream` over a month,
   300 fictional companies, all on the watch list, 10% syndicated copies) ingested into a fresh SQLite
   database by the watch pipeline —
   validate, store, score (sentiment + topics by example phrases + entities + NER + embeddings for
   de-duplication), collapse copies, save — timed end to end: items per second.
5. Baseline in the same run: the full models called per item through `transformers.pipeline`
   (text-classification + token-classification) and sentence-transformers `encode`, on the first
   ``--baseline-items`` items (per-item calls are slow; the rate is what is compared).

Models are cached in --out between runs (delete the folder to retrain). Results: watch.json + watch.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

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
    if not any(model_dir.glob("*int8*.onnx")) and not (model_dir / "onnx" / "model.int8.onnx").exists():
        export_onnx(model_dir, int8=True)
    return model_dir


def method(freeze: int) -> dict:
    return {"method": "freeze", "freeze_layers": freeze} if freeze else {}


def phrasebank(data: Path, out: Path, seed: int) -> dict[str, Path]:
    tr, dev, test = split_70_10_20(read_phrasebank(data / "financial_phrasebank" / "Sentences_AllAgree.txt"), seed)
    return {
        s: write_csv(out / "phrasebank" / f"{s}.csv", rows) for s, rows in (("train", tr), ("dev", dev), ("test", test))
    }


def sentiment_model(files: dict[str, Path], out: Path, seed: int, freeze: int) -> tuple[Path, float]:
    cfg = {
        "task": "classification",
        "model": "minilm",
        "data": {k: str(v) for k, v in files.items()},
        "train": {"seed": seed},
        **method(freeze),
    }
    model_dir = model(out, f"sentiment-freeze{freeze}" if freeze else "sentiment", cfg)
    metrics = json.loads((model_dir.parent / "metrics.json").read_text())
    return model_dir, metrics["test"]["accuracy"]


def ner_model(data: Path, out: Path, seed: int, freeze: int, epochs: int | None) -> tuple[Path, float]:
    folder = data / "conll2003"
    tr = write_conll(out / "conll" / "train.txt", sentences(read_conll(folder / "train.txt"), 2000, seed))
    dev = write_conll(out / "conll" / "dev.txt", sentences(read_conll(folder / "valid.txt"), 500, seed))
    budget = {"epochs": epochs} if epochs and freeze else {}
    name = f"ner-freeze{freeze}" + (f"-e{epochs}" if budget else "") if freeze else "ner"
    cfg = {
        "task": "ner",
        "model": "minilm",
        "data": {"train": str(tr), "dev": str(dev)},
        "train": {"seed": seed, **budget},
    }
    model_dir = model(out, name, {**cfg, **method(freeze)})
    return model_dir, json.loads((model_dir.parent / "metrics.json").read_text())["dev"]["f1"]


def watch_config(folder: Path, sentiment: Path, ner: Path, backend: str) -> Any:
    return load_watch_config(
        {
            "sentiment": str(sentiment.resolve()),
            "ner": str(ner.resolve()),
            "topics": TOPICS,
            "entities": MANY,
            "backend": backend,
        },
        base_dir=folder,
    )


def int8_accuracy(out: Path, sentiment: Path, ner: Path, test: Path) -> tuple[float, str]:
    """Test accuracy of the sentiment the watch stores (int8, shared graph when the models share layers)."""
    with test.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    scorer = Scorer.from_config(watch_config(out, sentiment, ner, "onnx-int8"))
    items = [SimpleNamespace(id=str(i), title=r["text"], text="") for i, r in enumerate(rows)]
    scores = [s for start in range(0, len(items), 256) for s in scorer.score(items[start : start + 256])]
    right = sum(s["sentiment"] == r["label"].strip().lower() for s, r in zip(scores, rows))
    return right / len(rows), "shared graph" if scorer.shared is not None else "separate passes"


PREFIXES = "Apex Birch Cobalt Delta Ember Falcon Granite Harbor Iris Juniper Kestrel Lumen Meridian Nova Onyx".split()
PREFIXES += (
    "Pinnacle Quartz Redwood Summit Tidal Umber Vertex Willow Xenon Yarrow Zephyr Atlas Boreal Cedar Dune".split()
)
SUFFIXES = "Bank Energy Motors Airlines Pharma Retail Mining Telecom Insurance Capital".split()
MANY = {f"{p} {s}": [] for p in PREFIXES for s in SUFFIXES}  # 300 companies, the name as the only alias


def pipeline_rate(out: Path, sentiment: Path, ner: Path, items: list[dict], label: str) -> float:
    folder = out / f"run-{label}"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("watch.db*"):
        old.unlink()
    cfg = watch_config(folder, sentiment, ner, "onnx-int8")
    scorer, store = Scorer.from_config(cfg), WatchStore(cfg.db)
    parsed = [parse_item(obj, f"item {i}") for i, obj in enumerate(items)]
    start = time.perf_counter()
    report = ingest(cfg, store, scorer, parsed, detect=False)
    wall = time.perf_counter() - start
    assert report.stored == len(items) and not report.rejected, report.as_dict()
    print(f"  {label}: {len(items)} items in {wall:.1f} s ({report.duplicates} copies)", flush=True)
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
    ap.add_argument("--freeze-sentiment", type=int, default=4, help="frozen bottom layers of the freeze variant")
    ap.add_argument("--freeze-ner", type=int, default=3)
    ap.add_argument("--ner-epochs", type=int, default=8, help="NER epochs of the freeze variant (0: automatic)")
    ap.add_argument("--variants", default="full,freeze")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--models-only", action="store_true", help="train + export the models, measure nothing")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    files = phrasebank(args.data, args.out, args.seed)
    variants, result = args.variants.split(","), {"items": 0, "models": {}, "items_per_s": {}}
    models = {}
    for variant in variants:
        frozen = variant == "freeze"
        sentiment, accuracy = sentiment_model(files, args.out, args.seed, args.freeze_sentiment if frozen else 0)
        ner, f1 = ner_model(args.data, args.out, args.seed, args.freeze_ner if frozen else 0, args.ner_epochs)
        int8, path = int8_accuracy(args.out, sentiment, ner, files["test"])
        models[variant] = (sentiment, ner)
        result["models"][variant] = {
            "sentiment_test_accuracy": accuracy,
            "sentiment_test_accuracy_int8_watch": int8,
            "watch_path": path,
            "ner_dev_f1": f1,
        }
        print(f"{variant}: sentiment test accuracy {accuracy:.3f} (int8 as the watch runs it, {path}: {int8:.3f}), "
              f"NER dev F1 {f1:.3f}", flush=True)  # fmt: skip
    if args.models_only:
        return
    per_hour = max(6.0, args.items / (24 * 30))  # a month of news
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    items = list(stream(start, 24 * 31, per_hour=per_hour, seed=args.seed, companies=MANY))[: args.items]
    result["items"] = len(items)
    rates = result["items_per_s"]
    for variant, (sentiment, ner) in models.items():
        rates[f"watch int8, {variant} ({result['models'][variant]['watch_path']})"] = pipeline_rate(
            args.out, sentiment, ner, items, variant
        )
    full = models.get("full") or next(iter(models.values()))
    rates["per-item transformers.pipeline"] = baseline_rate(*full, items[: args.baseline_items])
    base = rates["per-item transformers.pipeline"]
    result["speedup"] = {k: v / base for k, v in rates.items()}
    (args.out / "watch.json").write_text(json.dumps(result, indent=2))
    lines = ["| pipeline | items/s | × per-item pipelines |", "|---|---:|---:|"]
    lines += [f"| {k} | {v:.0f} | {v / base:.1f}× |" for k, v in rates.items()]
    (args.out / "watch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

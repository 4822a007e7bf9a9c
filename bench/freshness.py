#!/usr/bin/env python
"""The keep-it-fresh loop end to end on BANKING77, with a simulated shift in what customers ask.

1. A champion is trained on ``--old`` intents and served from the registry (the real FastAPI app,
   in process, with prediction logging and hot reload).
2. Phase "before": traffic like the training data -> `check_drift` should stay quiet.
3. Phase "shift": ``--new`` intents the model never saw make up half the traffic -> drift alarms.
4. Agents correct the shifted traffic: old-intent mistakes through ``POST /v1/feedback``; the
   new intents, which the API refuses as unknown labels, through ``feedback import --allow-new-labels``.
5. ``retrain`` builds a challenger (rehearsal + feedback), compares it with the champion on the
   frozen holdout and the feedback holdout, and promotes it; the server hot-reloads it.
6. Accuracy on the new distribution (official test rows of old + new intents), through the server,
   before and after; drift on fresh shifted traffic with the new champion.

    python bench/freshness.py --data ../shared/data/banking77            # 20 old + 5 new intents
    python bench/freshness.py --data src/fieldtune/samples/banking77 --old 9 --new 3   # shipped sample
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402

import fieldtune  # noqa: E402
from fieldtune.config import DataConfig  # noqa: E402
from fieldtune.monitoring.drift import check_drift  # noqa: E402
from fieldtune.monitoring.feedback import import_feedback  # noqa: E402
from fieldtune.monitoring.report import write_report  # noqa: E402
from fieldtune.monitoring.retrain import Policy, retrain  # noqa: E402
from fieldtune.serving import create_app  # noqa: E402
from fieldtune.store import Store  # noqa: E402
from fieldtune.store.registry import promote, register_model  # noqa: E402


def read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return [{"text": r["text"], "category": r["category"]} for r in csv.DictReader(f)]


def write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def plan(args) -> dict:
    """Seeded choice of old/new intents and of who goes where (train, dev, traffic, test)."""
    rng = random.Random(args.seed)
    train, test = read(args.data / "train.csv"), read(args.data / "test.csv")
    by = defaultdict(list)
    for r in train:
        by[r["category"]].append(r)
    intents = sorted(by)
    rng.shuffle(intents)
    new, old = intents[: args.new], intents[args.new : args.new + args.old]
    parts = {"train": [], "dev": [], "traffic_old": [], "traffic_new": []}
    for intent in old + new:
        rows = by[intent][:]
        rng.shuffle(rows)
        if intent in old:
            parts["train"] += rows[: args.per_intent]
            parts["dev"] += rows[args.per_intent : args.per_intent + args.dev_per_intent]
            parts["traffic_old"] += rows[args.per_intent + args.dev_per_intent :]
        else:
            parts["traffic_new"] += rows
    for key in ("traffic_old", "traffic_new"):
        rng.shuffle(parts[key])
    parts["frozen"] = [r for r in test if r["category"] in old]
    parts["new_world"] = [r for r in test if r["category"] in old + new]
    return {"old": old, "new": new, **parts}


@contextlib.asynccontextmanager
async def serving(app):
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fieldtune", timeout=120) as client:
            yield client


async def predict(client, rows: list[dict], batch: int = 16) -> list[dict]:
    """Send the texts (``batch`` per request, 4 requests in flight); returns one record per row."""
    out: list[dict] = []
    chunks = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    sem = asyncio.Semaphore(4)

    async def one(chunk):
        async with sem:
            r = await client.post("/v1/predict", json={"inputs": [x["text"] for x in chunk]})
            r.raise_for_status()
            body = r.json()
            return [
                {**x, "id": pid, "pred": p["label"], "version": body["model_version"]}
                for x, pid, p in zip(chunk, body["ids"], body["predictions"])
            ]

    for part in await asyncio.gather(*[one(c) for c in chunks]):
        out += part
    return out


def accuracy(records: list[dict], labels: set[str] | None = None) -> float:
    picked = [r for r in records if labels is None or r["category"] in labels]
    return sum(r["pred"] == r["category"] for r in picked) / max(1, len(picked))


def drift(store: Store, window: int, out: Path, name: str) -> dict:
    report = check_drift(store, window=window, history=0)
    write_report(report, out / f"drift-{name}")
    j = report.as_json()
    return {
        "drifted": j["drifted"],
        **{k: {"value": v.get("value"), "drifted": v.get("drifted")} for k, v in j["checks"].items()},
    }


async def loop(args, p: dict, store: Store, out: Path) -> dict:
    results: dict = {"intents": {"old": len(p["old"]), "new": len(p["new"])}, "timings_s": {}}
    app = create_app(None, store=store, reload_interval=0.5)
    service = app.state.service
    async with serving(app) as client:
        while not service.ready:
            await asyncio.sleep(0.2)
        champion = service.version
        n = args.window
        await predict(client, p["traffic_old"][:n])
        results["before"] = drift(store, n, out, "before")
        half = n // 2
        shifted = p["traffic_new"][:half] + p["traffic_old"][n : n + (n - half)]
        random.Random(args.seed).shuffle(shifted)
        served = await predict(client, shifted)
        results["shift"] = drift(store, n, out, "shift")
        results["shift_traffic_accuracy"] = accuracy(served)

        # agents correct what they see: old-intent mistakes via the API, new intents via an import file
        t = time.perf_counter()
        old = set(p["old"])
        wrong_old = [r for r in served if r["category"] in old and r["pred"] != r["category"]]
        for r in wrong_old:
            resp = await client.post(
                "/v1/feedback", json={"prediction_id": r["id"], "label": r["category"], "source": "agent"}
            )
            resp.raise_for_status()
        new_rows = [r for r in served if r["category"] not in old]
        new_rows += p["traffic_new"][half : half + args.extra_new]  # the annotation team labels a few more
        path = write(
            out / "feedback_new_intents.csv", [{"text": r["text"], "category": r["category"]} for r in new_rows]
        )
        imported = import_feedback(
            store,
            path,
            service.meta,
            champion,
            source="annotators",
            allow_new_labels=True,
            data_cfg=DataConfig(train=path),
        )
        results["feedback"] = {"api": len(wrong_old), "imported": imported}

        before_world = await predict(client, p["new_world"])
        results["champion"] = {
            "version": champion,
            "new_world_accuracy": accuracy(before_world),
            "old_intents_accuracy": accuracy(before_world, old),
            "new_intents_accuracy": accuracy(before_world, set(p["new"])),
        }
        t = time.perf_counter()
        outcome = await asyncio.to_thread(
            retrain,
            store,
            Policy(tolerance=args.tolerance),
            root=out / "retrain",
            overrides=[f"train.epochs={args.retrain_epochs}"],
            progress=False,
        )
        results["timings_s"]["retrain"] = round(time.perf_counter() - t, 1)
        results["decision"] = {"action": outcome.action, "reason": outcome.reason, "delta": outcome.scores.get("delta")}
        results["decision"]["summary"] = outcome.scores.get("summary")
        t = time.perf_counter()
        while service.version == champion and time.perf_counter() - t < 120 and outcome.action == "promote":
            await asyncio.sleep(0.2)
        results["timings_s"]["hot_reload"] = round(time.perf_counter() - t, 1)
        after_world = await predict(client, p["new_world"])
        results["challenger"] = {
            "version": service.version,
            "new_world_accuracy": accuracy(after_world),
            "old_intents_accuracy": accuracy(after_world, old),
            "new_intents_accuracy": accuracy(after_world, set(p["new"])),
        }
        start = half + args.extra_new
        fresh = p["traffic_new"][start : start + half] + p["traffic_old"][2 * n : 2 * n + (n - half)]
        if len(fresh) >= n * 0.8:
            await predict(client, fresh)
            results["after"] = drift(store, len(fresh), out, "after")
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder with BANKING77 train.csv and test.csv")
    ap.add_argument("--output", type=Path, default=Path("runs/freshness"))
    ap.add_argument("--old", type=int, default=20, help="intents the champion is trained on")
    ap.add_argument("--new", type=int, default=5, help="intents that appear after the shift")
    ap.add_argument("--per-intent", type=int, default=60, help="champion training examples per old intent")
    ap.add_argument("--dev-per-intent", type=int, default=10)
    ap.add_argument("--window", type=int, default=200, help="predictions per drift window")
    ap.add_argument("--extra-new", type=int, default=100, help="extra annotated examples of the new intents")
    ap.add_argument("--epochs", type=int, default=4, help="champion training epochs")
    ap.add_argument("--retrain-epochs", type=int, default=8, help="challenger epochs: more classes, more to learn")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--tolerance", type=float, default=Policy.tolerance, help="retrain's per-class F1 tolerance")
    args = ap.parse_args()
    out = args.output
    if out.exists():
        sys.exit(f"{out} exists: pick another --output (this script starts from an empty registry)")
    out.mkdir(parents=True)
    p = plan(args)
    files = {k: write(out / "data" / f"{k}.csv", p[k]) for k in ("train", "dev", "frozen")}
    t = time.perf_counter()
    run = fieldtune.train(
        {
            "task": "classification",
            "data": {"train": str(files["train"]), "dev": str(files["dev"]), "test": str(files["frozen"])},
            "output": str(out / "champion"),
            "train": {"epochs": args.epochs, "lr": 1e-4, "batch_size": 16, "seed": args.seed},
        }
    )
    champion_train_s = time.perf_counter() - t
    store = Store(f"sqlite:///{(out / 'fieldtune.db').resolve()}")
    row, _ = register_model(store, run.output_dir)
    promote(store, row.version, "initial champion")
    results = asyncio.run(loop(args, p, store, out))
    results["timings_s"]["champion_training"] = round(champion_train_s, 1)
    results["policy"] = {"tolerance": args.tolerance, "retrain_epochs": args.retrain_epochs}
    results["sizes"] = {k: len(p[k]) for k in ("train", "dev", "frozen", "new_world")}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()

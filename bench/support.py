#!/usr/bin/env python
"""`fieldtune support` on CLINC150 (issue 15 targets): answer or hand off, test + oos_test together.

    OMP_NUM_THREADS=2 .venv/bin/python bench/support.py --data ../shared/data \
        --intent-model bench/results/oos/models/a-full        # reuse bench/oos.py's in-scope model

1. Intent model: `minilm`, full fine-tuning with the automatic budget on the 150 in-scope intents of
   train.csv (dev.csv for model selection) — trained here unless --intent-model names one.
2. `build_assistant`: out-of-scope detector (Mahalanobis on the last 4 layers, fitted on train.csv),
   answer rule chosen on dev.csv + oos_dev.csv + oos_train.csv (the training file's out-of-scope
   questions train nothing: answered precision >= 0.97 at 90% confidence, out-of-scope handoff >=
   0.80 on dev), knowledge base = one template per intent. CLINC150 ships no answers: each template
   here is a placeholder sentence made from the intent's name — the targets below measure the
   answer-or-hand-off decision (the template of the predicted intent), not the answer's wording.
   Retrieval quality is measured on BANKING77 with written answers (bench/support_retrieval.py).
3. `support eval` on test.csv + oos_test.csv: of the questions answered, the share answered with the
   gold intent's template (target >= 0.97); in-scope questions answered (>= 0.85); out-of-scope
   handed off (>= 0.80).
4. HTTP latency: `POST /v1/support/chat` through the app served by uvicorn, 8 concurrent clients, p50 /
   p95 over --requests requests (target p95 <= 100 ms); micro-batched with both forward passes on ONNX
   Runtime (as `support serve` runs), the same in torch (the baseline), and one assistant call per
   request, side by side.

Results: bench/results/support/clinc150.json + .md.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn

from fieldtune.apps.support.assistant import Assistant
from fieldtune.apps.support.batching import BatchedAssistant
from fieldtune.apps.support.build import build_assistant
from fieldtune.apps.support.evaluate import evaluate_assistant
from fieldtune.apps.support.intent import choose_rule
from fieldtune.apps.support.web import create_app


def write_rows(path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def read(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [(r["text"], r["intent"]) for r in csv.DictReader(f)]


def placeholder_templates(intents: list[str], path: Path) -> Path:
    rows = [
        (f"t-{i}", i, i.replace("_", " "), f"Here is what we can tell you about {i.replace('_', ' ')}.")
        for i in intents
    ]
    return write_rows(path, rows, ("id", "intent", "title", "answer"))


def http_latency(
    assistant: Assistant, questions: list[str], requests: int, concurrency: int = 8, batched: bool = True
) -> dict:
    """p50 / p95 ms of POST /v1/support/chat with ``concurrency`` clients, the app under uvicorn in a
    thread (as `fieldtune support serve` runs it: micro-batched, unless ``batched`` is False)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    served = BatchedAssistant(assistant) if batched else assistant
    server = uvicorn.Server(uvicorn.Config(create_app(served, assistant.store), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    async def client(queue: list[str], times: list[float]) -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            while queue:
                message = queue.pop()
                start = time.perf_counter()
                r = await http.post("/v1/support/chat", json={"message": message})
                r.raise_for_status()
                times.append((time.perf_counter() - start) * 1000)

    async def run() -> list[float]:
        queue, times = [questions[i % len(questions)] for i in range(requests)], []
        await asyncio.gather(*(client(queue, times) for _ in range(concurrency)))
        return times

    times = asyncio.run(run())
    server.should_exit = True
    thread.join(timeout=10)
    return {
        "requests": requests,
        "concurrency": concurrency,
        "p50_ms": round(float(np.percentile(times, 50)), 1),
        "p95_ms": round(float(np.percentile(times, 95)), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/support"))
    ap.add_argument("--intent-model", type=Path, default=None)
    ap.add_argument("--requests", type=int, default=400, help="HTTP latency requests (0: no latency run)")
    args = ap.parse_args()
    folder = args.data / "clinc150"
    work = args.out / "clinc150-data"
    train, dev, test = (read(folder / f"{s}.csv") for s in ("train", "dev", "test"))
    oos_dev, oos_test = read(folder / "oos_dev.csv"), read(folder / "oos_test.csv")
    templates = placeholder_templates(sorted({i for _, i in train}), work / "templates.csv")
    oos_train = read(folder / "oos_train.csv")  # CLINC150's 100 labelled out-of-scope training questions
    questions = write_rows(work / "train.csv", train + oos_train, ("text", "intent"))
    dev_file = write_rows(work / "dev.csv", dev + oos_dev, ("text", "intent"))
    test_file = write_rows(work / "test.csv", test + oos_test, ("text", "intent"))
    target = args.out / "clinc150-assistant"
    start = time.perf_counter()
    build_assistant(templates, questions, target, dev=dev_file, intent_model=args.intent_model)
    build_s = time.perf_counter() - start
    assistant = Assistant(target)
    metrics = evaluate_assistant(assistant, test_file, args.out / "clinc150-eval")
    metrics["build_s"] = round(build_s, 1)
    metrics["rule"] = assistant.rule.as_dict()
    # the same model and detector under the rules chosen before: on dev.csv + oos_dev.csv only, by the
    # stratified bound and by the point estimate (the eighth session's rule)
    dev_rows = dev + oos_dev
    understood = assistant.intent.understand([t for t, _ in dev_rows])
    held = assistant.rule
    for name, confidence in (("bound, dev + oos_dev only", 0.9), ("point estimate, dev + oos_dev", 0.0)):
        assistant.rule = choose_rule(understood, [i for _, i in dev_rows], confidence=confidence)
        other = evaluate_assistant(assistant, test_file, args.out / f"clinc150-eval-{confidence}")
        metrics.setdefault("other_rules", {})[name] = {
            "rule": assistant.rule.as_dict(),
            **{k: v for k, v in other.items() if k not in ("curve", "retrieval", "latency_ms")},
        }
    assistant.rule = held
    asked = [t for t, _ in test]
    if args.requests:
        in_torch = Assistant(target, onnx=False)  # the baseline: both forward passes in torch
        metrics["http"] = {
            "micro-batched, onnx (as served)": http_latency(assistant, asked, args.requests),
            "micro-batched, torch": http_latency(in_torch, asked, args.requests),
            "one call per request, onnx": http_latency(assistant, asked, args.requests, batched=False),
        }
    metrics.pop("curve")
    (args.out / "clinc150.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()

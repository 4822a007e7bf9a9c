#!/usr/bin/env python
"""HTTP load benchmark: `fieldtune serve` backends vs a naive `transformers.pipeline` server.

Each contender is a real uvicorn process on 127.0.0.1 (started, waited on /ready, stopped with
SIGTERM). An aiohttp client sends one text per request at fixed concurrency; every level is
capped by --requests AND --seconds. Accuracy is measured through each server on the data file.

    python bench/serve_load.py --model runs/banking77 --data ../shared/data/banking77/test.csv
    python bench/serve_load.py --model /tmp/run --data src/fieldtune/samples/banking77/test.csv \\
        --concurrency 1,8 --requests 30 --seconds 10                              # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tables import markdown, show  # bench/tables.py (the script's folder is on sys.path)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BASELINE = "pipeline"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Contender:
    """A server to benchmark: a fieldtune backend (batching on/off) or the pipeline baseline."""

    name: str
    backend: str | None  # None: the transformers.pipeline baseline
    batching: bool = True
    env: tuple[tuple[str, str], ...] = ()  # extra server environment
    store: bool = False  # log every prediction to a SQLite store (what `fieldtune serve` does by default)


CONTENDERS = {
    c.name: c
    for c in (
        Contender("torch-fp32", "torch"),
        Contender("torch-bf16", "torch-bf16"),
        Contender("onnx-fp32", "onnx-fp32"),
        Contender("onnx-int8", "onnx-int8"),
        Contender("onnx-int8-nobatch", "onnx-int8", batching=False),  # inference threads: one per core
        Contender(
            "onnx-int8-nobatch-1thread", "onnx-int8", batching=False, env=(("FIELDTUNE_INFERENCE_THREADS", "1"),)
        ),
        Contender("onnx-int8-nobatch-logged", "onnx-int8", batching=False, store=True),
        Contender(BASELINE, None),
    )
}


# --------------------------------------------------------------------------- inputs


def read_rows(path: Path, limit: int | None = None) -> list[tuple[str, str]]:
    """(text, label) rows of a CSV with a ``text`` column and a category/label/intent column."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        label_col = next((c for c in ("category", "label", "intent") if c in (reader.fieldnames or [])), None)
        if "text" not in (reader.fieldnames or []) or label_col is None:
            sys.exit(f"{path}: need a 'text' column and a category/label/intent column")
        rows = [(r["text"], r[label_col]) for r in reader if r["text"].strip()]
    return rows[:limit] if limit else rows


def ensure_exports(model_dir: Path, names: list[str]) -> None:
    """Run `fieldtune export MODEL --onnx --int8` when an ONNX contender lacks its file."""
    needed = {CONTENDERS[n].backend for n in names} & {"onnx-fp32", "onnx-int8"}
    files = {"onnx-fp32": "model.onnx", "onnx-int8": "model.int8.onnx"}
    if all((model_dir / "onnx" / files[b]).is_file() for b in needed):
        return
    print(f"no ONNX export in {model_dir}: running `fieldtune export {model_dir} --onnx --int8`", flush=True)
    subprocess.run([*fieldtune_cmd(), "export", str(model_dir), "--onnx", "--int8"], check=True)


def fieldtune_cmd() -> list[str]:
    """The `fieldtune` console script next to this Python, else the CLI through this Python."""
    script = Path(sys.executable).with_name("fieldtune")
    return [str(script)] if script.is_file() else [sys.executable, "-c", "from fieldtune.cli import main; main()"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- the baseline server


def serve_pipeline(model_dir: Path, port: int) -> None:
    """The naive deployment: one transformers pipeline, one text per request, sync endpoint (so
    FastAPI runs it in its threadpool). Answers in fieldtune's /v1/predict response shape."""
    import uvicorn
    from fastapi import FastAPI
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(model_dir))
    labels = json.loads((model_dir / "fieldtune.json").read_text())["labels"]
    app = FastAPI()

    @app.get("/ready")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/v1/predict")
    def predict(body: dict[str, Any]) -> dict[str, Any]:
        out = pipe(body["inputs"])[0]
        label = out["label"]  # LABEL_3 when the config carries no names
        if label.startswith("LABEL_") and label[6:].isdigit():
            label = labels[int(label[6:])]
        return {"predictions": [{"label": label, "score": out["score"]}]}

    uvicorn.run(app, host=HOST, port=port, log_level="warning", timeout_graceful_shutdown=5)


# --------------------------------------------------------------------------- server processes


def start_server(c: Contender, model_dir: Path, port: int, log: Path) -> subprocess.Popen:
    """Start one contender's server as a subprocess (output to ``log``)."""
    env = {**os.environ, "FIELDTUNE_BATCHING": "1" if c.batching else "0", "FIELDTUNE_GRACEFUL_S": "5", **dict(c.env)}
    env["FIELDTUNE_DB_URL"] = f"sqlite:///{log.with_suffix('.db')}"
    if c.backend is None:
        cmd = [sys.executable, __file__, "--serve-pipeline", str(model_dir), "--port", str(port)]
    else:
        cmd = [*fieldtune_cmd(), "serve", str(model_dir), "--host", HOST, "--port", str(port), "--backend", c.backend]
        cmd.append("--store" if c.store else "--no-store")
    with log.open("w") as f:
        return subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)


async def wait_ready(proc: subprocess.Popen, url: str, timeout: float) -> None:
    """Poll GET /ready until 200; raise if the process exits, the model fails, or on timeout."""
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url, timeout=5, trust_env=False) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with code {proc.returncode}")
            try:
                r = await client.get("/ready")
                if r.status_code == 200:
                    return
                if r.json().get("status") == "failed":
                    raise RuntimeError(f"model failed to load: {r.json().get('error')}")
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)
    raise RuntimeError(f"not ready after {timeout:g} s")


def stop_server(proc: subprocess.Popen) -> int:
    """SIGTERM (graceful), SIGKILL if it has not exited after 20 s; returns the exit code
    (-15 is normal: uvicorn re-raises SIGTERM after its graceful shutdown; -9 means killed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


# --------------------------------------------------------------------------- load driver


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0-100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def load_level(
    url: str, texts: list[str], concurrency: int, requests: int, seconds: float, timeout: float
) -> dict[str, Any]:
    """``concurrency`` workers send one text per request until ``requests`` are sent or
    ``seconds`` have passed; per-request latency, throughput, errors and 5xx.

    The driver is aiohttp, not httpx: on this 2-core machine the client shares the cores with the
    server, and httpx's async client spent so much CPU per request (and queued on its pool lock)
    that it set the tail — p99 607 ms against 79 ms measured with aiohttp on the same server.
    """
    import aiohttp

    latencies: list[float] = []
    errors = server_errors = sent = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(url, connector=connector, timeout=client_timeout) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            nonlocal errors, server_errors, sent
            while sent < requests and time.perf_counter() < deadline:
                text, sent = texts[sent % len(texts)], sent + 1
                t0 = time.perf_counter()
                try:
                    async with client.post("/v1/predict", json={"inputs": text}) as r:
                        await r.read()
                        ok, five = r.status == 200, r.status >= 500
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    ok, five = False, False
                if ok:
                    latencies.append(1000 * (time.perf_counter() - t0))
                errors, server_errors = errors + (not ok), server_errors + five

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {
        "concurrency": concurrency,
        "sent": sent,
        "ok": len(latencies),
        "errors": errors,
        "5xx": server_errors,
        "elapsed_s": elapsed,
        "rps": len(latencies) / elapsed,
        **{f"p{q}_ms": percentile(latencies, q) for q in (50, 95, 99)},
    }


async def measure_accuracy(
    url: str, rows: list[tuple[str, str]], timeout: float, concurrency: int = 8
) -> dict[str, Any]:
    """Share of ``rows`` whose predicted label (one text per request) equals the gold label."""
    import aiohttp

    semaphore = asyncio.Semaphore(concurrency)

    async def one(client: aiohttp.ClientSession, text: str) -> str | None:
        async with semaphore:
            try:
                async with client.post("/v1/predict", json={"inputs": text}) as r:
                    return (await r.json())["predictions"][0]["label"] if r.status == 200 else None
            except (aiohttp.ClientError, asyncio.TimeoutError, KeyError, ValueError):
                return None

    async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=timeout)) as client:
        labels = await asyncio.gather(*(one(client, text) for text, _ in rows))
    correct = sum(p == gold for p, (_, gold) in zip(labels, rows, strict=True))
    return {"accuracy": correct / len(rows), "rows": len(rows), "failed": sum(p is None for p in labels)}


async def server_backend(url: str) -> str:
    """The backend a fieldtune server reports in /metadata (the pipeline has none)."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=10, trust_env=False) as client:
        r = await client.get("/metadata")
        return r.json().get("backend", "?") if r.status_code == 200 else "transformers.pipeline"


async def bench_contender(
    c: Contender, model_dir: Path, args: argparse.Namespace, texts: list[str], rows: list[tuple[str, str]], tmp: Path
) -> dict[str, Any]:
    """Start the server, warm it up, run every concurrency level and the accuracy pass, stop it."""
    port = free_port()
    url, log = f"http://{HOST}:{port}", tmp / f"{c.name}.log"
    print(
        f"\n=== {c.name} (backend {c.backend or 'transformers.pipeline'}, batching "
        f"{'n/a' if c.backend is None else 'on' if c.batching else 'off'}) on {url} ===",
        flush=True,
    )
    t0 = time.perf_counter()
    proc = start_server(c, model_dir, port, log)
    out: dict[str, Any] = {"backend": c.backend, "batching": c.batching, "loadavg_1m_before": os.getloadavg()[0]}
    try:
        await wait_ready(proc, url, args.start_timeout)
        out["start_s"] = time.perf_counter() - t0
        out["server_backend"] = await server_backend(url)
        await load_level(url, texts, 1, args.warmup, args.seconds, args.timeout)
        out["levels"] = {}
        for n in args.concurrency:
            level = await load_level(url, texts, n, args.requests, args.seconds, args.timeout)
            print(
                f"  c={n}: {level['ok']}/{level['sent']} ok, {level['rps']:.1f} req/s, "
                f"p99 {level['p99_ms'] or float('nan'):.0f} ms",
                flush=True,
            )
            out["levels"][str(n)] = level
        out.update(await measure_accuracy(url, rows, args.timeout))
        print(f"  accuracy {100 * out['accuracy']:.2f}% on {out['rows']} rows", flush=True)
    except Exception as e:  # noqa: BLE001 - reported in the table, the other contenders still run
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        out["error"] = f"{type(e).__name__}: {e}"
        print(f"  FAILED: {out['error']}\n{tail}", flush=True)
    finally:
        out["exit_code"] = stop_server(proc)
    return out


# --------------------------------------------------------------------------- report


def add_ratios(results: dict[str, dict[str, Any]]) -> None:
    """Per level: throughput and p99 of each contender relative to the pipeline baseline
    (``rps_x`` = rps / baseline rps, ``p99_x`` = baseline p99 / p99: >1 is better for both)."""
    base = results.get(BASELINE, {}).get("levels", {})
    for r in results.values():
        for n, level in r.get("levels", {}).items():
            b = base.get(n)
            ok = b and b["rps"] and level["p99_ms"] and b["p99_ms"]
            level["rps_x"] = level["rps"] / b["rps"] if ok else None
            level["p99_x"] = b["p99_ms"] / level["p99_ms"] if ok else None


HEADERS = [
    *("contender", "backend", "conc", "ok/sent", "errors", "5xx", "req/s", "p50 ms", "p95 ms", "p99 ms"),
    *("req/s × base", "p99 × base", "accuracy %"),
]


def fmt(v: Any, spec: str) -> str:
    """Format a number, or '-' when missing."""
    return "-" if v is None else format(v, spec)


def table_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    """One row per contender × concurrency level."""
    out = []
    for name, r in results.items():
        acc = fmt(r.get("accuracy") and 100 * r["accuracy"], ".2f")
        if "error" in r and not r.get("levels"):
            out.append([name, r.get("server_backend", "-"), "", r["error"]] + [""] * 9)
            continue
        for n, lv in r["levels"].items():
            counts = [f"{lv['ok']}/{lv['sent']}", str(lv["errors"]), str(lv["5xx"])]
            times = [fmt(lv[k], ".1f") for k in ("rps", "p50_ms", "p95_ms", "p99_ms")]
            ratios = [fmt(lv[k], ".2f") for k in ("rps_x", "p99_x")]
            out.append([name, r["server_backend"], n, *counts, *times, *ratios, acc])
    return out


def int8_check(results: dict[str, dict[str, Any]], max_drop_pts: float = 0.5) -> str:
    """Does onnx-int8 stay within ``max_drop_pts`` accuracy points of fp32 (ONNX, else torch)?"""
    ref = next((n for n in ("onnx-fp32", "torch-fp32") if results.get(n, {}).get("accuracy") is not None), None)
    int8 = results.get("onnx-int8", {}).get("accuracy")
    if ref is None or int8 is None:
        return "int8 accuracy check: not run (needs onnx-int8 and an fp32 contender)"
    delta = 100 * (int8 - results[ref]["accuracy"])
    verdict = "PASS" if delta >= -max_drop_pts else "FAIL"
    return f"int8 accuracy check: {verdict} (onnx-int8 {delta:+.2f} pts vs {ref}, limit -{max_drop_pts})"


def environment() -> dict[str, Any]:
    """Versions and CPU facts that matter for reading the numbers."""
    import onnxruntime
    import torch
    import transformers

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnxruntime": onnxruntime.__version__,
        "cpus": os.cpu_count(),
        "amx_bf16": "amx_bf16" in flags,
        "loadavg_1m": os.getloadavg()[0],
        "machine": platform.platform(),
    }


# --------------------------------------------------------------------------- main


def selected(spec: str) -> list[str]:
    """The contender names asked for; torch-bf16 is dropped where fieldtune lacks that backend."""
    from fieldtune.predict.onnx_runtime import BACKENDS

    names = [n.strip() for n in spec.split(",") if n.strip()]
    if bad := set(names) - set(CONTENDERS):
        sys.exit(f"unknown contenders: {sorted(bad)} (known: {', '.join(CONTENDERS)})")
    if "torch-bf16" in names and "torch-bf16" not in BACKENDS:
        print("this fieldtune has no torch-bf16 backend: skipping that contender")
        names.remove("torch-bf16")
    return names


async def run_all(args: argparse.Namespace) -> None:
    """Benchmark every contender in turn, then print and write the report."""
    from fieldtune.artifacts import find_model_dir

    env = environment()  # before any load: the load average says whether the machine is quiet
    model_dir = find_model_dir(args.model).resolve()
    names = selected(args.contenders)
    ensure_exports(model_dir, names)
    texts = [t for t, _ in read_rows(args.data)]
    rows = read_rows(args.data, args.accuracy_limit)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        for name in names:
            results[name] = await bench_contender(CONTENDERS[name], model_dir, args, texts, rows, Path(tmp))
    add_ratios(results)
    check = int8_check(results)
    report: dict[str, Any] = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "model_dir": str(model_dir),
        "env": env,
        "int8_check": check,
        "contenders": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    body = table_rows(results)
    show(HEADERS, body, f"HTTP load, one text per request ({model_dir})")
    if env["loadavg_1m"] > 0.5:
        print(
            f"\nWARNING: 1-min load average {env['loadavg_1m']:.1f} at the start: other work "
            "shared the CPUs, so these latencies are noisy"
        )
    print(f"\n{check}\n\nMarkdown for bench/RESULTS.md:\n\n{markdown(HEADERS, body)}\n")
    print(
        f"× base: relative to `{BASELINE}` at the same concurrency (req/s ÷ base req/s; "
        f"p99: base p99 ÷ p99), >1 is better. Accuracy over {len(rows)} rows of {args.data}, "
        f"through the server.\nwrote {args.out}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; --serve-pipeline/--port run the baseline server (internal)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="fieldtune run folder or its model/ folder")
    p.add_argument("--data", type=Path, help="labelled CSV (text + category/label column)")
    p.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    p.add_argument("--requests", type=int, default=400, help="requests per level (cap)")
    p.add_argument("--seconds", type=float, default=30, help="seconds per level (cap)")
    p.add_argument("--warmup", type=int, default=10, help="sequential requests before measuring")
    p.add_argument("--accuracy-limit", type=int, help="first N rows for accuracy (default: all)")
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    p.add_argument("--timeout", type=float, default=60, help="seconds per request")
    p.add_argument("--start-timeout", type=float, default=300, help="seconds to wait for /ready")
    p.add_argument("--out", type=Path, default=Path("bench/results/serve_load.json"))
    p.add_argument("--serve-pipeline", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.serve_pipeline and (args.model is None or args.data is None):
        p.error("--model and --data are required")
    args.concurrency = [int(n) for n in str(args.concurrency).split(",") if n.strip()]
    return args


def main() -> None:
    """Entry point: the benchmark, or the baseline server when called with --serve-pipeline."""
    args = parse_args()
    if args.serve_pipeline:
        serve_pipeline(args.serve_pipeline, args.port)
    else:
        asyncio.run(run_all(args))


if __name__ == "__main__":
    main()

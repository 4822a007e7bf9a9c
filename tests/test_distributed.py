"""`accelerate launch --num_processes 2` on CPU (gloo) trains a model as good as one process does."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import SAMPLES

INTENTS = ("card_arrival", "exchange_rate", "pin_blocked", "age_limit")


def _subset(src: Path, dst: Path) -> Path:
    with open(src, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["category"] in INTENTS]
    with open(dst, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows(rows)
    return dst


def _config(tmp: Path, name: str, batch_size: int) -> Path:
    cfg = {
        "task": "classification",
        "model": "minilm",
        "data": {"train": str(tmp / "train.csv"), "test": str(tmp / "test.csv")},
        "output": str(tmp / name),
        "train": {"epochs": 4, "lr": 2e-4, "batch_size": batch_size, "seed": 3, "checkpoint": False},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.skipif(
    shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None, reason="accelerate CLI missing"
)
def test_two_processes_match_one(tmp_path):
    _subset(SAMPLES / "banking77" / "train.csv", tmp_path / "train.csv")
    _subset(SAMPLES / "banking77" / "test.csv", tmp_path / "test.csv")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run(
        [sys.executable, "-m", "fieldtune.cli", "train", str(_config(tmp_path, "one", 16))],
        capture_output=True,
        text=True,
        env=env,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    accelerate = str(Path(sys.executable).parent / "accelerate")
    launch = [
        accelerate,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",  # no GPU: torchrun + gloo on CPU
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29533",
        "-m",
        "fieldtune.cli",
        "train",
        str(_config(tmp_path, "two", 8)),
    ]  # 2 x 8 = the same effective batch as 1 x 16
    double = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=900)
    assert double.returncode == 0, double.stderr[-3000:]
    one, two = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("one", "two"))
    assert two["train"]["processes"] == 2 and one["train"]["processes"] == 1
    assert two["train"]["steps"] == pytest.approx(one["train"]["steps"], abs=2)
    assert one["test"]["accuracy"] >= 0.9 and two["test"]["accuracy"] >= 0.9
    assert abs(one["test"]["accuracy"] - two["test"]["accuracy"]) <= 0.05
    log = (tmp_path / "two" / "log.jsonl").read_text().splitlines()
    assert len(log) == len({json.loads(x)["step"] for x in log})  # logged once, by the main process

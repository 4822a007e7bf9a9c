"""``fieldtune compare``: the numbers in the table are each run's own (metric, training time, trainable
parameters, size on disk, inference time), "-" for what an older run didn't record, a plot is written,
and a folder that isn't a finished run is a clear user error."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from conftest import SAMPLES
from typer.testing import CliRunner

import fieldtune
from fieldtune.cli import app
from fieldtune.compare import compare_runs, load_row
from fieldtune.errors import UserError

runner = CliRunner()


@pytest.fixture(scope="module")
def zero_shot_run(tmp_path_factory) -> Path:
    """A real (cheap) run: zero-shot on 3 intents of the shipped sample."""
    folder = tmp_path_factory.mktemp("cmp")
    keep = ("card_arrival", "exchange_rate", "pin_blocked")
    for split in ("train", "test"):
        with open(SAMPLES / "banking77" / f"{split}.csv", newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r["category"] in keep]
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["text", "category"])
            writer.writeheader()
            writer.writerows(rows)
    cfg = {
        "task": "classification",
        "model": "minilm",
        "method": "zero_shot",
        "data": {"train": str(folder / "train.csv"), "test": str(folder / "test.csv")},
        "output": str(folder / "zero-shot"),
    }
    return fieldtune.train(cfg, progress=False).output_dir


@pytest.fixture
def old_run(tmp_path) -> Path:
    """An encoder fine-tuning run as older fieldtune versions wrote it: no ms_per_example."""
    run = tmp_path / "full-ft"
    (run / "model").mkdir(parents=True)
    (run / "model" / "model.safetensors").write_bytes(b"\0" * 2_500_000)
    (run / "run.yaml").write_text(
        yaml.safe_dump({"task": "classification", "model": "minilm", "method": "full", "data": {"train": "x.csv"}})
    )
    metrics = {
        "dev": {"accuracy": 0.9},
        "test": {"accuracy": 0.875, "examples": 40},
        "baseline": {"accuracy": 0.25},
        "train": {"train_s": 123.4, "trainable_params": 22_742_861, "total_params": 22_742_861},
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_compare_table_has_each_runs_numbers(zero_shot_run, old_run, tmp_path):
    rows, out = compare_runs([zero_shot_run, old_run], "accuracy", tmp_path / "cmp")
    zs_metrics = json.loads((zero_shot_run / "metrics.json").read_text())
    zs, old = rows
    assert zs["run"] == "zero-shot" and zs["method"] == "zero_shot" and zs["model"] == "minilm"
    assert zs["metric"] == zs_metrics["test"]["accuracy"] and zs["examples"] == zs_metrics["test"]["examples"]
    assert zs["trainable_params"] == 0 and zs["ms_per_example"] == zs_metrics["train"]["ms_per_example"]
    assert zs["model_bytes"] == zs_metrics["train"]["artifact_bytes"]
    assert old["metric"] == 0.875 and old["train_s"] == 123.4 and old["trainable_params"] == 22_742_861
    assert old["model_mb"] == 2.5 and old["ms_per_example"] is None
    md = (out / "compare.md").read_text()
    assert "| full-ft | classification | minilm | full | - | 0.8750 | test (40) | 123.4 | 22,742,861 | 2.50 | - |" in md
    assert json.loads((out / "compare.json").read_text())["rows"][1]["train_s"] == 123.4
    assert (out / "compare.png").stat().st_size > 10_000


def test_compare_cli_prints_the_table(zero_shot_run, old_run, tmp_path):
    result = runner.invoke(
        app, ["compare", str(zero_shot_run), str(old_run), "--metric", "macro_f1", "--output", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "compare.md" in result.output and "0.8750" not in result.output  # the table shows macro_f1
    md = (tmp_path / "compare.md").read_text()
    assert "macro_f1" in md and "| full-ft |" in md and "| zero-shot |" in md
    assert (tmp_path / "compare.png").is_file()


def test_a_folder_without_metrics_is_a_user_error(old_run, tmp_path):
    (old_run / "metrics.json").unlink()
    with pytest.raises(UserError, match="no metrics.json"):
        load_row(old_run)
    result = runner.invoke(app, ["compare", str(old_run), "--output", str(tmp_path)])
    assert result.exit_code == 2 and "no metrics.json" in result.output


def test_failed_rows_are_listed_with_their_error(old_run, tmp_path):
    rows, out = compare_runs([old_run], output=tmp_path, failed={"lora_llm": "UserError: out of memory"})
    assert rows[-1] == {"run": "lora_llm", "error": "UserError: out of memory"}
    assert "failed: UserError: out of memory" in (out / "compare.md").read_text()

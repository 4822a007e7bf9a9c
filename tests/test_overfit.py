"""The "overfit" test per task: a handful of real examples -> metric 1.0 -> save -> reload in a
fresh process -> identical predictions. Also pins the files a run writes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import overfit_config

import fieldtune

CASES = {
    "ner": ("ner_file", "f1", ["Watching the game with Justin Bieber in Toronto tonight", "nothing here"]),
    "classification": ("cls_file", "accuracy", ["where is my new card?", "my pin is blocked"]),
    "multilabel": ("multilabel_file", "micro_f1", ["When will my card arrive?", "what exchange rate do you use"]),
}
RUN_FILES = {"model", "metrics.json", "report.md", "learning_curve.png", "log.jsonl", "run.yaml"}
ARTIFACT_FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "fieldtune.json"}

RELOAD = """
import json, sys, fieldtune
p = fieldtune.load(sys.argv[1])
print(json.dumps(p.predict(json.loads(sys.argv[2]), top_k=None)))
"""


@pytest.fixture(scope="module", params=sorted(CASES))
def trained(request, tmp_path_factory):
    task = request.param
    data = request.getfixturevalue(CASES[task][0])
    out = tmp_path_factory.mktemp(task) / "run"
    return task, fieldtune.train(overfit_config(task, data, out, epochs=15), progress=False)


def test_learns_training_examples_perfectly(trained):
    task, result = trained
    metric = CASES[task][1]
    assert result.metrics["test"][metric] == 1.0
    assert result.metrics["dev"][metric] == 1.0
    assert result.metrics["baseline"][metric] < 1.0  # the trivial baseline is shown and worse


def test_writes_the_run_layout(trained):
    task, result = trained
    written = {p.name for p in result.output_dir.iterdir()}
    assert RUN_FILES <= written
    assert ARTIFACT_FILES <= {p.name for p in result.model_dir.iterdir()}
    assert not [p for p in result.output_dir.iterdir() if ".tmp" in p.name]  # no half artifact left
    if task == "classification":
        assert "confusion_matrix.png" in written
    meta = json.loads((result.model_dir / "fieldtune.json").read_text())
    assert meta["task"] == task and meta["labels"]
    assert meta["data"]["train"]["sha256"] and meta["versions"]["torch"].startswith("2.13")
    saved = json.loads((result.output_dir / "metrics.json").read_text())
    assert set(saved) == {"dev", "test", "baseline", "train"}
    # every task scores its confidences: class probabilities, multi-label decisions, entity scores
    assert "calibration.png" in written
    for split in ("dev", "test"):
        assert 0 <= saved[split]["ece"] <= saved[split]["ece_uncalibrated"] + 0.05
    assert meta["state"]["temperature_scaling"] > 0
    log = [json.loads(line) for line in (result.output_dir / "log.jsonl").read_text().splitlines()]
    assert len(log) == 15 and all(r["event"] == "eval" for r in log)


def test_reload_in_fresh_process_gives_identical_predictions(trained):
    task, result = trained
    texts = CASES[task][2]
    here = fieldtune.load(result.model_dir).predict(texts)
    proc = subprocess.run(
        [sys.executable, "-c", RELOAD, str(result.output_dir), json.dumps(texts)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == json.loads(json.dumps(here))


def test_predictions_have_the_documented_shape(trained):
    task, result = trained
    predictor = fieldtune.load(result.model_dir)
    text = CASES[task][2][0]
    out = predictor.predict(text)
    if task == "ner":
        assert isinstance(out, list)
        for ent in out:
            assert set(ent) == {"entity_group", "word", "start", "end", "score"}
            assert text[ent["start"] : ent["end"]] == ent["word"]
            assert 0 <= ent["score"] <= 1
    elif task == "classification":
        assert set(out) == {"label", "score"} and out["label"] in predictor.labels
        top = predictor.predict(text, top_k=3)
        assert [t["score"] for t in top] == sorted((t["score"] for t in top), reverse=True)
        assert top[0] == out
    else:
        assert set(out) == {"labels", "scores"}
        assert all(s["label"] in predictor.labels for s in out["scores"])

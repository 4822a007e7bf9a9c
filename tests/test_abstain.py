"""Abstention and conformal prediction sets: the dev threshold meets its target by construction, conformal
sets cover at the promised rate, and a tiny real run serves both identically from Python, the CLI and
HTTP (and through the ONNX backend's decode); artifacts from before calibration still load."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import overfit_config, run, serving
from typer.testing import CliRunner

import fieldtune
from fieldtune.cli import app as cli_app
from fieldtune.config import load_config
from fieldtune.errors import UserError
from fieldtune.evaluation.calibration import (
    NEVER,
    abstention_threshold,
    conformal_quantile,
    precision_coverage,
    top_label_apply,
)
from fieldtune.predict.encoder import Predictor
from fieldtune.predict.loaders import load_artifact
from fieldtune.serving import create_app
from fieldtune.tasks import get_task

TEXTS = ["where is my new card?", "what exchange rate do you use", "my pin is blocked", "hello there"]


def scored(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Confidences and correctness where higher confidence is right more often."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.2, 1.0, n).round(3)  # rounded: ties must be kept or dropped together
    return conf, rng.random(n) < conf


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95])
def test_threshold_meets_target_precision_with_the_largest_coverage(target):
    conf, correct = scored(1000)
    chosen = abstention_threshold(conf, correct, target_precision=target)
    kept = conf >= chosen["threshold"]
    assert chosen["met"] and correct[kept].mean() >= target
    assert chosen["coverage"] == pytest.approx(kept.mean()) and chosen["precision"] == pytest.approx(
        correct[kept].mean()
    )
    lower = conf[conf < chosen["threshold"]]
    if len(lower):  # the next threshold down (answering more) misses the target
        more = conf >= lower.max()
        assert correct[more].mean() < target


def test_threshold_for_coverage_and_unreachable_precision():
    conf, correct = scored(1000)
    chosen = abstention_threshold(conf, correct, target_coverage=0.6)
    assert 0.6 <= (conf >= chosen["threshold"]).mean() < 0.62
    never = abstention_threshold(np.array([0.9, 0.8]), np.array([False, False]), target_precision=0.5)
    assert never == {"threshold": NEVER, "coverage": 0.0, "precision": 0.0, "met": False}
    curve = precision_coverage(np.array([0.9, 0.9, 0.5]), np.array([True, False, True]))
    assert curve["coverage"] == [2 / 3, 1.0] and curve["precision"] == [0.5, 2 / 3]


def test_conformal_sets_cover_at_the_promised_rate():
    rng = np.random.default_rng(0)
    k, alpha = 6, 0.1

    def draw(n):  # probabilities from which the labels are drawn: a calibrated classifier
        probs = rng.dirichlet(np.ones(k) * 0.5, n)
        return probs, np.array([rng.choice(k, p=p) for p in probs])

    dev_p, dev_y = draw(2000)
    qhat = conformal_quantile(1 - dev_p[np.arange(2000), dev_y], alpha)
    test_p, test_y = draw(5000)
    covered = (1 - test_p[np.arange(5000), test_y]) <= qhat
    assert abs(covered.mean() - (1 - alpha)) <= 0.02
    assert conformal_quantile(np.array([0.1, 0.2]), 0.1) == 1.0  # too few to promise 90%: every label


def test_trusted_output_shapes():
    task = get_task("classification")
    pred = {"a": 0.6, "b": 0.3, "c": 0.1}
    out = task.to_output("x", None, pred, None)
    state = {"abstain": {"threshold": 0.7}, "conformal": {"qhat": 0.75}}
    assert task.trusted_output(out, pred, state, None) == {
        "label": None,
        "abstained": True,
        "score": 0.6,
        "prediction_set": ["a", "b"],
    }
    assert task.trusted_output(out, pred, {"abstain": {"threshold": 0.6}}, None) == {
        "label": "a",
        "abstained": False,
        "score": 0.6,
    }
    assert task.trusted_output(out, pred, {}, None) == out  # old artifacts: unchanged
    top = task.to_output("x", None, pred, 2)
    assert task.trusted_output(top, pred, state, 2) == top  # a top-k list stays the ranked candidates
    assert task.summarize({"label": None, "abstained": True, "score": 0.6}) == (None, 0.6)


def test_abstain_config_is_checked(cls_file, tmp_path):
    base = overfit_config("classification", cls_file, tmp_path / "r")
    with pytest.raises(UserError, match="not both"):
        load_config({**base, "abstain": {"target_precision": 0.9, "target_coverage": 0.5}})
    with pytest.raises(UserError, match="classification only"):
        load_config({**base, "task": "multilabel", "abstain": {"conformal_alpha": 0.1}})
    with pytest.raises(UserError, match="abstain"):
        fieldtune.train({**base, "method": "zero_shot", "abstain": {"conformal_alpha": 0.1}}, progress=False)
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def trust_run(cls_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("trust") / "run"
    config = overfit_config("classification", cls_file, out, epochs=3, batch_size=12)
    config["abstain"] = {"target_precision": 0.9, "conformal_alpha": 0.2}
    return fieldtune.train(config, progress=False)


def test_run_reports_calibration_abstention_and_conformal(trust_run):
    out = trust_run.output_dir
    metrics = json.loads((out / "metrics.json").read_text())
    for split in ("dev", "test"):
        row = metrics[split]
        assert 0 <= row["ece"] <= 1 and 0 <= row["ece_uncalibrated"] <= 1
        assert {"abstain_coverage", "abstain_precision", "conformal_coverage", "mean_set_size"} <= set(row)
    # dev is where the threshold was chosen: its precision target holds by construction (or nothing is kept)
    assert metrics["dev"]["abstain_coverage"] == 0 or metrics["dev"]["abstain_precision"] >= 0.9
    assert metrics["dev"]["conformal_coverage"] >= 0.8
    state = json.loads((out / "model" / "fieldtune.json").read_text())["state"]
    assert state["temperature_scaling"] > 0 and set(state["abstain"]) >= {"threshold", "dev_coverage", "met"}
    assert state["conformal"]["alpha"] == 0.2 and 0 <= state["conformal"]["qhat"] <= 1
    assert (out / "calibration.png").stat().st_size > 0 and (out / "precision_coverage.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "- abstention: threshold" in report and "![precision_coverage.png]" in report and "ECE" in report


def test_calibrated_scores_are_identical_from_python_cli_and_http(trust_run):
    model = fieldtune.load(trust_run.output_dir)
    outputs = model.predict(TEXTS)
    state = model.meta["state"]
    tok = model.artifact.tokenizer
    features = model.task.encode([model.task.from_text(t) for t in TEXTS], tok, model.label2id, model.max_length)
    logits = np.stack(model._forward(features, 8, tok.pad_token_id))
    raw = logits - logits.max(1, keepdims=True)
    want = np.exp(raw / state["temperature_scaling"]) / np.exp(raw / state["temperature_scaling"]).sum(1, keepdims=True)
    if state.get("top_label"):
        want = top_label_apply(want, state["top_label"])
    for out, p in zip(outputs, want):
        assert out["score"] == pytest.approx(p.max(), abs=1e-5)
        assert out["abstained"] is bool(p.max() < state["abstain"]["threshold"])
        assert out["label"] == (None if out["abstained"] else model.labels[int(p.argmax())])
        ranked_labels = [model.labels[i] for i in np.argsort(-p, kind="stable")]
        members = [lb for lb in ranked_labels if 1 - p[model.labels.index(lb)] <= state["conformal"]["qhat"] + 1e-12]
        assert out["prediction_set"] == members
    assert [r[0]["label"] for r in model.predict(TEXTS, top_k=1)] == [model.labels[i] for i in logits.argmax(1)]

    async def body():
        async with serving(create_app(trust_run.output_dir, predictor=model)) as client:
            return (await client.post("/v1/predict", json={"inputs": TEXTS})).json()["predictions"]

    assert run(body()) == outputs
    cli = CliRunner().invoke(cli_app, ["predict", str(trust_run.output_dir), TEXTS[0]])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout.strip().splitlines()[-1])["prediction"] == outputs[0]


def test_onnx_backend_decodes_with_the_saved_temperature(trust_run):
    torch_model = fieldtune.load(trust_run.output_dir, backend="torch")
    examples = [torch_model.task.from_text(t) for t in TEXTS]
    tok = torch_model.artifact.tokenizer
    features = torch_model.task.encode(examples, tok, torch_model.label2id, torch_model.max_length)
    logits = torch_model._forward(features, 8, tok.pad_token_id)
    by_ids = {tuple(f["input_ids"]): z for f, z in zip(features, logits)}

    class Session:  # stands in for ONNX Runtime: the torch logits of each row, as an fp32 export gives
        def run(self, names, inputs):
            rows = [tuple(ids[mask == 1].tolist()) for ids, mask in zip(inputs["input_ids"], inputs["attention_mask"])]
            return [np.stack([by_ids[r] for r in rows]).astype(np.float32)]

    onnx = Predictor(load_artifact(trust_run.output_dir, with_model=False), batch_size=64, onnx_session=Session())
    assert onnx.backend == "onnx"
    for got, want in zip(onnx.predict(TEXTS), torch_model.predict(TEXTS)):
        assert got["label"] == want["label"] and got["score"] == pytest.approx(want["score"], abs=1e-5)
        assert got["prediction_set"] == want["prediction_set"]


def test_a_saved_top_label_map_moves_scores_never_labels_on_torch_and_onnx(trust_run, tmp_path):
    mapped = tmp_path / "mapped"
    shutil.copytree(trust_run.model_dir, mapped)
    meta_path = mapped / "fieldtune.json"
    meta = json.loads(meta_path.read_text())
    meta["state"]["top_label"] = {"a": 1.5, "b": -0.4}
    meta_path.write_text(json.dumps(meta))
    plain, model = fieldtune.load(trust_run.model_dir, backend="torch"), fieldtune.load(mapped, backend="torch")
    examples = [model.task.from_text(t) for t in TEXTS]
    tok = model.artifact.tokenizer
    features = model.task.encode(examples, tok, model.label2id, model.max_length)
    by_ids = {tuple(f["input_ids"]): z for f, z in zip(features, model._forward(features, 8, tok.pad_token_id))}

    class Session:  # the torch logits of each row, as an fp32 export gives them
        def run(self, names, inputs):
            rows = [tuple(ids[mask == 1].tolist()) for ids, mask in zip(inputs["input_ids"], inputs["attention_mask"])]
            return [np.stack([by_ids[r] for r in rows]).astype(np.float32)]

    onnx = Predictor(load_artifact(mapped, with_model=False), batch_size=64, onnx_session=Session())
    before, after = plain.predict(TEXTS, top_k=3), model.predict(TEXTS, top_k=3)
    assert [[r["label"] for r in row] for row in before] == [[r["label"] for r in row] for row in after]
    assert [row[0]["score"] for row in before] != pytest.approx([row[0]["score"] for row in after], abs=1e-3)
    for got, want in zip(onnx.predict(TEXTS, top_k=3), after):
        assert [r["label"] for r in got] == [r["label"] for r in want]
        assert [r["score"] for r in got] == pytest.approx([r["score"] for r in want], abs=1e-5)


def test_artifact_without_calibration_fields_loads_with_temperature_one(trust_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(trust_run.model_dir, old)
    meta_path = old / "fieldtune.json"
    meta = json.loads(meta_path.read_text())
    temperature = meta["state"]["temperature_scaling"]
    meta["state"] = {}
    meta_path.write_text(json.dumps(meta))
    old_model, new_model = fieldtune.load(old), fieldtune.load(trust_run.model_dir)
    got, ranked = old_model.predict(TEXTS), new_model.predict(TEXTS, top_k=1)
    assert all(set(o) == {"label", "score"} for o in got)  # no abstention, no sets: the old shape
    assert [o["label"] for o in got] == [r[0]["label"] for r in ranked]  # calibration never moves the argmax
    if temperature != 1.0:
        assert [o["score"] for o in got] != [r[0]["score"] for r in ranked]

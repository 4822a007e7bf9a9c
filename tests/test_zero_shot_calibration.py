"""Zero-shot calibration chosen on dev: the LLM's label prior (none / batch / content-free, with or without
the training labels' frequencies) and the encoder's per-label mean cosine. The choice and its numbers are
saved in the artifact, reloaded predictions are identical, the chosen dev score is never below the
uncalibrated one, and configs / artifacts from before the choice still load and predict as before."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

import fieldtune
from fieldtune.config import load_config
from fieldtune.data.examples import TextExample
from fieldtune.llm.calibration import CALIBRATIONS, batch_sample, candidates
from fieldtune.llm.classify import LLMClassifier, calibration_mode, log_mean_probability
from fieldtune.predict import Predictor

POS = ["I love this, it's wonderful", "What a great day, I'm so happy", "Excellent service, highly recommended"]
NEG = ["Terrible, I hate it", "This is awful and disappointing", "The worst experience of my life"]
NEU = ["The meeting is on Tuesday", "The report has ten pages", "The shop opens at nine"]
TEXTS = ["absolutely fantastic, I love it", "horrible, never again", "the bus leaves at noon"]


def _write(folder, name, rows):
    with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibration")
    _write(
        folder, "train", [(t, "positive") for t in POS] + [(t, "negative") for t in NEG] + [(t, "neutral") for t in NEU]
    )
    _write(
        folder,
        "dev",
        [("I really like it, great", "positive"), ("bad, I dislike it", "negative"), ("It is a table", "neutral")]
        + [("The train has six cars", "neutral"), ("so happy with it", "positive")],
    )
    _write(folder, "test", [("lovely and delightful", "positive"), ("dreadful and sad", "negative")])
    return folder


def _config(data, out, model, **prompt) -> dict:
    return {
        "task": "classification",
        "model": model,
        "method": "zero_shot",
        "data": {"train": str(data / "train.csv"), "dev": str(data / "dev.csv"), "test": str(data / "test.csv")},
        "output": str(out),
        "train": {"threads": 2},
        "prompt": prompt,
    }


@pytest.fixture(scope="module")
def llm_run(data, tmp_path_factory):
    return fieldtune.train(_config(data, tmp_path_factory.mktemp("llm") / "run", "smollm2"), progress=False)


def _meta(run) -> dict:
    return json.loads((run.model_dir / "fieldtune.json").read_text())


def _probs(predictor, texts):
    return predictor.predict_examples([predictor.task.from_text(t) for t in texts])


# ---------------------------------------------------------------- units


def test_batch_prior_is_the_log_mean_probability_hand_checked():
    # softmax rows: [0.5, 0.5] and [0.9, 0.1] -> mean [0.7, 0.3]
    scores = np.log(np.array([[0.5, 0.5], [0.9, 0.1]])) + np.array([[3.0], [-1.0]])  # a row shift changes nothing
    assert np.allclose(log_mean_probability(scores), np.log([0.7, 0.3]))
    assert batch_sample(list("abcdef"), seed=1, limit=10) == list("abcdef")
    sample = batch_sample([str(i) for i in range(500)], seed=1, limit=200)
    assert len(sample) == 200 and sample == sorted(sample, key=int)  # original order
    assert sample == batch_sample([str(i) for i in range(500)], seed=1, limit=200)  # seeded


def test_candidates_and_old_state_values():
    assert candidates("auto", in_context=False) == CALIBRATIONS
    assert candidates("auto", in_context=True) == ("none", "content_free")
    assert candidates("batch", in_context=False) == ("batch",)
    assert calibration_mode({"calibrate": True}) == "content_free"
    assert calibration_mode({"calibrate": False}) == "none" == calibration_mode({})
    assert calibration_mode({"calibrate": "batch"}) == "batch"


@pytest.mark.parametrize(("given", "means"), [(True, "content_free"), (False, "none"), ("batch", "batch")])
def test_old_configs_with_a_boolean_calibrate_still_load(given, means, data, tmp_path):
    cfg = load_config(_config(data, tmp_path, "smollm2", calibrate=given))
    assert cfg.prompt.calibrate == means
    override = load_config(_config(data, tmp_path, "smollm2"), [f"prompt.calibrate={str(given).lower()}"])
    assert override.prompt.calibrate == means
    assert load_config(_config(data, tmp_path, "smollm2")).prompt.calibrate == "auto"


# ---------------------------------------------------------------- LLM zero-shot


def test_llm_choice_is_saved_never_below_uncalibrated_and_reloads_identically(llm_run, data):
    state = _meta(llm_run)["state"]
    found = state["calibration"]
    dev = found["dev_by_calibration"]
    assert state["calibrate"] in CALIBRATIONS and found["requested"] == "auto"
    assert set(dev) == {f"{m}{s}" for m in CALIBRATIONS for s in ("", "+label_prior")}
    chosen = state["calibrate"] + ("+label_prior" if state["label_prior"] else "")
    assert dev[chosen] == max(dev.values()) >= dev["none"]
    assert math.isclose(llm_run.metrics["dev"]["accuracy"], dev[chosen], abs_tol=1e-6)  # dev scored once, reused
    # temperature scaling of the label scores, fitted on dev after the choice (the choice scored at T = 1:
    # the same dev accuracy shows the temperature never changed a top label)
    assert 0.05 <= state["temperature_scaling"] <= 20
    for split in ("dev", "test"):
        assert {"ece", "ece_uncalibrated"} <= set(llm_run.metrics[split])
    assert (llm_run.output_dir / "calibration.png").is_file()
    assert found["batch_texts"] == 9 and (state["prior"] is None) == (state["calibrate"] == "none")
    predictor = Predictor.load(llm_run.output_dir)
    assert predictor.evaluate(_test_examples(data)) == llm_run.metrics["test"]
    assert _probs(predictor, TEXTS) == _probs(Predictor.load(llm_run.output_dir), TEXTS)


def test_llm_each_candidate_is_a_shift_of_the_raw_scores(llm_run):
    predictor = Predictor.load(llm_run.output_dir)
    clf: LLMClassifier = predictor.clf
    raw = clf.log_scores_raw(TEXTS)
    state = clf.state
    shift = np.zeros(3) if state["prior"] is None else -np.array(state["prior"])
    shift += 0 if state["label_prior"] is None else np.array(state["label_prior"])
    z = (raw + shift) / state["temperature_scaling"]
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    got = np.array([[p[label] for label in predictor.labels] for p in _probs(predictor, TEXTS)])
    assert np.allclose(got, expected, atol=1e-9)


@pytest.mark.parametrize("old", [True, False])
def test_old_llm_artifacts_still_load_and_predict_as_before(llm_run, tmp_path, old):
    """An artifact saved before the choice: ``calibrate: true`` + the content-free prior, or false."""
    clf: LLMClassifier = Predictor.load(llm_run.output_dir).clf
    raw = clf.log_scores_raw(TEXTS)
    free = log_mean_probability(clf.log_scores_raw(["N/A", "", "[MASK]"]))
    meta = _meta(llm_run)
    for key in ("calibration", "label_prior", "temperature_scaling"):
        meta["state"].pop(key)
    meta["state"] |= {"calibrate": old, "prior": free.tolist() if old else None}
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for f in llm_run.model_dir.iterdir():
        (model_dir / f.name).write_bytes(f.read_bytes())
    (model_dir / "fieldtune.json").write_text(json.dumps(meta))
    predictor = Predictor.load(model_dir)
    expected = raw - free[None] if old else raw
    expected = np.exp(expected) / np.exp(expected).sum(axis=1, keepdims=True)
    got = np.array([[p[label] for label in predictor.labels] for p in _probs(predictor, TEXTS)])
    assert np.allclose(got, expected, atol=1e-9)


def test_llm_explicit_calibration_is_kept(data, tmp_path):
    run = fieldtune.train(_config(data, tmp_path / "run", "smollm2", calibrate="none"), progress=False)
    state = _meta(run)["state"]
    assert state["calibrate"] == "none" and state["prior"] is None and state["label_prior"] is None
    assert list(state["calibration"]["dev_by_calibration"]) == ["none"]


def _test_examples(data):
    with open(data / "test.csv", newline="", encoding="utf-8") as f:
        return [TextExample(r["text"], (r["label"],)) for r in csv.DictReader(f)]


# ---------------------------------------------------------------- encoder zero-shot


@pytest.fixture(scope="module")
def encoder_run(data, tmp_path_factory):
    return fieldtune.train(_config(data, tmp_path_factory.mktemp("enc") / "run", "minilm"), progress=False)


def test_encoder_choice_is_saved_never_below_uncalibrated_and_reloads_identically(encoder_run, data):
    state = _meta(encoder_run)["state"]
    dev = state["dev_by_calibration"]
    assert state["calibrate"] in ("none", "batch") and state["batch_texts"] == 9
    chosen = dev[f"{state['template']} | {state['calibrate']}"]
    assert chosen == max(dev.values()) >= max(v for k, v in dev.items() if k.endswith("| none"))
    assert math.isclose(encoder_run.metrics["dev"]["accuracy"], chosen, abs_tol=1e-6)
    predictor = Predictor.load(encoder_run.output_dir)
    assert predictor.evaluate(_test_examples(data)) == encoder_run.metrics["test"]
    assert _probs(predictor, TEXTS) == _probs(Predictor.load(encoder_run.model_dir), TEXTS)
    # the head's bias is -mean cosine / T (hand check against embeddings of the training texts)
    bias = predictor.head.bias
    if state["calibrate"] == "batch":
        assert np.allclose(bias, -np.array(state["label_mean_cosine"]) / state["temperature"], atol=1e-4)
    else:
        assert state["label_mean_cosine"] is None and not bias.any()


def test_encoder_batch_prior_is_each_labels_mean_cosine(encoder_run, data):
    predictor = Predictor.load(encoder_run.output_dir)
    state = predictor.meta["state"]
    label_emb = predictor.head.weight * state["temperature"]  # rows: label embeddings (unit length)
    train = [t for t in POS + NEG + NEU]
    emb = predictor.body.encode(train, normalize_embeddings=True, convert_to_numpy=True)
    mean = (emb @ label_emb.T).mean(axis=0)
    if state["calibrate"] == "batch":
        assert np.allclose(mean, state["label_mean_cosine"], atol=1e-4)
    assert np.allclose(np.linalg.norm(label_emb, axis=1), 1.0, atol=1e-4)


def test_old_encoder_artifacts_still_load_and_predict_as_before(encoder_run, tmp_path):
    """A state without the new keys (an artifact from before batch calibration) predicts from its head."""
    meta = _meta(encoder_run)
    for key in ("calibrate", "label_mean_cosine", "dev_by_calibration", "batch_texts"):
        meta["state"].pop(key)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for f in encoder_run.model_dir.iterdir():
        (model_dir / f.name).write_bytes(f.read_bytes())
    (model_dir / "fieldtune.json").write_text(json.dumps(meta))
    assert _probs(Predictor.load(model_dir), TEXTS) == _probs(Predictor.load(encoder_run.model_dir), TEXTS)

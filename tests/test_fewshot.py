"""Zero-shot and SetFit with the bundled sentence encoder (minilm) on a slice of the real BANKING77 sample:
both beat chance by far, write the usual run folder and an ``embedding`` artifact without pickle or a copy
of unchanged weights, and reload (in a fresh Predictor and through the CLI) to identical predictions;
data.shots draws k examples per label, the same ones for the same seed."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLES, serving
from conftest import run as run_async
from typer.testing import CliRunner

import fieldtune
from fieldtune.cli import app
from fieldtune.config import load_config
from fieldtune.data.prepare import prepare_splits
from fieldtune.errors import UserError
from fieldtune.fewshot.setfit_train import FALLBACK_C, HEAD_CS, head_estimator, logistic_to_head
from fieldtune.predict import Predictor, PredictorProtocol, load_predictor
from fieldtune.predict.embedding import EmbeddingPredictor

INTENTS = ("apple_pay_or_google_pay", "card_arrival", "exchange_rate", "pin_blocked")
runner = CliRunner()


def _rows(split: str) -> list[dict]:
    with open(SAMPLES / "banking77" / f"{split}.csv", newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r["category"] in INTENTS]


@pytest.fixture(scope="module")
def intents(tmp_path_factory) -> dict[str, Path]:
    """4 intents of the shipped sample: train (40 each, dev split from it) and test (9-12 each)."""
    folder = tmp_path_factory.mktemp("intents")
    files = {}
    for split in ("train", "test"):
        files[split] = folder / f"{split}.csv"
        with open(files[split], "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["text", "category"])
            writer.writeheader()
            writer.writerows(_rows(split))
    return files


def _config(intents: dict[str, Path], output: Path, method: str, **extra) -> dict:
    return {
        "task": "classification",
        "model": "minilm",
        "method": method,
        "data": {"train": str(intents["train"]), "test": str(intents["test"]), **extra.pop("data", {})},
        "output": str(output),
        "train": {"seed": 3},
        **extra,
    }


@pytest.fixture(scope="module")
def zero_shot(intents, tmp_path_factory):
    return fieldtune.train(_config(intents, tmp_path_factory.mktemp("zs") / "run", "zero_shot"), progress=False)


@pytest.fixture(scope="module")
def setfit(intents, tmp_path_factory):
    cfg = _config(intents, tmp_path_factory.mktemp("sf") / "run", "setfit", data={"shots": 4})
    cfg["setfit"] = {"iterations": 4}
    return fieldtune.train(cfg, progress=False)


def _test_examples(run) -> list:
    return prepare_splits(load_config(run.output_dir / "run.yaml")).test


def _no_pickle(model_dir: Path) -> None:
    names = [p.name for p in model_dir.rglob("*")]
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".bin", ".joblib"))], names


# ---------------------------------------------------------------- zero-shot


def test_zero_shot_beats_chance_and_writes_a_run(zero_shot):
    m = zero_shot.metrics
    assert m["test"]["accuracy"] >= 0.75, m["test"]  # chance: 0.25
    assert m["test"]["accuracy"] > m["baseline"]["accuracy"]
    t = m["train"]
    assert t["trainable_params"] == 0 and t["total_params"] > 20_000_000
    assert t["ms_per_example"] > 0 and t["artifact_bytes"] < 100_000  # the head only: no copy of the encoder
    for name in ("metrics.json", "report.md", "confusion_matrix.png", "run.yaml"):
        assert (zero_shot.output_dir / name).is_file(), name
    meta = json.loads((zero_shot.model_dir / "fieldtune.json").read_text())
    assert meta["kind"] == "embedding" and meta["body"] == "base" and meta["method"] == "zero_shot"
    assert len(meta["base_model"]["sha256"]) == 64
    assert meta["state"]["temperature"] > 0 and meta["state"]["template"] in meta["state"]["dev_by_template"]
    assert sorted(p.name for p in zero_shot.model_dir.iterdir()) == ["fieldtune.json", "head.safetensors"]


def test_zero_shot_reloads_to_identical_predictions(zero_shot):
    predictor = Predictor.load(zero_shot.output_dir)
    assert isinstance(predictor, EmbeddingPredictor) and predictor.backend == "torch"
    assert isinstance(predictor, PredictorProtocol)
    assert isinstance(load_predictor(zero_shot.model_dir), EmbeddingPredictor)
    assert predictor.evaluate(_test_examples(zero_shot)) == zero_shot.metrics["test"]
    texts = ["Can I add money with Google Pay?", "my PIN is blocked, help"]
    out = predictor.predict(texts, top_k=2)
    assert [o[0]["label"] for o in out] == ["apple_pay_or_google_pay", "pin_blocked"]
    assert out == Predictor.load(zero_shot.model_dir).predict(texts, top_k=2)
    single = predictor.predict(texts[0])
    assert set(single) == {"label", "score"} and 0 < single["score"] <= 1


def test_the_server_serves_an_embedding_artifact(zero_shot):
    from fieldtune.serving import create_app

    app = create_app(zero_shot.output_dir)  # the server loads it itself (Predictor.load -> kind embedding)

    async def body():
        async with serving(app) as client:
            for _ in range(300):  # it loads in the background: bounded, <= 60 s
                if (await client.get("/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.2)
            response = await client.post("/v1/predict", json={"inputs": ["my PIN is blocked, help"]})
            return response.status_code, response.json()

    status, out = run_async(body(), timeout=90)
    assert status == 200, out
    assert out["predictions"][0]["label"] == "pin_blocked"


def test_zero_shot_label_descriptions_are_embedded(intents, tmp_path):
    descriptions = {
        "apple_pay_or_google_pay": "Paying or topping up with Apple Pay or Google Pay.",
        "card_arrival": "When will my new card arrive in the post?",
        "exchange_rate": "Currency exchange rates.",
        "pin_blocked": "My PIN is blocked after wrong attempts.",
    }
    run = fieldtune.train(
        _config(intents, tmp_path / "run", "zero_shot", prompt={"label_descriptions": descriptions}), progress=False
    )
    assert run.metrics["test"]["accuracy"] >= 0.75
    assert json.loads((run.model_dir / "fieldtune.json").read_text())["state"]["template"] is None


def test_zero_shot_unknown_label_description_is_a_user_error(intents, tmp_path):
    cfg = _config(intents, tmp_path / "run", "zero_shot", prompt={"label_words": {"card_arival": "card arrival"}})
    with pytest.raises(UserError, match="card_arival"):
        fieldtune.train(cfg, progress=False)
    assert not (tmp_path / "run").exists()


def test_zero_shot_multilabel_tunes_a_threshold(multilabel_file, tmp_path):
    cfg = {
        "task": "multilabel",
        "model": "minilm",
        "method": "zero_shot",
        "data": {"train": str(multilabel_file), "dev": str(multilabel_file), "test": str(multilabel_file)},
        "output": str(tmp_path / "run"),
        "prompt": {"label_words": {"mentions_card": "bank card"}},
    }
    run = fieldtune.train(cfg, progress=False)
    assert run.metrics["test"]["micro_f1"] > 0.4
    out = Predictor.load(run.output_dir).predict("Where is my new card?")
    assert set(out) == {"labels", "scores"} and out["labels"]


def test_embedding_artifact_has_no_onnx_backend(zero_shot):
    with pytest.raises(UserError, match="backend"):
        Predictor.load(zero_shot.output_dir, backend="onnx")


# ---------------------------------------------------------------- setfit


def test_setfit_few_shot_trains_and_beats_chance(setfit):
    m = setfit.metrics
    assert m["test"]["accuracy"] >= 0.75, m["test"]  # 4 examples per label; chance 0.25
    t = m["train"]
    assert t["steps"] > 0 and t["pairs"] == 2 * 4 * 16 and t["trainable_params"] > 20_000_000
    assert t["head_c"] in HEAD_CS  # picked by 4-fold CV on the 16 examples
    meta = json.loads((setfit.model_dir / "fieldtune.json").read_text())
    assert meta["kind"] == "embedding" and meta["body"] == "artifact" and meta["sizes"]["train"] == 16
    assert (setfit.model_dir / "model.safetensors").is_file() and (setfit.model_dir / "head.safetensors").is_file()
    _no_pickle(setfit.model_dir)


def test_setfit_reloads_to_identical_predictions_and_serves_the_cli(setfit, intents, tmp_path):
    predictor = Predictor.load(setfit.output_dir)
    assert predictor.evaluate(_test_examples(setfit)) == setfit.metrics["test"]
    text = "I still haven't received my card, when will it come?"
    expected = predictor.predict(text, top_k=3)
    assert expected[0]["label"] == "card_arrival"
    result = runner.invoke(app, ["predict", str(setfit.output_dir), text, "--top-k", "3"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["prediction"] == expected
    result = runner.invoke(app, ["eval", str(setfit.output_dir), "--data", str(intents["test"]), "--output",
                                 str(tmp_path / "eval.json")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "eval.json").read_text())["accuracy"] == setfit.metrics["test"]["accuracy"]


def test_setfit_without_contrastive_epochs_fits_the_head_on_the_base_embeddings(intents, tmp_path):
    cfg = _config(intents, tmp_path / "run", "setfit", data={"shots": 4})
    cfg["setfit"] = {"body_epochs": 0}
    run = fieldtune.train(cfg, progress=False)
    t = run.metrics["train"]
    assert run.metrics["test"]["accuracy"] >= 0.75, run.metrics["test"]
    assert t["steps"] == 0 and t["pairs"] == 0 and t["trainable_params"] == 4 * 384 + 4
    meta = json.loads((run.model_dir / "fieldtune.json").read_text())
    assert meta["body"] == "base" and meta["base_model"]["sha256"]  # a reference, not a 90 MB copy
    assert not (run.model_dir / "model.safetensors").exists()
    assert Predictor.load(run.output_dir).evaluate(_test_examples(run)) == run.metrics["test"]


def test_setfit_multilabel_is_a_user_error_before_any_output(multilabel_file, tmp_path):
    cfg = {"task": "multilabel", "method": "setfit", "data": {"train": str(multilabel_file)}, "output": str(tmp_path)}
    with pytest.raises(UserError, match="setfit"):
        fieldtune.train({**cfg, "output": str(tmp_path / "run")}, progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("classes", [2, 3])
def test_logistic_regression_head_matches_predict_proba(classes):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    y = np.arange(60) % classes
    clf = LogisticRegression(max_iter=500).fit(x, y)
    logits = logistic_to_head(clf, classes).logits(x)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs / probs.sum(1, keepdims=True), clf.predict_proba(x), atol=1e-5)


def test_head_c_is_cross_validated_and_the_head_matches_its_probabilities():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 32))
    y = np.repeat(np.arange(20), 8)
    x = (centres[y] + 1.2 * rng.normal(size=(160, 32))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # unit length, like the sentence embeddings
    search = head_estimator(list(y), seed=0).fit(x, y)
    scores = search.cv_results_["mean_test_score"]  # 4 folds of 2 per label; 0.94 at C=0.1 .. 0.96 at C=10
    assert search.best_estimator_.C == HEAD_CS[int(np.argmax(scores))] and scores.max() > scores.min()
    logits = logistic_to_head(search, 20).logits(x)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs / probs.sum(1, keepdims=True), search.predict_proba(x), atol=1e-5)
    single = head_estimator([0, 0, 1], seed=0)  # a label seen once: nothing to cross-validate
    assert not hasattr(single, "cv") and single.C == FALLBACK_C


# ---------------------------------------------------------------- data.shots


def test_shots_sampling_is_k_per_label_and_reproducible(intents, tmp_path):
    def sample(seed: int) -> list[str]:
        cfg = _config(intents, tmp_path, "setfit", data={"shots": 5})
        cfg["train"]["seed"] = seed
        return [(ex.text, ex.labels[0]) for ex in prepare_splits(load_config(cfg)).train]

    first = sample(1)
    assert sorted({label for _, label in first}) == sorted(INTENTS)
    assert all(sum(label == intent for _, label in first) == 5 for intent in INTENTS)
    assert sample(1) == first and sample(2) != first

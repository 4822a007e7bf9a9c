"""ONNX export: parity with PyTorch (fp32 and int8), the Predictor's ONNX backend, refusal of a
failing export without writing anything, and the CLI. Two tiny overfit models, exported once."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import overfit_config
from typer.testing import CliRunner

import fieldtune
from fieldtune.cli import app
from fieldtune.errors import UserError
from fieldtune.export import export_onnx, exporter, parity
from fieldtune.predict import Predictor, PredictorProtocol, load_predictor

TEXTS = {
    "classification": [
        "where is my new card?",
        "my pin is blocked",
        "what exchange rate do you use",
        "When will my card arrive?",
    ],
    "ner": [
        "Watching the game with Justin Bieber in Toronto tonight",
        "nothing here",
        "Apple and Google hired Tim Cook in London last week",
    ],
}


def _train(task: str, data, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"export-{task}") / "run"
    return fieldtune.train(overfit_config(task, data, out, epochs=15), progress=False).model_dir


@pytest.fixture(scope="module")
def cls_model(cls_file, tmp_path_factory):
    return _train("classification", cls_file, tmp_path_factory)


@pytest.fixture(scope="module")
def ner_model(ner_file, tmp_path_factory):
    return _train("ner", ner_file, tmp_path_factory)


@pytest.fixture(scope="module", params=["classification", "ner"])
def exported(request):
    """(task, model folder, export report) after ``export_onnx(int8=True)``."""
    name = "cls_model" if request.param == "classification" else "ner_model"
    model_dir = request.getfixturevalue(name)
    folder = export_onnx(model_dir, int8=True)
    return request.param, model_dir, json.loads((folder / "export.json").read_text())


@pytest.fixture
def fresh_copy(cls_model, tmp_path):
    """The classification artifact without any export, in its own folder."""
    return shutil.copytree(cls_model, tmp_path / "model", ignore=shutil.ignore_patterns("onnx"))


def _leftovers(model_dir):
    return [p.name for p in model_dir.iterdir() if ".tmp" in p.name or p.name.endswith(".old")]


def test_export_passes_parity(exported):
    _, model_dir, report = exported
    fp32, int8 = report["backends"]["onnx"], report["backends"]["onnx-int8"]
    assert fp32["agreement"] == 1.0 and fp32["raw_agreement"] == 1.0 and fp32["max_abs_diff"] < 1e-3
    assert int8["agreement"] >= 0.95
    assert fp32["predictions"] >= len(parity.SAMPLE_TEXTS)
    written = {p.name for p in (model_dir / "onnx").iterdir()}
    assert written == {"model.onnx", "model.int8.onnx", "export.json"}
    assert not _leftovers(model_dir)


def test_onnx_backend_predicts_like_torch(exported):
    task, model_dir, _ = exported
    texts = TEXTS[task]
    torch_out = Predictor.load(model_dir, backend="torch").predict(texts)
    onnx = Predictor.load(model_dir, backend="onnx-fp32")
    assert onnx.backend == "onnx" and onnx.artifact.model is None  # no torch weights loaded
    onnx_out = onnx.predict(texts)
    if task == "ner":

        def spans(outputs):
            return [[(e["entity_group"], e["start"], e["end"]) for e in out] for out in outputs]

        assert any(spans(torch_out)) and spans(onnx_out) == spans(torch_out)
    else:
        assert [o["label"] for o in onnx_out] == [o["label"] for o in torch_out]
        scores = [o["score"] for o in onnx_out]
        assert np.allclose(scores, [o["score"] for o in torch_out], atol=1e-5)


def test_load_predictor_gives_the_encoder_predictor(cls_model):
    predictor = load_predictor(cls_model, backend="torch")
    assert type(predictor) is Predictor and isinstance(predictor, PredictorProtocol)
    assert predictor.capabilities == frozenset() and predictor.backend == "torch" and predictor.batch_size == 32


def test_torch_bf16_backend(cls_model):
    texts = TEXTS["classification"]
    fp32 = Predictor.load(cls_model, backend="torch").predict(texts)
    bf16 = Predictor.load(cls_model, backend="torch-bf16")
    assert bf16.backend == "torch-bf16" and bf16.artifact.model is not None
    assert [o["label"] for o in bf16.predict(texts)] == [o["label"] for o in fp32]


def test_auto_picks_onnx_after_export(exported, tmp_path):
    task, model_dir, _ = exported
    predictor = Predictor.load(model_dir.parent)  # the run folder works too
    assert predictor.backend == "onnx-int8"
    assert predictor.labels and predictor.meta["task"] == task
    assert Predictor.load(model_dir, backend="onnx").backend == "onnx-int8"
    assert len(predictor.predict(TEXTS[task])) == len(TEXTS[task])


def test_failing_parity_writes_nothing(fresh_copy, monkeypatch):
    assert Predictor.load(fresh_copy).backend == "torch"  # auto without an export
    broken = {"agreement": 0.5, "raw_agreement": 0.5, "max_abs_diff": 0.0, "predictions": 32, "ties": 0}
    monkeypatch.setattr(parity, "measure_parity", lambda *a, **k: dict(broken))
    with pytest.raises(UserError, match="fails the parity check"):
        export_onnx(fresh_copy, int8=True)
    assert not (fresh_copy / "onnx").exists() and not _leftovers(fresh_copy)
    with pytest.raises(UserError, match="no ONNX export"):
        Predictor.load(fresh_copy, backend="onnx")


def test_failed_export_keeps_the_older_one(exported, monkeypatch):
    _, model_dir, _ = exported
    before = {p.name: p.read_bytes()[-4096:] for p in (model_dir / "onnx").iterdir()}

    def crash(*args, **kwargs):
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(exporter, "_torch_export", crash)
    with pytest.raises(RuntimeError):
        export_onnx(model_dir)
    assert {p.name: p.read_bytes()[-4096:] for p in (model_dir / "onnx").iterdir()} == before
    assert not _leftovers(model_dir)


def test_cli_export_then_predict(fresh_copy):
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(fresh_copy), "--onnx"])
    assert result.exit_code == 0, result.output
    assert "parity with PyTorch" in result.output and "model.onnx" in result.output
    assert sorted(p.name for p in (fresh_copy / "onnx").iterdir()) == ["export.json", "model.onnx"]
    result = runner.invoke(app, ["predict", str(fresh_copy), "my pin is blocked", "--backend", "onnx"])
    assert result.exit_code == 0, result.output
    line = json.loads(result.output.strip().splitlines()[-1])
    assert line["prediction"]["label"] == "pin_blocked"
    result = runner.invoke(app, ["predict", str(fresh_copy), "hi", "--backend", "onnx-int8"])
    assert result.exit_code == 2 and "--int8" in result.output


def test_parity_measures_labels_and_skips_ties():
    seq = [{"input_ids": [1, 2]}, {"input_ids": [1, 2, 3]}, {"input_ids": [1]}]
    ref = [np.array([2.0, 0.0]), np.array([0.0, 3.0]), np.array([1.0, 1.0001])]  # last one a tie
    got = [np.array([2.0, 0.1]), np.array([3.5, 3.0]), np.array([1.0001, 1.0])]
    result = parity.measure_parity(lambda *a: ref, lambda *a: got, seq, pad_id=0)
    assert result["predictions"] == 3 and result["ties"] == 1
    assert result["agreement"] == 0.5 and result["raw_agreement"] == pytest.approx(1 / 3)
    assert result["max_abs_diff"] == pytest.approx(3.5)
    assert parity.parity_failures(result, int8=True) and parity.parity_failures(result, int8=False)


def test_parity_scores_ner_on_first_subwords_only():
    feat = [{"input_ids": [101, 7, 8, 102], "first": [(1, 0)]}]  # one word: position 1
    ref = [np.array([[0.0, 9.0], [5.0, 0.0], [0.0, 5.0], [9.0, 0.0]])]
    got = [np.array([[9.0, 0.0], [5.0, 0.0], [5.0, 0.0], [0.0, 9.0]])]  # only unscored rows differ
    result = parity.measure_parity(lambda *a: ref, lambda *a: got, feat, pad_id=0)
    assert result["agreement"] == 1.0 and result["predictions"] == 1
    assert parity.parity_failures(result, int8=True) == []
    assert parity.parity_failures(result, int8=False)  # fp32 also bounds the logit difference


def test_server_runs_onnx_unbatched_on_parallel_threads(cls_model):
    """ONNX defaults: no micro-batching, one inference thread per core; callers never mix results."""
    import asyncio
    import os

    import httpx

    from fieldtune.serving import create_app

    model_dir = cls_model
    if not (model_dir / "onnx" / "model.int8.onnx").is_file():
        export_onnx(model_dir, int8=True)
    texts = TEXTS["classification"] * 4
    single = fieldtune.load(model_dir, backend="onnx-int8")
    want = [single.predict(t) for t in texts]  # one text per call, as the server runs them
    app = create_app(model_dir, backend="onnx-int8", background_load=False)
    limits = app.state.service.limits
    assert limits.batching is False and limits.inference_threads == (os.cpu_count() or 1)

    async def body():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                answers = await asyncio.gather(*[client.post("/v1/predict", json={"inputs": t}) for t in texts])
                return [a.json()["predictions"][0] for a in answers]

    got = asyncio.run(body())
    assert [g["label"] for g in got] == [w["label"] for w in want]
    assert all(abs(g["score"] - w["score"]) < 1e-5 for g, w in zip(got, want))  # single texts: no batch effects
    assert create_app(model_dir, backend="torch").state.service.limits.batching is True  # PyTorch batches

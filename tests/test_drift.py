"""``fieldtune drift``: a real tiny classifier, a real SQLite store of logged predictions, and the
drift checks against its training reference — in-distribution traffic passes, other-domain
traffic with a skewed label mix is caught, hashed inputs make the text checks unavailable, a
too-small window is a user error, and the webhook gets the JSON. Plus the statistics' numerics.

One model is trained per module (3 BANKING77 intents); all stores share one reference cache.
"""

from __future__ import annotations

import csv
import hashlib
import json
import socket
import threading
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLES, conll_sentences, overfit_config
from typer.testing import CliRunner

import fieldtune
from fieldtune.cli import app
from fieldtune.errors import UserError
from fieldtune.monitoring.drift import check_drift
from fieldtune.monitoring.reference import compute_reference, load_reference
from fieldtune.monitoring.stats import centroid_distance, chi2_pvalue, mmd_test, psi
from fieldtune.monitoring.text_features import oov_rate, words
from fieldtune.monitoring.thresholds import Thresholds
from fieldtune.store import Store
from fieldtune.store.registry import register_model
from fieldtune.tasks import get_task

INTENTS = ("card_arrival", "exchange_rate", "pin_blocked")
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)  # in-distribution traffic from here
T1 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)  # shifted traffic from here
runner = CliRunner()


# ---------------------------------------------------------------- statistics on synthetic data


def test_psi_is_zero_for_equal_distributions_and_large_for_a_shift():
    assert psi([50, 30, 20], [50, 30, 20]) == pytest.approx(0.0, abs=1e-12)
    assert psi([50, 30, 20], [100, 60, 40]) == pytest.approx(0.0, abs=1e-12)  # shares, not counts
    assert psi([40, 30, 30], [38, 31, 31]) < 0.01
    shifted = psi([40, 30, 30], [80, 10, 10])
    assert shifted > 0.2 and shifted == pytest.approx(psi([80, 10, 10], [40, 30, 30]))  # symmetric
    assert 1 < psi([50, 50, 0], [0, 50, 50]) < 20  # a label missing on one side: large but finite
    assert chi2_pvalue([400, 300, 300], [390, 305, 305]) > 0.5
    assert chi2_pvalue([400, 300, 300], [800, 100, 100]) < 1e-6


def test_mmd_permutation_test_separates_same_from_shifted():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 16)), rng.normal(size=(150, 16))
    mmd2, p = mmd_test(x, y, permutations=200, seed=1)
    assert abs(mmd2) < 0.01 and p > 0.05
    mmd2_shift, p_shift = mmd_test(x, y + 0.6, permutations=200, seed=1)
    assert mmd2_shift > 10 * max(mmd2, 1e-3) and p_shift == pytest.approx(1 / 201)  # none of 200 as extreme
    assert mmd_test(x, y, seed=3) == mmd_test(x, y, seed=3)  # seeded
    nulls = [mmd_test(rng.normal(size=(40, 4)), rng.normal(size=(40, 4)), 100, s)[1] for s in range(30)]
    assert np.mean(np.array(nulls) < 0.05) <= 0.2  # p-values of identical distributions are not small
    assert centroid_distance(x + 5, y + 5) < 0.01 and centroid_distance(x + 5, -y - 5) > 1.9


def test_unseen_vocabulary_rate():
    assert words("Où est ma CARTE? card-2") == ["où", "est", "ma", "carte", "card", "2"]
    rate, unseen = oov_rate(["my card never arrived", "zzz card"], {"my", "card", "never", "arrived"})
    assert rate == pytest.approx(1 / 6) and unseen == {"zzz": 1}


def test_thresholds_parse():
    t = Thresholds.parse(["psi=0.3", "mmd-p=0.05", "min_predictions=50"])
    assert (t.psi, t.mmd_p, t.min_predictions, t.confidence_drop) == (0.3, 0.05, 50, 0.10)
    with pytest.raises(UserError, match="bad threshold"):
        Thresholds.parse(["nope=1"])


# ---------------------------------------------------------------- a real model, store and traffic


def _banking(split: str) -> dict[str, list[str]]:
    with open(SAMPLES / "banking77" / f"{split}.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {i: [r["text"] for r in rows if r["category"] == i] for i in INTENTS}


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "category"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def texts() -> dict[str, list[str]]:
    train, test = _banking("train"), _banking("test")
    tweets = [" ".join(line.split("\t")[0] for line in s) for s in conll_sentences(SAMPLES / "wnut17" / "test.txt")]
    tweets = [t for t in tweets if len(t.split()) >= 6][:30]
    return {
        "in_distribution": [t for i in INTENTS for t in test[i]],  # unseen queries of the same intents
        # other-domain sentences plus a skewed label mix (exchange-rate questions only)
        "shifted": tweets + train["exchange_rate"],  # 30 + 40
    }


@pytest.fixture(scope="module")
def model_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("drift_model")
    train = _banking("train")
    train_csv = _write_csv(tmp / "train.csv", [(t, i) for i in INTENTS for t in train[i][:28]])
    dev_csv = _write_csv(tmp / "dev.csv", [(t, i) for i in INTENTS for t in train[i][28:]])
    config = {
        "task": "classification",
        "model": "minilm",
        "data": {"train": str(train_csv), "dev": str(dev_csv)},
        "output": str(tmp / "run"),
        "train": {"epochs": 3, "lr": 3e-4, "batch_size": 12, "patience": None, "checkpoint": False, "seed": 7},
    }
    return fieldtune.train(config, progress=False).output_dir


@pytest.fixture(scope="module")
def predictor(model_run):
    return fieldtune.load(model_run)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Store files in one folder, so they share the reference cache ``.drift/`` beside them."""
    return tmp_path_factory.mktemp("drift_stores")


def make_store(folder: Path, name: str, model_run: Path) -> tuple[Store, str]:
    store = Store(f"sqlite:///{folder / name}.db")
    row, _ = register_model(store, model_run)
    store.promote(row.version, "test")
    return store, row.version


def log_traffic(store: Store, predictor, version: str, texts: list[str], start: datetime, hashed=False) -> None:
    """Rows as the server logs them (``ModelService._log_rows``), one second apart."""
    rows = []
    for i, (text, out) in enumerate(zip(texts, predictor.predict(texts))):
        label, confidence = get_task("classification").summarize(out)
        rows.append(
            {
                "id": uuid.uuid4().hex,
                "model_version": version,
                "created_at": start + timedelta(seconds=i),
                "text": None if hashed else text,
                "text_hash": hashlib.sha256(text.encode()).hexdigest(),
                "output": out,
                "label": label,
                "confidence": confidence,
                "latency_ms": 1.0,
            }
        )
    store.log_predictions(rows)


@pytest.fixture(scope="module")
def traffic(stores, model_run, predictor, texts) -> str:
    """A store with 36 in-distribution predictions at T0, then 70 shifted ones at T1."""
    store, version = make_store(stores, "traffic", model_run)
    log_traffic(store, predictor, version, texts["in_distribution"], T0)
    log_traffic(store, predictor, version, texts["shifted"], T1)
    store.close()
    return store.url


def drift_cli(*args) -> tuple[int, dict | None, str]:
    result = runner.invoke(app, ["drift", *[str(a) for a in args]])
    payload = json.loads(result.stdout) if "--json" in args and result.exit_code in (0, 1) else None
    return result.exit_code, payload, result.output


def test_in_distribution_traffic_is_not_drift(traffic, tmp_path):
    code, report, output = drift_cli("--db", traffic, "--until", T1.isoformat(), "--output", tmp_path, "--json")
    assert code == 0, output
    assert report["drifted"] is False and report["window"]["predictions"] == 36
    statuses = {name: c["status"] for name, c in report["checks"].items()}
    assert statuses == dict.fromkeys(statuses, "ok"), report["checks"]
    assert report["checks"]["embedding_shift"]["p_value"] > 0.01
    assert report["reference"]["texts"] == 36 and report["reference"]["source"].startswith("dev ")
    assert json.loads((tmp_path / "drift.json").read_text()) == report


def test_shifted_traffic_is_drift_with_report_files(traffic, tmp_path):
    code, report, output = drift_cli("--db", traffic, "--since", T1.isoformat(), "--output", tmp_path, "--json")
    assert code == 1, output
    checks = report["checks"]
    assert report["drifted"] is True and report["window"]["predictions"] == 70
    assert checks["label_shift"]["drifted"] and checks["label_shift"]["value"] > 0.2
    assert checks["label_shift"]["top_changes"][0]["label"] in INTENTS
    assert checks["embedding_shift"]["drifted"] and checks["embedding_shift"]["p_value"] < 0.01
    assert checks["unseen_vocabulary"]["drifted"]  # tweets are full of words banking never saw
    assert set(checks["confidence_drop"]) >= {"value", "threshold", "drifted", "ks_p"}
    # over time: the earlier in-distribution window, then this one
    assert [h["predictions"] for h in report["history"]] == [36, 70]
    assert report["history"][0]["embedding_shift"]["drifted"] is False
    assert report["history"][1]["embedding_shift"]["drifted"] is True
    md = (tmp_path / "report.md").read_text()
    assert "**DRIFT**" in md and "![drift over time](drift.png)" in md and "most frequent:" in md
    assert (tmp_path / "drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "top_unseen" not in json.dumps(report)  # logged user words stay out of the webhook JSON


def test_table_output_and_webhook_gets_the_json(traffic, tmp_path):
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"type": self.headers["Content-Type"], "json": json.loads(body)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        code, _, _ = drift_cli(
            "--db", traffic, "--until", T1.isoformat(), "--output", tmp_path / "ok", "--webhook", url
        )
        assert code == 0 and received == []  # by default only drift is posted
        code, _, output = drift_cli("--db", traffic, "--since", T1.isoformat(), "--output", tmp_path, "--webhook", url)
    finally:
        server.shutdown()
        server.server_close()
    assert code == 1, output
    assert "embedding_shift" in output and "drift detected" in output and "report.md" in output
    assert len(received) == 1 and received[0]["type"] == "application/json"
    assert received[0]["json"] == json.loads((tmp_path / "drift.json").read_text())


def test_failing_webhook_is_a_warning_not_an_exit_code(traffic, tmp_path):
    url = f"http://127.0.0.1:{free_port()}/hook"
    code, _, output = drift_cli(
        "--db", traffic, "--until", T1.isoformat(), "--output", tmp_path, "--webhook", url, "--webhook-on", "always"
    )
    assert code == 0, output
    assert "warning:" in output and "webhook" in output


def test_hashed_inputs_make_text_checks_unavailable(stores, model_run, predictor, texts):
    store, version = make_store(stores, "hashed", model_run)
    log_traffic(store, predictor, version, texts["in_distribution"], T0, hashed=True)
    report = check_drift(store, model=model_run, window=36)  # by artifact path, not the registry
    assert check_drift(store, version[:6], window=36, history=0).as_json()["checks"] == report.as_json()["checks"]
    store.close()
    checks = report.checks
    for name in ("embedding_shift", "unseen_vocabulary"):
        assert checks[name].status == "unavailable" and "hashes" in checks[name].reason
        assert report.as_json()["checks"][name]["reason"] == checks[name].reason
    assert checks["label_shift"].status == "ok" and checks["confidence_drop"].status == "ok"
    assert not report.drifted and report.window["texts"] == 0


def test_ner_model_has_no_label_distribution_but_the_other_checks(stores, ner_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("drift_ner") / "run"
    run = fieldtune.train(overfit_config("ner", ner_file, out, epochs=2, batch_size=8), progress=False).output_dir
    store, version = make_store(stores, "ner", run)
    sentences = [" ".join(line.split("\t")[0] for line in s) for s in conll_sentences(SAMPLES / "wnut17" / "dev.txt")]
    log_traffic(store, fieldtune.load(run), version, sentences[:30], T0)
    report = check_drift(store, window=30)
    store.close()
    label = report.checks["label_shift"]
    assert label.status == "unavailable" and "NER" in label.reason and label.value is None
    assert report.checks["embedding_shift"].status in ("ok", "drift")
    assert report.checks["unseen_vocabulary"].status in ("ok", "drift")
    assert report.as_json()["checks"]["label_shift"]["status"] == "unavailable"


def test_too_small_window_is_a_user_error(stores, model_run, predictor, texts, tmp_path):
    store, version = make_store(stores, "small", model_run)
    log_traffic(store, predictor, version, texts["in_distribution"][:10], T0)
    store.close()
    code, _, output = drift_cli("--db", store.url, "--output", tmp_path)
    assert code == 2 and "only 10 logged predictions" in output and "hint:" in output, output
    assert "Traceback" not in output
    code, _, output = drift_cli("--db", store.url, "--window", "10", "--output", tmp_path)
    assert code == 2 and "too small" in output, output
    code, _, output = drift_cli("--db", store.url, "--webhook", "file:///etc/passwd")
    assert code == 2 and "http(s)" in output, output
    code, _, output = drift_cli("--db", store.url, "--version", "0123456789ab")
    assert code == 2 and "not in the registry" in output and "--model" in output, output


def test_reference_is_cached_and_missing_data_is_a_clear_error(model_run, tmp_path, texts, monkeypatch):
    from fieldtune.artifacts import model_version, read_meta
    from fieldtune.monitoring import reference

    model_dir = model_run / "model"
    meta = read_meta(model_dir)
    version = model_version(meta)
    ref = load_reference(model_dir, meta, version, tmp_path / "cache")
    assert {p.name for p in (tmp_path / "cache" / version).iterdir()} == {"reference.json", "reference.npz"}
    assert ref.texts == 36 and ref.embeddings.shape == (36, 384) and "pin" in ref.vocab
    assert ref.source.startswith("dev ") and 0 < ref.oov_rate < 0.5 and sum(ref.label_counts.values()) == 36

    def no_compute(*args, **kwargs):
        raise AssertionError("the cached reference should have been used")

    monkeypatch.setattr(reference, "compute_reference", no_compute)
    cached = load_reference(model_dir, meta, version, tmp_path / "cache")
    assert cached.vocab == ref.vocab and np.array_equal(cached.embeddings, ref.embeddings)
    assert cached.label_counts == ref.label_counts and cached.oov_rate == ref.oov_rate
    monkeypatch.undo()

    moved = json.loads(json.dumps(meta))
    moved["config"]["data"]["dev"] = str(tmp_path / "gone" / "dev.csv")
    with pytest.raises(UserError, match="dev data is not here") as err:
        compute_reference(model_dir, moved, version)
    assert "gone/dev.csv" in str(err.value) and "--reference" in str(err.value)

    (tmp_path / "ref.txt").write_text("\n".join(texts["in_distribution"]) + "\n", encoding="utf-8")
    ref = compute_reference(model_dir, moved, version, reference_file=tmp_path / "ref.txt")
    assert ref.texts == 36 and ref.source.endswith("ref.txt") and ref.vocab_source == "training texts"


def test_data_paths_relative_to_where_training_ran(tmp_path):
    from fieldtune.monitoring.reference_data import existing_data_file

    model_dir = tmp_path / "project" / "runs" / "intents" / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "fieldtune.json").write_text("{}")
    (tmp_path / "project" / "data").mkdir()
    (tmp_path / "project" / "data" / "train.csv").write_text("text,label\n")
    config = {"output": "runs/intents"}
    assert existing_data_file("data/train.csv", model_dir, config) == tmp_path / "project" / "data" / "train.csv"
    assert existing_data_file("data/missing.csv", model_dir, config) is None
    assert existing_data_file("data/train.csv", model_dir, {"output": "elsewhere/run"}) is None


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

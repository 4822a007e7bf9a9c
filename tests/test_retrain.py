"""Retraining end to end with real models: feedback -> challenger -> decision, and kill -9 safety."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SAMPLES, overfit_config
from typer.testing import CliRunner

import fieldtune
from fieldtune.cli import app
from fieldtune.monitoring.retrain import Policy, retrain
from fieldtune.store import Feedback, Store
from fieldtune.store.registry import promote, register_model, rollback, verify

OLD = ("card_arrival", "exchange_rate", "pin_blocked")
NEW = "top_up_failed"  # an intent the champion never saw
FAST = ["train.epochs=6", "train.checkpoint=true"]


def rows(name: str) -> list[dict]:
    with open(SAMPLES / "banking77" / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, items: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "category": r["category"]} for r in items)
    return path


@pytest.fixture(scope="module")
def shifted(tmp_path_factory) -> dict[str, Path]:
    """A champion trained on three intents, and corrections that bring a fourth."""
    root = tmp_path_factory.mktemp("shift")
    train = rows("train.csv")
    by = {i: [r for r in train if r["category"] == i] for i in (*OLD, NEW)}
    files = {
        "train": write_csv(root / "train.csv", [r for i in OLD for r in by[i][:8]]),
        "dev": write_csv(root / "dev.csv", [r for i in OLD for r in by[i][8:12]]),
        "test": write_csv(root / "test.csv", [r for r in rows("test.csv") if r["category"] in OLD]),
        "feedback": write_csv(root / "feedback.csv", by[NEW][:20] + by["pin_blocked"][12:16]),
    }
    config = overfit_config("classification", files["train"], root / "champion", epochs=6, batch_size=8, seed=3)
    config["data"].update(dev=str(files["dev"]), test=str(files["test"]))
    config["train"]["checkpoint"] = True
    files["champion"] = fieldtune.train(config, progress=False).output_dir
    return files


def fresh_store(tmp_path: Path, shifted) -> tuple[Store, str]:
    store = Store(f"sqlite:///{tmp_path / 'fieldtune.db'}")
    row, _ = register_model(store, shifted["champion"])
    promote(store, row.version)
    return store, row.version


def import_feedback(store: Store, path: Path, *extra: str):
    return CliRunner().invoke(app, ["feedback", "import", str(path), "--db", store.url, *extra])


def test_feedback_import_checks_every_row_first(tmp_path, shifted):
    store, _ = fresh_store(tmp_path, shifted)
    refused = import_feedback(store, shifted["feedback"])
    assert refused.exit_code == 2 and "feedback.csv:2: unknown label(s) ['top_up_failed']" in refused.output
    assert store.count(Feedback) == 0  # all or nothing
    done = import_feedback(store, shifted["feedback"], "--allow-new-labels", "--source", "agents")
    assert done.exit_code == 0, done.output
    assert store.count(Feedback) == 24 and {f.source for f in store.feedback()} == {"agents"}


def test_retrain_learns_the_new_intent_and_promotes_with_its_numbers(tmp_path, shifted):
    store, champion = fresh_store(tmp_path, shifted)
    policy = Policy(min_feedback=10, tolerance=0.25, holdout=0.25)
    root = tmp_path / "retrain"
    assert retrain(store, policy, root=root, overrides=FAST, progress=False).action == "skip"  # no feedback yet

    import_feedback(store, shifted["feedback"], "--allow-new-labels")
    outcome = retrain(store, policy, root=root, overrides=FAST, progress=False)
    assert outcome.action == "promote", outcome.reason
    new = store.champion()
    assert new.version == outcome.challenger != champion and new.parent == champion
    assert store.model(champion).stage == "archived"

    # the frozen holdout is the champion's own test file; the feedback holdout never trained
    splits = {f.split for f in store.feedback()}
    assert splits == {"train", "holdout"}
    data = outcome.output / "data"
    seen = (data / "train.jsonl").read_text(encoding="utf-8") + (data / "dev.jsonl").read_text(encoding="utf-8")
    for f in store.feedback():  # training feedback is trained on (or selects the model); holdout feedback never
        assert (json.dumps(f.text, ensure_ascii=False) in seen) == (f.split == "train")
    assert NEW in (data / "dev.jsonl").read_text(encoding="utf-8")  # model selection sees the new intent
    assert (outcome.output / "data" / "holdout.jsonl").read_text().count("\n") == len(
        [r for r in rows("test.csv") if r["category"] in OLD]
    )
    summary = outcome.scores["summary"]
    assert summary["champion"]["feedback"] < summary["challenger"]["feedback"]  # the new intent is learned
    assert NEW in fieldtune.load(new.path).labels
    decision = store.decisions()[-1]
    assert decision.action == "promote" and decision.details["delta"] > 0 and decision.details["feedback_max_id"] == 24
    assert json.loads((outcome.output / "decision.json").read_text())["action"] == "promote"

    again = retrain(store, policy, root=root, overrides=FAST, progress=False)
    assert again.action == "skip" and "0 new corrections" in again.reason  # cron-safe: nothing twice
    assert rollback(store) == (new.version, champion)


def test_a_challenger_that_loses_a_class_is_rejected(tmp_path, shifted):
    store, champion = fresh_store(tmp_path, shifted)
    import_feedback(store, shifted["feedback"], "--allow-new-labels")
    # rehearse almost nothing of the old data and demand a huge margin: it cannot win
    policy = Policy(min_feedback=10, margin=0.5, rehearsal=0.0, min_per_class=1)
    outcome = retrain(store, policy, root=tmp_path / "retrain", overrides=FAST, progress=False)
    assert outcome.action == "reject"
    assert store.champion().version == champion and store.model(outcome.challenger).stage == "rejected"
    assert store.decisions()[-1].action == "reject" and "rejected" in store.decisions()[-1].reason


def test_kill_9_mid_retrain_leaves_the_champion_and_a_rerun_completes(tmp_path, shifted):
    store, champion = fresh_store(tmp_path, shifted)
    import_feedback(store, shifted["feedback"], "--allow-new-labels")
    root = tmp_path / "retrain"
    overrides = ["train.epochs=8", "train.checkpoint=true"]
    cmd = [sys.executable, "-m", "fieldtune.cli", "retrain", "--db", store.url, "--output", str(root), *overrides]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and not list(root.glob("*/checkpoints/last")):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    [out] = [p for p in root.iterdir() if p.is_dir()]
    assert not (out / "model").exists()  # training was cut short
    assert store.champion().version == champion and len(store.models()) == 1  # registry untouched
    verify(store.champion())  # and the champion still loads and predicts

    outcome = retrain(store, Policy(min_feedback=10, tolerance=0.25), root=root, overrides=overrides, progress=False)
    assert outcome.output == out  # the same run, resumed
    assert outcome.action in ("promote", "reject")
    champions = [m for m in store.models() if m.stage == "champion"]
    assert len(champions) == 1 and len(store.models()) == 2
    assert store.model(outcome.challenger).stage in ("champion", "rejected")


def test_a_class_regression_must_be_beyond_chance():
    from fieldtune.data.examples import TextExample
    from fieldtune.monitoring.retrain import _paired_tests

    examples = [TextExample(f"t{i}", ("a" if i < 40 else "b",)) for i in range(80)]
    old = [True] * 80
    new = [i >= 8 for i in range(40)] + [i != 41 for i in range(40, 80)]  # a: 8 of 40 lost; b: 1 of 40
    tests = _paired_tests(examples, old, new)
    assert tests["a"]["lost"] == 8 and tests["a"]["won"] == 0 and tests["a"]["p_value"] < 0.01
    assert tests["b"]["lost"] == 1 and tests["b"]["p_value"] == 0.5  # one flip is chance
    assert _paired_tests(examples, None, None) == {}

"""The loop: early stopping restores the best weights, seeds reproduce, methods freeze what they say,
and a run killed with SIGKILL resumes to exactly the metrics of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import transformers
import yaml
from accelerate import Accelerator
from conftest import overfit_config

import fieldtune
from fieldtune.config import TrainConfig
from fieldtune.errors import UserError
from fieldtune.methods import apply_method
from fieldtune.tasks import get_task
from fieldtune.training.budget import plan_budget
from fieldtune.training.loop import Loop
from fieldtune.zoo import resolve


@pytest.fixture(scope="module")
def tiny_model():
    def make():
        torch.manual_seed(0)
        return transformers.AutoModelForSequenceClassification.from_pretrained(resolve("minilm"), num_labels=3)

    return make


def test_early_stopping_restores_the_best_weights(tiny_model):
    model = tiny_model()
    feats = [{"input_ids": [101, 2000 + i, 102], "labels": i % 3, "example": i} for i in range(16)]
    scores, seen = iter([0.5, 0.8, 0.6, 0.7, 0.9]), []

    def evaluate(m):
        seen.append(m.classifier.weight.detach().clone())
        return {"accuracy": next(scores)}

    cfg = TrainConfig(epochs=5, batch_size=4, patience=2, checkpoint=False, lr=1e-3)
    loss = get_task("classification").loss
    state = Loop(
        model,
        feats,
        evaluate,
        cfg,
        "accuracy",
        Accelerator(cpu=True),
        0,
        progress=False,
        loss=loss,
        budget=plan_budget(cfg, len(feats), "encoder"),
    ).run()
    assert len(seen) == 4 and state.stopped_early  # 0.6 and 0.7 don't beat 0.8: stop after 2 bad evals
    assert state.best == 0.8 and state.best_epoch == 2.0
    assert torch.equal(model.classifier.weight, seen[1])  # weights of the best evaluation, not the last
    assert not torch.equal(seen[1], seen[3])


def _scripted_run(model, curve: list[float], min_steps: int) -> tuple[object, int]:
    """An automatic-budget run over 16 examples in batches of 4 (4 steps an epoch) whose dev scores are
    ``curve`` (then flat at its last value); returns its state and the evaluations made."""
    feats = [{"input_ids": [101, 2000 + i, 102], "labels": i % 3, "example": i} for i in range(16)]
    scores, made = iter(curve), [0]

    def evaluate(_):
        made[0] += 1
        return {"accuracy": next(scores, curve[-1])}

    cfg = TrainConfig(batch_size=4, min_steps=min_steps, checkpoint=False, lr=1e-4)
    budget = plan_budget(cfg, len(feats), "encoder")
    loss = get_task("classification").loss
    loop = Loop(
        model, feats, evaluate, cfg, "accuracy", Accelerator(cpu=True), 0, progress=False, loss=loss, budget=budget
    )
    return loop.run(), made[0], budget


def test_the_automatic_budget_runs_past_its_plan_while_dev_improves(tiny_model):
    # plan: 12 steps = 3 epochs; horizon 3x = 9 epochs. Improving every epoch: all 9 run, the last is best
    state, evals, budget = _scripted_run(tiny_model(), [0.1 * k for k in range(1, 10)], min_steps=12)
    assert (budget.epochs, budget.total_steps, budget.min_steps) == (9, 36, 12)
    assert evals == 9 and state.step == 36 and state.best_epoch == 9.0 and not state.stopped_early
    # converged after the plan: best at epoch 3, three flat evaluations, stop at epoch 6
    state, evals, _ = _scripted_run(tiny_model(), [0.2, 0.4, 0.6], min_steps=12)
    assert state.stopped_early and evals == 6 and state.best_epoch == 3.0 and state.step == 24


def test_a_run_converged_at_its_plan_stops_after_two_flat_evaluations_past_it(tiny_model):
    # the plan's last evaluation gained 0.6% (< CONVERGED_GAIN): two flat evaluations past the plan end it
    state, evals, budget = _scripted_run(tiny_model(), [0.8, 0.9, 0.905], min_steps=12)
    assert (budget.patience, budget.converged_patience) == (3, 2)
    assert state.stopped_early and evals == 5 and state.best_epoch == 3.0 and state.plan_gain < 0.02
    # ... but it goes on while the extension still improves, a dip included
    state, evals, _ = _scripted_run(tiny_model(), [0.8, 0.9, 0.905, 0.9, 0.95, 0.96], min_steps=12)
    assert state.stopped_early and evals == 8 and state.best_epoch == 6.0
    # a patience the user set holds past the plan too
    assert plan_budget(TrainConfig(patience=3), 16, "encoder").converged_patience == 3


TOTAL, EMBEDDINGS, LAYER = 22_714_371, 11_918_592, 1_774_464  # MiniLM-L6 + a 3-label head (384 * 3 + 3)


@pytest.mark.parametrize(
    "method,expected", [("full", TOTAL), ("head", 1_155), ("freeze", TOTAL - EMBEDDINGS - 2 * LAYER)]
)
def test_methods_report_trainable_parameters(tiny_model, method, expected):
    _, counts = apply_method(tiny_model(), method, freeze_layers=2)
    assert counts["total"] == TOTAL
    assert counts["trainable"] == expected


def test_same_seed_same_metrics(cls_file, tmp_path):
    runs = [
        fieldtune.train(
            overfit_config("classification", cls_file, tmp_path / f"r{i}", epochs=2, dropout=0.1), progress=False
        )
        for i in range(2)
    ]
    a, b = (json.loads((r.output_dir / "log.jsonl").read_text().splitlines()[-1]) for r in runs)
    assert a["train_loss"] == b["train_loss"] and a["dev"] == b["dev"]
    assert runs[0].metrics["test"] == runs[1].metrics["test"]


def test_optimizer_variants_train(cls_file, tmp_path):
    """SGD, cosine schedule, accumulation, fp32 and clipping off all run and still learn."""
    cfg = overfit_config(
        "classification",
        cls_file,
        tmp_path / "sgd",
        epochs=12,
        optimizer="sgd",
        lr=0.05,
        schedule="cosine",
        grad_accum=2,
        precision="fp32",
        grad_clip=None,
        batch_size=2,
    )
    result = fieldtune.train(cfg, progress=False)
    assert result.metrics["train"]["steps"] == 12 * 3  # 12 examples / batch 2 / accumulate 2
    assert result.metrics["test"]["accuracy"] >= 0.9


def _launch(config_path, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "fieldtune.cli", "train", str(config_path), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_resume_after_kill_matches_uninterrupted_run(cls_file, tmp_path):
    def config(name):
        cfg = overfit_config("classification", cls_file, tmp_path / name, epochs=6, dropout=0.1, checkpoint=True)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    full = _launch(config("full"))
    assert full.wait(timeout=600) == 0
    killed = _launch(config("killed"))
    loop_file = tmp_path / "killed" / "checkpoints" / "last" / "loop.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if loop_file.exists() and json.loads(loop_file.read_text())["epoch"] >= 2:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "model").exists()  # no artifact from a killed run
    resumed = _launch(config("killed"), "--resume")
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    logs = [[json.loads(x) for x in (tmp_path / n / "log.jsonl").read_text().splitlines()] for n in ("full", "killed")]
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in log] for log in logs]
    assert strip[1] == strip[0]  # every evaluation, before and after the kill, bit-for-bit the same
    metrics = [json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("full", "killed")]
    assert metrics[0]["test"] == metrics[1]["test"]
    for name in ("full", "killed"):  # a finished run keeps its files, not its resumable state
        assert not (tmp_path / name / "checkpoints").exists()
    log = (tmp_path / "full" / "log.jsonl").read_text()
    with pytest.raises(UserError, match="this run finished"):  # and the finished run's files stay as they were
        fieldtune.train(yaml.safe_load(config("full").read_text()), resume=True, progress=False)
    assert (tmp_path / "full" / "log.jsonl").read_text() == log

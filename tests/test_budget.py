"""The training budget: defaults that fit the data, explicit settings that mean exactly what they say."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import conll_sentences

import fieldtune
from fieldtune.config import TrainConfig
from fieldtune.tasks import get_task
from fieldtune.training.budget import LARGE_DATA, MAX_EVALS, plan_budget
from fieldtune.training.optim import build_scheduler

SAMPLES = Path(fieldtune.__file__).parent / "samples"
INTENTS = ("card_arrival", "exchange_rate", "pin_blocked", "age_limit", "lost_or_stolen_card", "verify_my_identity")


def test_small_data_gets_enough_steps_large_data_three_epochs_then_on_while_improving():
    small = plan_budget(TrainConfig(), 400, "encoder")  # plan: 8 epochs of 25 steps; horizon 3x the plan
    assert (small.batch_size, small.epochs, small.total_steps, small.min_steps) == (16, 24, 600, 200)
    assert small.automatic and small.eval_every is None and small.max_seconds == 3600 and small.patience == 3
    assert small.lr == 1e-4 and any("lr 0.0001: method full" in w for w in small.why)
    assert small.converged_patience == 2 and any("2 flat evaluations if the plan's last" in w for w in small.why)
    large = plan_budget(TrainConfig(), 14_000, "encoder")
    assert (large.batch_size, large.epochs, large.total_steps) == (32, 9, 9 * 438)  # plan: 3 epochs
    assert plan_budget(TrainConfig(), LARGE_DATA - 1, "encoder").batch_size == 16


def test_learning_rate_anneals_at_the_plan_then_restarts_at_the_peak_for_the_extension():
    b = plan_budget(TrainConfig(), 400, "encoder")  # plan 200 steps, horizon 600
    assert (b.plan_steps, b.total_steps) == (200, 600)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, TrainConfig(), b.total_steps, b.plan_steps)
    rates = []
    for _ in range(b.total_steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    warmup = round(TrainConfig().warmup_ratio * 200)
    assert rates[0] == 0 and max(rates) == pytest.approx(1.0) and rates.index(max(rates)) == warmup
    assert rates[199] < 0.01  # annealed where a converged run stops
    assert rates[200] == pytest.approx(1.0) and rates[599] < 0.01  # the extension: the peak again, down to 0
    assert all(a >= b for a, b in zip(rates[200:], rates[201:]))
    assert all(a >= b for a, b in zip(rates[warmup:200], rates[warmup + 1 : 200]))
    explicit = plan_budget(TrainConfig(epochs=4), 400, "encoder")
    assert explicit.plan_steps == explicit.total_steps  # one cycle: exactly what was asked


def test_tiny_data_is_capped_in_epochs_and_evaluations():
    tiny = plan_budget(TrainConfig(), 40, "encoder")  # 3 steps an epoch: 67 epochs for 200 steps
    assert tiny.epochs == 40 and tiny.total_steps == 120 and tiny.min_steps == 120
    assert tiny.eval_every == 5 and tiny.total_steps / tiny.eval_every <= MAX_EVALS


def test_explicit_settings_mean_exactly_that():
    b = plan_budget(TrainConfig(epochs=2, lr=3e-5, batch_size=10), 95, "encoder")
    assert (b.epochs, b.total_steps, b.lr, b.batch_size, b.min_steps) == (2, 20, 3e-5, 10, 0)
    assert not b.automatic and b.max_seconds is None and b.why == [] and b.patience is None
    assert plan_budget(TrainConfig(epochs=2, patience=2), 95, "encoder").patience == 2
    assert plan_budget(TrainConfig(patience=0), 95, "encoder").patience is None  # 0: never stop early
    steps = plan_budget(TrainConfig(max_steps=7, batch_size=10), 95, "encoder")
    assert (steps.epochs, steps.total_steps) == (1, 7)
    assert plan_budget(TrainConfig(epochs=5, max_steps=12, batch_size=10), 95, "encoder").total_steps == 12
    accum = plan_budget(TrainConfig(epochs=1, batch_size=10, grad_accum=2), 95, "encoder")
    assert accum.total_steps == 5  # 10 batches, an optimizer step every 2


@pytest.mark.parametrize(
    "method,kind,lr",
    [("lora", "encoder", 2e-3), ("lora", "causal_lm", 5e-4), ("ia3", "causal_lm", 3e-3), ("head", "encoder", 1e-3)],
)
def test_each_method_has_its_own_learning_rate(method, kind, lr):
    assert plan_budget(TrainConfig(), 300, kind, method).lr == lr
    assert plan_budget(TrainConfig(lr=1e-5), 300, kind, method).lr == 1e-5


def test_many_labels_get_more_steps():
    few, many = (
        plan_budget(TrainConfig(), 385, "encoder", n_labels=3),
        plan_budget(TrainConfig(), 385, "encoder", n_labels=77),
    )
    assert few.min_steps == 200 and many.min_steps == 770 and many.total_steps == 40 * 25  # 31 planned, cap 40
    assert any("10 per label, 77 labels" in w for w in many.why)
    assert plan_budget(TrainConfig(epochs=2), 385, "encoder", n_labels=77).total_steps == 50  # explicit wins


def test_many_classes_learn_at_the_task_s_rate_with_fewer_steps_a_label():
    many = plan_budget(TrainConfig(), 770, "encoder", n_labels=77, many_class_lr=3e-4)  # 49 steps an epoch
    assert (many.lr, many.head_lr, many.min_steps, many.plan_steps) == (3e-4, 3e-4, 7 * 77, 11 * 49)
    assert any(w.startswith("lr 0.0003: 77 classes (more than 20) with few examples each") for w in many.why)
    plenty = plan_budget(TrainConfig(), 9003, "encoder", n_labels=77, many_class_lr=3e-4)  # 3 epochs: 846 > 7 * 77
    assert (plenty.lr, plenty.min_steps, plenty.plan_steps) == (1e-4, 770, 846)
    assert any("7 per label, 77 labels" in w for w in many.why)
    assert [get_task(t).many_class_lr for t in ("classification", "multilabel", "ner")] == [3e-4, None, None]
    twenty = plan_budget(TrainConfig(), 770, "encoder", n_labels=20, many_class_lr=3e-4)
    assert (twenty.lr, twenty.min_steps) == (1e-4, 200)  # not many
    multilabel = plan_budget(TrainConfig(), 225, "encoder", n_labels=30)  # the task has no many-class rate
    assert (multilabel.lr, multilabel.min_steps) == (1e-4, 300)
    set_lr = plan_budget(TrainConfig(lr=1e-4), 770, "encoder", n_labels=77, many_class_lr=3e-4)
    assert (set_lr.lr, set_lr.min_steps) == (1e-4, 770)  # a set rate: 10 steps a label, as before
    assert plan_budget(TrainConfig(), 770, "encoder", "lora", n_labels=77, many_class_lr=3e-4).lr == 2e-3  # higher


def test_a_classifier_over_many_intents_trains_at_the_many_class_rate(tmp_path):
    rows = _banking_sample()
    for i, row in enumerate(rows):  # 13 real intents, each split in two: 26 classes
        row["category"] += f"_{i % 2}"
    path = _write_csv(tmp_path / "train.csv", rows)
    cfg = {"task": "classification", "data": {"train": str(path)}, "output": str(tmp_path / "out")}
    stats = fieldtune.train({**cfg, "train": {"checkpoint": False, "max_steps": 2}}, progress=False).metrics["train"]
    assert stats["budget"]["lr"] == 3e-4 and stats["budget"]["head_lr"] == 3e-4 and stats["steps"] == 2


def test_a_decoder_trains_in_batches_of_eight():
    assert plan_budget(TrainConfig(), 240, "causal_lm", "lora").batch_size == 8


@pytest.fixture(scope="module")
def six_intents(tmp_path_factory) -> tuple[Path, Path]:
    """72 real BANKING77 queries to train on (12 of each of 6 intents) and 48 others to select on."""
    rows = _banking_sample()
    folder = tmp_path_factory.mktemp("six")
    train, dev = [], []
    for intent in INTENTS:
        mine = [r for r in rows if r["category"] == intent]
        train, dev = train + mine[:12], dev + mine[12:20]
    return _write_csv(folder / "train.csv", train), _write_csv(folder / "dev.csv", dev)


def _banking_sample() -> list[dict[str, str]]:
    """The shipped BANKING77 sample's training rows (text, category)."""
    with open(SAMPLES / "banking77" / "train.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _config(six_intents, output: Path, **train) -> dict:
    train_file, dev_file = six_intents
    data = {"train": str(train_file), "dev": str(dev_file)}
    return {"task": "classification", "data": data, "output": str(output), "train": {"checkpoint": False, **train}}


@pytest.fixture(scope="module")
def ner_sentences(tmp_path_factory) -> Path:
    """32 real WNUT-17 sentences with entities: a few hundred words to tag."""
    sents = [s for s in conll_sentences(SAMPLES / "wnut17" / "train.txt") if any(not w.endswith("\tO") for w in s)]
    path = tmp_path_factory.mktemp("ner32") / "train.txt"
    path.write_text("\n\n".join("\n".join(s) for s in sents[:32]) + "\n", encoding="utf-8")
    return path


def test_defaults_learn_a_small_task_that_three_epochs_underfit(ner_sentences, tmp_path):
    data = {"train": str(ner_sentences), "dev": str(ner_sentences)}  # can the model learn what it is shown?

    def train(name: str, **settings) -> dict:
        cfg = {"task": "ner", "data": data, "output": str(tmp_path / name), "train": {"checkpoint": False, **settings}}
        return fieldtune.train(cfg, progress=False).metrics

    three, default = train("three", epochs=3), train("default")
    # 32 sentences in batches of 16: 3 epochs are 6 steps; the default budget runs 40 epochs (the cap), 80 steps
    assert three["train"]["steps"] == 6 and default["train"]["budget"]["automatic"]
    assert three["dev"]["f1"] < 0.3
    assert default["dev"]["f1"] >= 0.8
    report = (tmp_path / "default" / "report.md").read_text()
    assert "automatic budget" in report and "train.min_steps" in report


def test_explicit_epochs_run_exactly_without_early_stopping(six_intents, tmp_path):
    run = fieldtune.train(_config(six_intents, tmp_path / "two", epochs=2), progress=False)
    stats = run.metrics["train"]
    assert stats["steps"] == 2 * 5 and stats["epochs"] == 2.0 and stats["budget"]["total_steps"] == 10
    evals = [json.loads(line) for line in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in evals if e.get("event") == "eval"] == [1.0, 2.0]


def test_steps_between_evaluations_and_the_last_step_are_evaluated(six_intents, tmp_path):
    run = fieldtune.train(_config(six_intents, tmp_path / "every", epochs=3, eval_every=4), progress=False)
    evals = [json.loads(line) for line in (tmp_path / "every" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals if e.get("event") == "eval"] == [4, 8, 12, 15]  # 5 steps an epoch
    assert run.metrics["train"]["steps"] == 15


def test_the_time_limit_stops_training_and_keeps_the_best(six_intents, tmp_path):
    run = fieldtune.train(_config(six_intents, tmp_path / "timed", max_minutes=0.001), progress=False)
    stats = run.metrics["train"]
    assert stats["stop_reason"] == "time limit" and stats["steps"] < stats["budget"]["total_steps"]
    assert (tmp_path / "timed" / "model").is_dir() and run.metrics["dev"]["accuracy"] is not None


def test_a_multilabel_head_starts_at_the_label_base_rate():
    from fieldtune.data.examples import TextExample
    from fieldtune.recipes.encoder import start_head
    from fieldtune.tasks import get_task

    examples = [TextExample(text=f"t{i}", labels=("a",) if i < 3 else ("b",)) for i in range(9)]
    bias = get_task("multilabel").head_bias(examples, ["a", "b", "c"])
    p = 1 / (1 + np.exp(-bias))
    assert p[0] == pytest.approx(3.5 / 10) and p[1] == pytest.approx(6.5 / 10) and p[2] < 0.06
    assert get_task("classification").head_bias(examples, ["a", "b"]) is None

    class Head(torch.nn.Module):
        base_model_prefix = "bert"

        def __init__(self):
            super().__init__()
            self.bert, self.classifier = torch.nn.Linear(2, 2), torch.nn.Linear(4, 3)

    model = Head()
    start_head(model, bias)
    assert torch.allclose(model.classifier.bias, torch.tensor(bias, dtype=torch.float32))


@pytest.mark.parametrize("method", ["full", "lora"])
def test_the_new_head_learns_at_its_own_rate(method):
    from fieldtune.config import RunConfig
    from fieldtune.methods import apply_method
    from fieldtune.models.encoder import load_encoder
    from fieldtune.training.optim import build_optimizer

    cfg = RunConfig.model_validate({"task": "ner", "method": method, "data": {"train": "x"}})
    model = load_encoder(cfg, "AutoModelForTokenClassification", ["O", "B-X", "I-X"], {}, "eager").model
    assert set(model.new_parameters) == {"classifier.bias", "classifier.weight"}  # what the checkpoint lacked
    model, _ = apply_method(model, method)
    opt = build_optimizer(model, TrainConfig(), 1e-4, plan_budget(TrainConfig(), 100, "encoder", head_lr=1e-3).head_lr)
    head = {id(p) for n, p in model.named_parameters() if "classifier" in n and p.requires_grad}
    rates = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert len(head) == 2 and all(rates[i] == pytest.approx(1e-3) for i in head)
    assert {r for i, r in rates.items() if i not in head} == {1e-4}
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert sorted(decay[i] for i in head) == [0.0, 0.01]  # the bias without decay, the weight with


def test_the_new_head_rate_is_the_task_s_at_least_unless_set():
    ner = 1e-3  # TokenClassification.new_head_lr
    assert get_task("ner").new_head_lr == ner and get_task("classification").new_head_lr is None
    full = plan_budget(TrainConfig(), 400, "encoder", head_lr=ner)
    assert full.head_lr == 1e-3 and full.lr == 1e-4  # body 1e-4
    assert any(w.startswith("head lr 0.001") for w in full.why)
    assert plan_budget(TrainConfig(), 400, "encoder").head_lr == 1e-4  # classification: the body's
    assert plan_budget(TrainConfig(), 400, "encoder", method="lora", head_lr=ner).head_lr == 2e-3  # body's higher
    assert plan_budget(TrainConfig(lr=3e-5, head_lr=5e-4), 400, "encoder").head_lr == 5e-4
    assert plan_budget(TrainConfig(lr=3e-5), 400, "encoder", head_lr=ner).head_lr == 3e-5  # a set lr: everything

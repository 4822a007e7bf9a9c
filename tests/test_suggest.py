"""``fieldtune suggest``: strategies rank hand-made cases, batches are distinct, new, repeatable and
spread out, the file trains and imports as it is, and --from-store picks only uncorrected predictions."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLES, overfit_config
from typer.testing import CliRunner

import fieldtune
from fieldtune.active.output import Suggestion, write_suggestions
from fieldtune.active.pool import Candidate, read_pool, store_candidates, text_key
from fieldtune.active.scoring import scores
from fieldtune.active.select import k_center, select
from fieldtune.active.suggest import suggest
from fieldtune.cli import app
from fieldtune.config import DataConfig
from fieldtune.data.readers import read_examples
from fieldtune.errors import UserError
from fieldtune.store import Store
from fieldtune.store.registry import promote, register_model
from fieldtune.tasks import get_task
from fieldtune.utils.hashing import text_sha256

runner = CliRunner()


# ---------------------------------------------------------------- strategies on hand-made cases
def test_classification_strategies_rank_the_unsure_first():
    preds = [
        {"a": 0.98, "b": 0.01, "c": 0.01},  # sure
        {"a": 0.50, "b": 0.50, "c": 0.00},  # a coin flip between two: smallest margin
        {"a": 0.40, "b": 0.30, "c": 0.30},  # lowest top probability
        {"a": 0.34, "b": 0.33, "c": 0.33},  # nearly uniform: highest entropy, least confident
    ]
    assert list(np.argsort(-scores("classification", preds, "uncertainty"))) == [3, 2, 1, 0]
    assert list(np.argsort(-scores("classification", preds, "margin")))[:2] == [1, 3]
    assert list(np.argsort(-scores("classification", preds, "entropy"))) == [3, 2, 1, 0]
    assert scores("classification", preds, "entropy").max() <= 1.0


def test_multilabel_and_ner_uncertainty():
    ml = [
        {"scores": {"a": 0.95, "b": 0.02}, "threshold": 0.5},
        {"scores": {"a": 0.55, "b": 0.45}, "threshold": 0.5},  # both labels next to the threshold
        {"scores": {"a": 0.50, "b": 0.99}, "threshold": 0.5},  # one label on it
    ]
    assert list(np.argsort(-scores("multilabel", ml, "uncertainty"))) == [1, 2, 0]
    assert np.argmax(scores("multilabel", ml, "margin")) == 2
    assert scores("multilabel", ml, "entropy").argmin() == 0
    ner = [(["O", "B-PER"], [0.99, 0.98]), (["O", "O", "B-LOC"], [0.99, 0.97, 0.41]), (["O"], [0.95])]
    for strategy in ("uncertainty", "margin", "entropy"):
        assert list(np.argsort(-scores("ner", ner, strategy))) == [1, 2, 0], strategy


def test_unknown_strategy_and_generation_are_refused():
    with pytest.raises(UserError, match="unknown strategy"):
        scores("classification", [], "confused")
    with pytest.raises(UserError, match="causal_lm"):
        scores("causal_lm", [{"x": 1}], "uncertainty")


def test_selection_is_distinct_and_deterministic_per_seed():
    values = np.array([0.5, 0.5, 0.5, 0.9, 0.1, 0.5, 0.5])
    for strategy in ("uncertainty", "random"):
        a, b = select(values, 4, strategy, seed=3), select(values, 4, strategy, seed=3)
        assert list(a) == list(b) and len(set(a.tolist())) == 4
    assert select(values, 4, "uncertainty", seed=3)[0] == 3  # ties broken by the seed, never the top
    draws = {tuple(select(values, 4, "random", seed=s)) for s in range(5)}
    assert len(draws) > 1
    assert len(select(values, 99, "uncertainty", seed=0)) == len(values)


def test_k_center_skips_near_duplicates():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 16))
    dupes = base[0] + 1e-3 * rng.normal(size=(3, 16))  # three copies of one very uncertain text
    vectors = np.vstack([base[:1], dupes, base[1:]])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    weights = np.array([0.9, 0.9, 0.9, 0.9, 0.5, 0.4, 0.3])
    picks = k_center(vectors, weights, 4)
    assert picks[0] == 0 and sorted(picks[1:].tolist()) == [4, 5, 6]


# ---------------------------------------------------------------- suggest() with a hand-made predictor
class FakePredictor:
    """Fixed probabilities per text: what each strategy must pick is known."""

    def __init__(self, probs: dict[str, dict[str, float]]) -> None:
        self.probs, self.task = probs, get_task("classification")
        self.meta = {"task": "classification", "labels": ["a", "b"]}

    def predict_examples(self, examples):
        return [self.probs.get(ex.text, {"a": 0.99, "b": 0.01}) for ex in examples]


DUPES = ["My card still has not arrived.", "My card still hasn't arrived.", "my card still has not arrived"]


def test_suggest_drops_repeats_and_labelled_texts():
    texts = ["one", "two", "Two ", "three", "four", "labelled text"]
    probs = {t.strip(): {"a": 0.5 + 0.1 * i, "b": 0.5 - 0.1 * i} for i, t in enumerate(texts)}
    result = suggest(
        FakePredictor(probs),
        [Candidate(t, i + 1) for i, t in enumerate(texts)],
        10,
        "uncertainty",
        exclude={text_key("LABELLED  text")},
    )
    chosen = [r.text for r in result.rows]
    assert chosen == ["one", "two", "three", "four"]  # most uncertain first, "Two " is a repeat
    assert (result.repeats, result.labelled) == (1, 1)
    assert result.notes and "only 4 new texts" in result.notes[0]
    with pytest.raises(UserError, match="nothing left"):
        suggest(FakePredictor(probs), [Candidate("one")], 5, "margin", exclude={text_key("one")})


def test_diverse_does_not_pick_near_duplicates():
    others = ["What is the exchange rate for euros?", "My PIN is blocked, help", "Can I top up by bank transfer?"]
    probs = {t: {"a": 0.5, "b": 0.5} for t in DUPES} | {t: {"a": 0.7, "b": 0.3} for t in others}
    pool = [Candidate(t) for t in DUPES + others]
    plain = [r.text for r in suggest(FakePredictor(probs), pool, 3, "uncertainty", seed=0).rows]
    diverse = [r.text for r in suggest(FakePredictor(probs), pool, 3, "diverse", seed=0).rows]
    assert len(set(plain) & set(DUPES)) >= 2  # by score alone the batch repeats itself
    assert len(set(diverse) & set(DUPES)) == 1 and len(set(diverse)) == 3


# ---------------------------------------------------------------- files
def test_pool_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "pool.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(UserError) as e:
        read_pool(bad)
    assert f"{bad}:2" in str(e.value)
    nocol = tmp_path / "pool.csv"
    nocol.write_text("body,x\nhello,1\n", encoding="utf-8")
    with pytest.raises(UserError, match="no text column"):
        read_pool(nocol)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(UserError, match="empty"):
        read_pool(empty)
    with pytest.raises(UserError, match="pool from a .docx"):
        read_pool(tmp_path / "pool.docx")
    jsonl = tmp_path / "ok.jsonl"
    jsonl.write_text('"plain string"\n{"tokens": ["New", "York"]}\n{"query": "q"}\n', encoding="utf-8")
    assert [c.text for c in read_pool(jsonl)] == ["plain string", "New York", "q"]


@pytest.mark.parametrize(
    "task,name,guess",
    [
        ("multilabel", "out.jsonl", ["card", "pin"]),
        ("multilabel", "out.csv", ["card"]),
        ("ner", "out.txt", ["B-PER", "O"]),
        ("ner", "out.jsonl", ["B-PER", "O"]),
        ("classification", "out.jsonl", "card_arrival"),
    ],
)
def test_output_reads_back_in_the_training_format(tmp_path, task, name, guess):
    tokens = ("Angela", "landed") if task == "ner" else ()
    rows = [Suggestion("Angela landed", guess, 0.7, tokens), Suggestion("Angela landed", guess, 0.2, tokens)]
    files = write_suggestions(tmp_path / name, task, rows)
    examples = read_examples(files[0], task, DataConfig(train=files[0])).examples
    assert len(examples) == 2
    got = examples[0].tags if task == "ner" else examples[0].labels
    assert list(got) == ([guess] if isinstance(guess, str) else guess)
    assert len(files) == (2 if name.endswith(".txt") else 1)  # CoNLL: scores in a sidecar


# ---------------------------------------------------------------- end to end on a tiny real model
@pytest.fixture(scope="module")
def model_run(cls_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("suggest") / "run"
    config = overfit_config("classification", cls_file, out, epochs=3, batch_size=12)
    return fieldtune.train(config, progress=False).output_dir


@pytest.fixture(scope="module")
def pool_texts(cls_file) -> list[str]:
    """Real BANKING77 queries the tiny model never saw, then repeats and one of its training texts."""
    with open(cls_file, newline="", encoding="utf-8") as f:
        trained = [r["text"] for r in csv.DictReader(f)]
    with open(SAMPLES / "banking77" / "train.csv", newline="", encoding="utf-8") as f:
        rows = [r["text"] for r in csv.DictReader(f) if r["text"] not in trained]
    fresh = rows[:: max(1, len(rows) // 40)][:40]
    return fresh + [fresh[0].upper(), fresh[1] + "  ", trained[0]]


def cli(*args) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_cli_suggests_new_distinct_texts_repeatably(model_run, pool_texts, tmp_path):
    pool = tmp_path / "pool.txt"
    pool.write_text("\n".join(pool_texts) + "\n", encoding="utf-8")
    excluded = tmp_path / "labelled.csv"
    excluded.write_text(f'text,label\n"{pool_texts[5]}",card_arrival\n', encoding="utf-8")
    outputs = []
    for name in ("a.csv", "b.csv"):
        code, output = cli(
            "suggest",
            model_run,
            "--pool",
            pool,
            "--n",
            15,
            "--strategy",
            "margin",
            "--seed",
            1,
            "--exclude",
            excluded,
            "--output",
            tmp_path / name,
        )
        assert code == 0, output
        outputs.append(read_csv(tmp_path / name))
    rows = outputs[0]
    assert outputs[0] == outputs[1] and len(rows) == 15
    keys = [text_key(r["text"]) for r in rows]
    assert len(set(keys)) == 15
    assert text_key(pool_texts[5]) not in keys and text_key(pool_texts[-1]) not in keys  # --exclude, train file
    assert set(r["label"] for r in rows) <= {"card_arrival", "exchange_rate", "pin_blocked"}
    margins = [float(r["uncertainty"]) for r in rows]
    assert margins == sorted(margins, reverse=True)

    code, output = cli(
        "suggest", model_run, "--pool", pool, "--n", 500, "--strategy", "random", "--output", tmp_path / "all.jsonl"
    )
    assert code == 0 and "taking all" in output, output
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == 40  # the repeats and the train text are dropped


def test_cli_output_trains_and_imports(model_run, pool_texts, tmp_path):
    pool = tmp_path / "pool.csv"
    with open(pool, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["utterance"], *[[t] for t in pool_texts]])
    out = tmp_path / "to_label.csv"
    code, output = cli("suggest", model_run, "--pool", pool, "--n", 12, "--strategy", "diverse", "--output", out)
    assert code == 0, output
    config = overfit_config("classification", out, tmp_path / "retrained", epochs=1, batch_size=12)
    result = fieldtune.train(config, progress=False)
    assert result.metrics["test"]["accuracy"] >= 0

    db = f"sqlite:///{tmp_path / 'store.db'}"
    assert cli("registry", "add", model_run, "--promote", "--db", db)[0] == 0
    code, output = cli("feedback", "import", out, "--db", db)
    assert code == 0 and "stored 12 corrections" in output, output


def test_cli_errors(model_run, tmp_path):
    pool = tmp_path / "pool.csv"
    pool.write_text('text\nfine\n""\n', encoding="utf-8")
    code, output = cli("suggest", model_run, "--pool", pool, "--output", tmp_path / "o.csv")
    assert code == 2 and "pool.csv:3" in output.replace("\n", ""), output
    code, output = cli("suggest", model_run, "--pool", pool, "--output", tmp_path / "o.txt")
    assert code == 2 and ".csv or .jsonl" in output, output
    code, output = cli("suggest", model_run, "--output", tmp_path / "o.csv")
    assert code == 2 and "exactly one of" in output, output


def test_from_store_picks_only_uncorrected_predictions(model_run, tmp_path):
    db = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(db)
    version = register_model(store, model_run)[0].version
    promote(store, version, reason="test")
    t0 = datetime.now(timezone.utc)
    texts = [
        "where is my new card",
        "card still missing",
        "what rate for dollars",
        "pin locked after 3 tries",
        "is there a fee to exchange",
        "hashed one",
    ]
    store.log_predictions(
        [
            {
                "id": f"{i:032x}",
                "model_version": version,
                "created_at": t0 + timedelta(seconds=i),
                "text": None if t == "hashed one" else t,
                "text_hash": text_sha256(t),
                "output": {},
                "label": "a",
                "confidence": 0.5,
                "latency_ms": 1.0,
            }
            for i, t in enumerate(texts)
        ]
    )
    store.add_feedback(
        [
            {"prediction_id": f"{0:032x}", "text": texts[0], "label": "card_arrival"},  # by id
            {"text": texts[2], "label": "exchange_rate"},  # by text only
        ]
    )
    candidates, hashed = store_candidates(store)
    assert [c.text for c in candidates] == [texts[1], texts[3], texts[4]] and hashed == 1
    store.close()
    out = tmp_path / "to_label.jsonl"
    code, output = cli("suggest", "--from-store", "--db", db, "--n", 10, "--output", out, "--json")
    assert code == 0, output
    chosen = {json.loads(line)["text"] for line in out.read_text().splitlines()}
    assert chosen == {texts[1], texts[3], texts[4]}

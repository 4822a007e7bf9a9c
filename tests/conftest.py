"""Shared fixtures: tiny slices of the shipped real samples, and a config builder."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "fieldtune" / "samples"
SESSION = "session-"  # the folders of session-scoped fixtures are named so: they stay to the end


@pytest.fixture(scope="module", autouse=True)
def _module_folders_go(tmp_path_factory):
    """The temporary folders a test module's fixtures made (a trained model is 90-470 MB) go when the
    module ends; a test's own ``tmp_path`` goes when it passes (pyproject: ``tmp_path_retention_policy``).
    Kept: session fixtures' folders and failed tests' (named after the test). The suite kept every
    folder to its end, 10 GB, and filled a CI machine's disk."""
    base = tmp_path_factory.getbasetemp()
    before = set(base.iterdir())
    yield
    for path in set(base.iterdir()) - before:
        if not path.name.startswith((SESSION, "test_")):
            shutil.rmtree(path, ignore_errors=True)


def run(coro, timeout: float = 120):
    """Run one async test body, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextlib.asynccontextmanager
async def serving(app, headers: dict | None = None):
    """An in-process HTTP client with the app's lifespan (startup/shutdown) running around it."""
    import httpx

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
            yield client


def conll_sentences(path: Path) -> list[list[str]]:
    blocks = path.read_text(encoding="utf-8").split("\n\n")
    return [b.strip("\n").split("\n") for b in blocks if b.strip()]


@pytest.fixture(scope="session")
def ner_file(tmp_path_factory) -> Path:
    """8 real WNUT-17 sentences, each with at least one entity."""
    sents = [
        s
        for s in conll_sentences(SAMPLES / "wnut17" / "train.txt")
        if any(not line.endswith("\tO") for line in s) and len(s) <= 20
    ][:8]
    path = tmp_path_factory.mktemp(SESSION + "ner") / "tiny.txt"
    path.write_text("\n\n".join("\n".join(s) for s in sents) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def cls_file(tmp_path_factory) -> Path:
    """12 real BANKING77 queries, 4 from each of 3 intents."""
    with open(SAMPLES / "banking77" / "train.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    keep, picked = ("card_arrival", "exchange_rate", "pin_blocked"), []
    for intent in keep:
        picked += [r for r in rows if r["category"] == intent][:4]
    path = tmp_path_factory.mktemp(SESSION + "cls") / "tiny.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows(picked)
    return path


@pytest.fixture(scope="session")
def multilabel_file(tmp_path_factory) -> Path:
    """Real queries with real multi-label tags: the intent plus the topics the query mentions."""
    with open(SAMPLES / "banking77" / "train.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    picked = [r for r in rows if r["category"] in ("card_arrival", "exchange_rate")][:6]
    picked += [r for r in rows if r["category"] == "pin_blocked"][:4]
    path = tmp_path_factory.mktemp(SESSION + "ml") / "tiny.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for r in picked:
            labels = [r["category"]] + (["mentions_card"] if "card" in r["text"].lower() else [])
            f.write(json.dumps({"text": r["text"], "labels": labels}) + "\n")
    return path


def overfit_config(task: str, data: Path, output: Path, **train) -> dict:
    """Few examples, many epochs: the model must learn them perfectly."""
    settings = {
        "epochs": 25,
        "lr": 3e-4,
        "batch_size": 4,
        "patience": None,
        "warmup_ratio": 0.0,
        "checkpoint": False,
        "dropout": 0.0,
        "seed": 7,
        **train,
    }
    return {
        "task": task,
        "model": "minilm",
        "data": {"train": str(data), "dev": str(data), "test": str(data)},
        "output": str(output),
        "train": settings,
    }


# ---------------------------------------------------------------- databases
PG_URL_ENV = "FIELDTUNE_TEST_PG_URL"  # set by scripts/with-postgres (which `make test` runs under)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """An empty database: a SQLite file, and a real PostgreSQL server when one is running.

    Without PostgreSQL the postgresql cases skip with the reason shown in the summary; with
    FIELDTUNE_REQUIRE_PG=1 (CI) they fail instead, so CI can never silently skip them.
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fieldtune.db'}"
    url = os.environ.get(PG_URL_ENV)
    if not url:
        message = f"no PostgreSQL server: {PG_URL_ENV} is unset (run the tests under scripts/with-postgres)"
        if os.environ.get("FIELDTUNE_REQUIRE_PG") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:  # a clean schema for every test
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


# ---------------------------------------------------------------- watch (news monitoring)
@pytest.fixture(scope="session")
def watch_sentiment(tmp_path_factory) -> Path:
    """A real minilm sentiment model (positive / negative / neutral) from 120 shipped synthetic headlines.

    60 optimizer steps: enough on templated headlines for the obvious cases the watch tests rely on.
    """
    from fieldtune import train

    out = tmp_path_factory.mktemp(SESSION + "watch-sentiment")
    with open(SAMPLES / "watch" / "sentiment_train.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:120]
    data = out / "train.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    config = {
        "task": "classification",
        "model": "minilm",
        "data": {"train": str(data), "dev": str(SAMPLES / "watch" / "sentiment_dev.csv")},
        "output": str(out / "run"),
        "train": {"max_steps": 60, "lr": 2e-4, "batch_size": 16, "checkpoint": False, "seed": 3},
    }
    return train(config, progress=False).model_dir


# ---------------------------------------------------------------- support (customer-service assistant)
SUPPORT_INTENTS = ("card_arrival", "exchange_rate", "pin_blocked", "lost_or_stolen_card")


def _rows(path: Path, label: str, keep=None, per_label: int | None = None) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = [(r["text"], r[label]) for r in csv.DictReader(f) if keep is None or r[label] in keep]
    if per_label is None:
        return rows
    kept, seen = [], {}
    for text, intent in rows:
        seen[intent] = seen.get(intent, 0) + 1
        if seen[intent] <= per_label:
            kept.append((text, intent))
    return kept


@pytest.fixture(scope="session")
def support_built(tmp_path_factory) -> tuple[Path, Path]:
    """(assistant folder, test.csv): an assistant built from the shipped banking sample — 4 real BANKING77
    intents (30 questions each), 40 real CLINC150 out-of-scope queries, our own 77 templates — with a
    short training budget (80 steps). Tests that write to its database copy the folder first."""
    from fieldtune.apps.support.build import build_assistant

    tmp = tmp_path_factory.mktemp(SESSION + "support")
    questions = _rows(SAMPLES / "banking77" / "train.csv", "category", SUPPORT_INTENTS, 30)
    questions += _rows(SAMPLES / "support" / "oos_train.csv", "intent")[:40]
    test = _rows(SAMPLES / "banking77" / "test.csv", "category", SUPPORT_INTENTS)
    test += _rows(SAMPLES / "support" / "oos_test.csv", "intent")[:30]
    for name, rows in (("questions", questions), ("test", test)):
        with (tmp / f"{name}.csv").open("w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([("text", "intent"), *rows])
    train = {"train": {"max_steps": 80, "lr": 1e-4, "batch_size": 16, "checkpoint": False, "seed": 3}}
    build_assistant(
        SAMPLES / "support" / "templates.csv", tmp / "questions.csv", tmp / "assistant", train_config=train,
        target_precision=0.9, log=lambda _: None,
    )  # fmt: skip
    return tmp / "assistant", tmp / "test.csv"

"""The store and the registry: migrations, transactions, checked promotion, feedback validation.

Every test runs on SQLite and on a real PostgreSQL server (see ``db_url`` in conftest).
"""

from __future__ import annotations

import shutil
import threading
from datetime import datetime, timedelta, timezone

import pytest
from conftest import overfit_config
from sqlalchemy import inspect

import fieldtune
from fieldtune.errors import UserError
from fieldtune.store import Feedback, Prediction, Store
from fieldtune.store.db import current_revision, head_revision
from fieldtune.store.models import Base
from fieldtune.store.registry import promote, register_model, rollback, verify


@pytest.fixture(scope="module")
def runs(cls_file, tmp_path_factory):
    """Two tiny real classifiers (different seeds: different versions)."""
    out = []
    for seed in (1, 2):
        path = tmp_path_factory.mktemp(f"reg{seed}") / "run"
        config = overfit_config("classification", cls_file, path, epochs=1, batch_size=12, seed=seed)
        out.append(fieldtune.train(config, progress=False).output_dir)
    return out


def prediction(i: int, version: str = "v1", when: datetime | None = None) -> dict:
    return {
        "id": f"{i:032x}",
        "model_version": version,
        "created_at": when or datetime.now(timezone.utc),
        "text": f"text {i}",
        "text_hash": f"{i:064x}",
        "output": {"label": "a", "score": 0.9},
        "label": "a",
        "confidence": 0.9,
        "latency_ms": 1.5,
    }


def test_migrations_create_the_orm_schema(db_url):
    store = Store(db_url)
    assert current_revision(store.engine) == head_revision()
    insp = inspect(store.engine)
    for table in Base.metadata.sorted_tables:  # the migration and the ORM classes agree
        assert {c["name"] for c in insp.get_columns(table.name)} == set(table.columns.keys()), table.name
    assert "one_champion" in {i["name"] for i in insp.get_indexes("models")}
    Store(db_url).close()  # opening again is a no-op migration


def test_predictions_are_stored_and_windowed(db_url):
    store = Store(db_url)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    store.log_predictions([prediction(i, "v1" if i < 6 else "v2", start + timedelta(minutes=i)) for i in range(10)])
    assert store.count(Prediction) == 10
    assert [p.id for p in store.predictions(last=3)] == [f"{i:032x}" for i in (7, 8, 9)]  # newest 3, oldest first
    assert len(store.predictions(model_version="v1")) == 6
    assert len(store.predictions(since=start + timedelta(minutes=8))) == 2
    got = store.prediction(f"{3:032x}")
    assert got.output == {"label": "a", "score": 0.9} and got.created_at.replace(
        tzinfo=timezone.utc
    ) == start + timedelta(minutes=3)


def test_concurrent_feedback_writes_are_all_kept(db_url):
    """N writers at once -> exactly N rows, distinct ids (SQLite busy timeout / PostgreSQL MVCC)."""
    store = Store(db_url)
    n, ids, errors = 40, [], []

    def write(i: int) -> None:
        try:
            ids.extend(store.add_feedback([{"text": f"t{i}", "label": "a", "source": f"w{i}"}]))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.count(Feedback) == n and len(set(ids)) == n
    assert {f.source for f in store.feedback()} == {f"w{i}" for i in range(n)}


def test_a_failed_batch_stores_nothing(db_url):
    store = Store(db_url)
    with pytest.raises(KeyError):
        store.add_feedback([{"text": "ok", "label": "a"}, {"text": "no label"}])
    assert store.count(Feedback) == 0


def test_registry_promote_and_rollback(db_url, runs):
    store = Store(db_url)
    a, created = register_model(store, runs[0])
    assert created and a.stage == "challenger"
    assert not register_model(store, runs[0] / "model")[1]  # same artifact, same version: no new row
    b, _ = register_model(store, runs[1], parent=a.version)
    assert a.version != b.version
    assert promote(store, a.version) == ""
    assert promote(store, b.version, "better") == a.version
    assert store.champion().version == b.version and store.model(a.version).stage == "archived"
    assert rollback(store) == (b.version, a.version)
    assert store.champion().version == a.version and store.model(b.version).stage == "archived"
    actions = [(d.action, d.version, d.previous) for d in store.decisions()]
    assert actions[-3:] == [
        ("promote", a.version, None),
        ("promote", b.version, a.version),
        ("rollback", a.version, b.version),
    ]
    assert [m.version for m in store.models() if m.stage == "champion"] == [a.version]  # exactly one


def test_a_corrupted_or_missing_challenger_is_never_promoted(db_url, runs, tmp_path):
    store = Store(db_url)
    copies = []
    for i, run in enumerate(runs):
        copy = tmp_path / f"run{i}"
        shutil.copytree(run, copy)
        copies.append(copy)
    champion, _ = register_model(store, copies[0])
    promote(store, champion.version)
    challenger, _ = register_model(store, copies[1])

    weights = copies[1] / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match="checksum mismatch"):
        promote(store, challenger.version)

    shutil.rmtree(copies[1])
    with pytest.raises(UserError, match="folder is missing"):
        promote(store, challenger.version)
    assert store.champion().version == champion.version
    assert [d.action for d in store.decisions()].count("promote") == 1
    verify(store.champion())  # the champion itself is intact and loads


def test_two_champions_are_impossible(db_url):
    """The partial unique index backs the one-champion rule even against a buggy writer."""
    from sqlalchemy.exc import IntegrityError

    from fieldtune.store.models import ModelVersion, utcnow

    store = Store(db_url)
    now = utcnow()
    common = {"task": "classification", "path": "/x", "data_fingerprint": "f", "checksum": "c", "metrics": {}}
    with store.session() as s, s.begin():
        s.add(ModelVersion(version="a", stage="champion", created_at=now, updated_at=now, **common))
    with pytest.raises(IntegrityError), store.session() as s, s.begin():
        s.add(ModelVersion(version="b", stage="champion", created_at=now, updated_at=now, **common))


def test_bad_database_urls_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not a database URL"):
        Store("nonsense")
    with pytest.raises(UserError, match="cannot open the database"):
        Store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")

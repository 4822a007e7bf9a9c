"""The watch store and item readers: idempotent ingest, claims that never score an item twice (two
worker processes, a worker killed with SIGKILL mid-claim), alerts, baselines, and every kind of bad
input row rejected with a reason.

Store tests run on SQLite and on a real PostgreSQL server (``db_url`` in conftest; run under
``scripts/with-postgres``). Worker processes are forked, so they start without re-importing the package.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import sys
import time
import traceback
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from sqlalchemy import inspect, select

from fieldtune.apps.watch import items as items_module
from fieldtune.apps.watch.items import Item, Rejected, parse_item, read_items
from fieldtune.errors import UserError
from fieldtune.store.db import alembic_config
from fieldtune.store.watch_models import WatchMention
from fieldtune.store.watch_store import WatchStore

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
FORK = multiprocessing.get_context("fork")


@pytest.fixture
def store(db_url):
    opened = WatchStore(db_url)
    yield opened
    opened.close()  # PostgreSQL: the next test's fixture drops the schema, which open sessions would block


def news(n: int, start: int = 0) -> list[Item]:
    return [Item(f"n{i:03d}", T0 + timedelta(minutes=i), "wire", f"headline {i}") for i in range(start, start + n)]


def scores(ids, worker: str = "test", topics=("rates",), duplicate_of=None) -> list[dict]:
    """save_scores rows as a scorer returns them (numpy scalars and arrays included)."""
    return [
        {
            "id": i,
            "sentiment": "negative",
            "p_positive": np.float32(0.1),
            "p_negative": np.float32(0.8),
            "p_neutral": 0.1,
            "topics": list(topics),
            "entities": ["ICBC"],
            "orgs": ["Some Bank"],
            "embedding": np.arange(4, dtype=np.float32) + k,
            "model_versions": {"sentiment": "abc", "worker": worker},
            "duplicate_of": (duplicate_of or {}).get(i),
        }
        for k, i in enumerate(ids)
    ]


# --------------------------------------------------------------------------- schema
def test_the_watch_migration_upgrades_and_downgrades(db_url):
    store = WatchStore(db_url)
    tables = set(inspect(store.engine).get_table_names())
    assert {"watch_items", "watch_mentions", "watch_alerts", "watch_baselines"} <= tables
    indexes = {i["name"] for i in inspect(store.engine).get_indexes("watch_items")}
    assert {"ix_watch_items_status_time", "ix_watch_items_time"} <= indexes
    with store.engine.begin() as conn:  # the downgrade really removes them, and upgrading again works
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    assert not {t for t in inspect(store.engine).get_table_names() if t.startswith("watch_")}
    store.close()
    again = WatchStore(db_url)
    assert "watch_items" in inspect(again.engine).get_table_names()
    again.close()


# --------------------------------------------------------------------------- items
def test_add_items_is_idempotent_on_id(store):
    assert store.add_items(news(5)) == 5
    assert store.add_items(news(5)) == 0  # re-sending the same file adds nothing
    again = news(6) + news(1, start=5)  # one new id, sent twice in the same call
    assert store.add_items(again) == 1
    changed = Item("n000", T0, "other", "a different title")
    assert store.add_items([changed]) == 0 and store.item("n000")["title"] == "headline 0"  # the first one stays
    assert store.counts() == {"items": 6, "events": 0, "duplicates": 0, "pending": 6}
    assert store.add_items([]) == 0


def test_times_are_stored_in_utc(store):
    shanghai = timezone(timedelta(hours=8))
    store.add_items([Item("cn", datetime(2026, 3, 2, 17, 0, tzinfo=shanghai), "wire", "t")])
    assert store.item("cn")["time"] == T0 and store.item("cn")["time"].tzinfo is not None
    assert store.span() == (T0, T0)


def test_claim_and_save_scores_mark_done_and_write_mentions(store):
    store.add_items(news(4, start=1) + news(1))  # inserted out of order: a claim takes the oldest first
    with store.claim(3) as claim:
        assert [i.id for i in claim] == ["n000", "n001", "n002"]
        assert claim[0].time == T0 and claim[0].title == "headline 0"
        claim.save_scores(scores(["n000", "n001"], duplicate_of={"n001": "n000"}))  # n002 is left unsaved
        with pytest.raises(ValueError, match="does not hold"):
            claim.save_scores(scores(["n004"]))
    assert store.counts() == {"items": 5, "events": 1, "duplicates": 1, "pending": 3}
    head, copy = store.items(["n000", "n001"])
    assert head["status"] == "done" and head["copies"] == 1 and head["sentiment"] == "negative"
    assert head["p_negative"] == pytest.approx(0.8) and head["topics"] == ["rates"] and head["orgs"] == ["Some Bank"]
    assert head["model_versions"] == {"sentiment": "abc", "worker": "test"} and head["scored_at"] is not None
    assert copy["duplicate_of"] == "n000" and store.copies("n000")[0]["id"] == "n001"
    assert "embedding" not in head
    # the copy is scored but has no mentions: a syndicated story counts once
    assert store.mentions("topic", "rates") == [(T0, pytest.approx(0.8), pytest.approx(0.1), "negative", "n000")]
    assert store.mentions("entity", "ICBC", since=T0 + timedelta(seconds=1)) == []
    assert store.mentions("entity", "ICBC", until=T0 + timedelta(seconds=1))[0][4] == "n000"
    assert store.keys() == {"topic": ["rates"], "entity": ["ICBC"]}
    (event_id, embedding, *_), *_ = store.recent_events(T0, T0 + timedelta(hours=1))
    assert event_id == "n000" and embedding.dtype == np.float32 and embedding.tolist() == [0, 1, 2, 3]
    assert len(store.recent_events(T0, T0 + timedelta(hours=1))) == 1  # copies and unscored items are not events
    with store.claim(10) as claim:  # the unsaved one is still pending, first in line
        assert [i.id for i in claim] == ["n002", "n003", "n004"]


def test_a_claim_that_raises_leaves_its_items_new(store):
    store.add_items(news(3))
    with pytest.raises(RuntimeError, match="scorer crashed"), store.claim(3) as claim:
        claim.save_scores(scores([i.id for i in claim]))
        raise RuntimeError("scorer crashed")
    assert store.counts()["pending"] == 3 and store.keys() == {"topic": [], "entity": []}
    assert store.item("n000")["sentiment"] is None
    with store.claim(3) as claim:
        assert [i.id for i in claim] == ["n000", "n001", "n002"]


def test_saving_again_replaces_the_mentions(store):
    store.add_items(news(1))
    with store.claim(1) as claim:
        claim.save_scores(scores(["n000"], topics=["rates", "rates", "fx"]))  # a repeated topic counts once
        claim.save_scores(scores(["n000", "n000"], topics=["fx"]))  # the same row twice is saved once
    assert store.keys()["topic"] == ["fx"]


# --------------------------------------------------------------------------- workers
def _worker(url: str, name: str, start, results) -> None:
    """Claim and score until nothing is pending; report the ids this worker saved."""
    try:
        store, saved = WatchStore(url), []
        start.wait(60)
        while True:
            with store.claim(4) as claim:
                if not claim:
                    break
                time.sleep(0.05)  # "scoring": long enough that the other worker claims meanwhile
                claim.save_scores(scores([i.id for i in claim], worker=name))
                saved += [i.id for i in claim]
            time.sleep(0.01)  # SQLite: let the other writer take the lock
        store.close()
        results.put((name, saved))
    except BaseException:  # noqa: BLE001 - the parent shows the child's traceback
        results.put((name, traceback.format_exc()))


def test_two_worker_processes_score_every_item_exactly_once(store, db_url):
    n = 48
    store.add_items(news(n))
    store.engine.dispose()  # no pooled connection is inherited by the children
    start, results = FORK.Barrier(2), FORK.Queue()
    workers = [FORK.Process(target=_worker, args=(db_url, f"w{k}", start, results)) for k in range(2)]
    for w in workers:
        w.start()
    got = dict(results.get(timeout=120) for _ in workers)
    for w in workers:
        w.join(30)
    for name, saved in got.items():
        assert isinstance(saved, list), f"{name} failed:\n{saved}"
    a, b = got["w0"], got["w1"]
    assert not set(a) & set(b), "an item was scored by both workers"
    assert len(a) + len(b) == n and set(a) | set(b) == {i.id for i in news(n)}
    if db_url.startswith("postgresql"):  # SKIP LOCKED: both really worked at the same time
        assert a and b
    assert store.counts() == {"items": n, "events": n, "duplicates": 0, "pending": 0}
    by = {i["id"]: i["model_versions"]["worker"] for i in store.items([i.id for i in news(n)])}
    assert {i for i, w in by.items() if w == "w0"} == set(a)  # the rows hold the scores of the worker that claimed them
    with store.engine.connect() as conn:
        assert len(conn.execute(select(WatchMention)).all()) == 2 * n  # one topic + one entity each, never twice


def _claim_and_hang(url: str, ready) -> None:
    store = WatchStore(url)
    with store.claim(10) as claim:
        claim.save_scores(scores([i.id for i in claim]))
        ready.set()
        time.sleep(120)  # killed here, before the commit


def test_a_worker_killed_mid_claim_leaves_its_items_for_the_next(store, db_url):
    store.add_items(news(5))
    store.engine.dispose()
    ready = FORK.Event()
    child = FORK.Process(target=_claim_and_hang, args=(db_url, ready))
    child.start()
    assert ready.wait(60), "the child never claimed"
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    assert store.counts()["pending"] == 5 and store.keys() == {"topic": [], "entity": []}
    deadline, claimed = time.monotonic() + 30, []
    while time.monotonic() < deadline:  # PostgreSQL ends the dead session's transaction when it sees the socket close
        with store.claim(10) as claim:
            claimed = [i.id for i in claim]
            if len(claimed) == 5:
                claim.save_scores(scores(claimed))
                break
        time.sleep(0.1)
    assert claimed == [i.id for i in news(5)]
    assert store.counts() == {"items": 5, "events": 5, "duplicates": 0, "pending": 0}


# --------------------------------------------------------------------------- alerts and baselines
def alert_row(key: str = "rates", bucket: int = 0, rule: str = "zscore") -> dict:
    return {
        "key": key,
        "kind": "topic",
        "bucket_start": T0 + timedelta(hours=bucket),
        "rule": rule,
        "value": np.float64(5.5),
        "threshold": 4.0,
        "items": ["n000", "n001"],
        "details": {"median": 0.1, "mad": np.float32(0.02), "p": float("nan"), "since": T0},
    }


def test_alerts_are_stored_once_and_marked_sent(store):
    first = store.add_alerts([alert_row(), alert_row(rule="cusum")])
    assert [a["rule"] for a in first] == ["zscore", "cusum"]
    assert store.add_alerts([alert_row(), alert_row(bucket=1)])[0]["bucket_start"] == T0 + timedelta(hours=1)
    alerts = store.alerts()
    assert len(alerts) == 3 and [a["id"] for a in alerts] == sorted(a["id"] for a in alerts)
    alert = store.alert(first[0]["id"])
    assert alert["items"] == ["n000", "n001"] and alert["value"] == 5.5 and alert["sent_at"] is None
    assert alert["details"] == {"median": 0.1, "mad": pytest.approx(0.02), "p": None, "since": T0.isoformat()}
    assert len(store.alerts(since=T0 + timedelta(minutes=30))) == 1 and len(store.alerts(until=T0)) == 0
    store.mark_sent(alert["id"])
    assert store.alert(alert["id"])["sent_at"] is not None and store.alert(10_000) is None


def test_baselines_are_replaced_not_duplicated(store):
    store.set_baseline("entity", "ICBC", T0)
    store.set_baseline("entity", "ICBC", T0 + timedelta(days=1))
    store.set_baseline("topic", "ICBC", T0)
    assert store.baselines() == {("entity", "ICBC"): T0 + timedelta(days=1), ("topic", "ICBC"): T0}


# --------------------------------------------------------------------------- parsing
GOOD = {"id": "a1", "time": "2024-05-01T09:30:00Z", "source": "wire", "title": "Bank fined"}


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ([GOOD], "not a JSON object (got an array)"),
        ("text", "not a JSON object (got a string)"),
        (None, "not a JSON object (got null)"),
        ({k: v for k, v in GOOD.items() if k != "id"}, "missing 'id'"),
        ({**GOOD, "title": "   "}, "empty 'title'"),
        ({**GOOD, "source": None}, "missing 'source'"),
        ({**GOOD, "time": "2024-13-01"}, "time '2024-13-01' is not ISO 8601 (e.g. 2024-05-01T09:30:00Z)"),
        ({**GOOD, "time": 1714555800}, "'time' must be a string, got a number"),
        ({**GOOD, "title": ["a"]}, "'title' must be a string, got an array"),
        ({**GOOD, "text": 3.5}, "'text' must be a string, got a number"),
        ({**GOOD, "id": True}, "'id' must be a string, got true/false"),
        ({**GOOD, "id": "x" * 201}, "'id' is longer than 200 characters (201)"),
        ({**GOOD, "title": "a\x00b"}, "'title' contains a NUL character (\\u0000)"),
        ({**GOOD, "title": "a\ud800"}, "'title' is not valid UTF-8 text"),
    ],
)
def test_parse_item_rejects_with_a_reason(row, reason):
    assert parse_item(row, "news.jsonl:3") == Rejected("news.jsonl:3", reason)


def test_parse_item_normalises_ids_and_times():
    item = parse_item({**GOOD, "id": 17, "time": "2024-05-01T17:30:00+08:00", "title": " Bank fined ", "x": 1}, "w")
    assert item == Item("17", datetime(2024, 5, 1, 9, 30, tzinfo=timezone.utc), "wire", "Bank fined")
    naive = parse_item({**GOOD, "time": "2024-05-01 09:30", "text": None, "url": ""}, "w")
    assert naive.time == datetime(2024, 5, 1, 9, 30, tzinfo=timezone.utc) and naive.text == "" and naive.url is None
    assert parse_item({**GOOD, "time": "2024-05-01"}, "w").time == datetime(2024, 5, 1, tzinfo=timezone.utc)


def line(**changes) -> bytes:
    return json.dumps({**GOOD, **changes}, ensure_ascii=False).encode() + b"\n"


def reasons(results) -> list:
    return [(r.where, r.reason) if isinstance(r, Rejected) else r.id for r in results]


def test_read_jsonl_rejects_bad_lines_and_goes_on(tmp_path):
    path = tmp_path / "news.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + line(id="a")
        + b"\n"  # a blank line is no row
        + b'["a", "b"]\n'
        + b'{"id": "b", "time": "2024-05-01"\n'
        + b'{"id": "c\xff"}\n'
        + line(id="d", time="yesterday")
        + line(id="a", title="again")  # a repeated id is the store's business (already seen), not a rejection
        + line(id="工商银行-1", title="工商银行 利润下降")
        + b"[" * 100_000  # deeper than the JSON decoder goes; no newline at the end of the file either
    )
    assert reasons(read_items(path)) == [
        "a",
        (f"{path}:3", "not a JSON object (got an array)"),
        (f"{path}:4", "not valid JSON: Expecting ',' delimiter at column 33"),
        (f"{path}:5", "not valid UTF-8 (byte 0xff at column 10)"),
        (f"{path}:6", "time 'yesterday' is not ISO 8601 (e.g. 2024-05-01T09:30:00Z)"),
        "a",
        "工商银行-1",
        (f"{path}:9", "not valid JSON: nested too deeply"),
    ]


def test_an_overlong_line_is_rejected_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(items_module, "MAX_LINE", 300)
    path = tmp_path / "news.jsonl"
    path.write_bytes(line(id="a") + line(id="b", text="x" * 1000) + line(id="c"))
    assert reasons(read_items(path)) == ["a", (f"{path}:2", "line is longer than 300 bytes"), "c"]


def test_read_csv_with_header(tmp_path):
    path = tmp_path / "news.csv"
    path.write_bytes(
        b"id,time,source,title,text\n"
        b"a,2024-05-01T09:30:00Z,wire,Bank fined,body\n"
        b"b,2024-05-01,wire\n"
        b"\n"
        b'c,2024-05-01,wire,"two\nlines",\n'
        b"d,2024-05-01,wire,,\n"
        b"e,2024-05-01,wire,caf\xe9,\n"
        b'f,2024-05-01,wire,"' + b"x" * 200_000 + b'",\n'
        b"g,2024-05-01,wire,ok,\n"
    )
    got = list(read_items(path))
    assert reasons(got) == [
        "a",
        (f"{path}:3", "row has 3 fields but the header has 5"),
        "c",
        (f"{path}:7", "empty 'title'"),  # c's quoted title spans lines 5 and 6
        (f"{path}:8", "'title' is not valid UTF-8 text"),
        (f"{path}:9", "bad CSV row: field larger than field limit (131072)"),
        "g",
    ]
    assert got[0].text == "body" and got[2].title == "two\nlines"


def test_read_a_folder_a_json_array_and_stdin(tmp_path, monkeypatch):
    (tmp_path / "b.jsonl").write_bytes(line(id="b1"))
    (tmp_path / "a.json").write_text(json.dumps([GOOD, {**GOOD, "id": "a2"}, [1]]), encoding="utf-8")
    (tmp_path / "c.csv").write_text("id,time,source,title\nc1,2024-05-01,wire,t\n", encoding="utf-8")
    (tmp_path / "README.txt").write_text("not items", encoding="utf-8")
    assert reasons(read_items(tmp_path)) == [
        "a1",
        "a2",
        (f"{tmp_path / 'a.json'} item 3", "not a JSON object (got an array)"),
        "b1",
        "c1",
    ]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(line(id="s1") + b"{}\n")))
    assert reasons(read_items("-")) == ["s1", ("stdin:2", "missing 'id'")]


def test_unreadable_sources_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such file or folder"):
        list(read_items(tmp_path / "missing.jsonl"))
    (tmp_path / "news.txt").write_text("x", encoding="utf-8")
    with pytest.raises(UserError, match="not a .jsonl, .json or .csv file"):
        list(read_items(tmp_path / "news.txt"))


def test_a_large_file_streams_and_counts_every_row(tmp_path, store):
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as f:
        for i in range(3000):
            f.write(b"not json\n" if i % 7 == 0 else line(id=f"i{i % 2000}", time=f"2024-05-01T00:00:{i % 60:02d}Z"))
    got = list(read_items(path))
    items = [r for r in got if isinstance(r, Item)]
    assert len(got) == 3000 and len(items) == 3000 - 429
    assert store.add_items(items) == len({i.id for i in items})  # the repeated ids are already seen, not new
    assert store.add_items(items) == 0
    assert Path(path).stat().st_size > 0

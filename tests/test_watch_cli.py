"""`fieldtune watch` end to end with a real sentiment model: ingest, idempotency, replay, alerts, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text
from typer.testing import CliRunner

from fieldtune.apps.watch.config import load_watch_config
from fieldtune.apps.watch.demo import TOPICS
from fieldtune.apps.watch.synthetic import COMPANIES, Spike, stream
from fieldtune.cli import app
from fieldtune.store.watch_store import WatchStore

SPIKE_AT = datetime(2026, 3, 4, 10, tzinfo=timezone.utc)


def write_config(folder: Path, sentiment: Path, **extra) -> Path:
    config = {"sentiment": str(sentiment), "topics": TOPICS, "entities": COMPANIES, "bucket": "2h", **extra}
    path = folder / "watch.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def write_items(path: Path, hours: int = 72, spike: bool = True, per_hour: float = 6.0) -> list[dict]:
    spikes = (Spike("Northwind Bank", SPIKE_AT, hours=2, extra=14),) if spike else ()
    items = list(stream(datetime(2026, 3, 2, tzinfo=timezone.utc), hours, per_hour=per_hour, spikes=spikes, seed=5))
    path.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    return items


@pytest.fixture()
def setup(tmp_path, watch_sentiment):
    return write_config(tmp_path, watch_sentiment), tmp_path


def test_ingest_counts_rejects_and_is_idempotent(setup):
    config, folder = setup
    items = write_items(folder / "news.jsonl", hours=24, spike=False)
    with (folder / "news.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"id": "bad1", "time": "yesterday", "source": "x", "title": "Northwind shares fall"}\n')
        f.write('{"id": "bad2", "time": "2026-03-02T10:00:00Z", "source": "x"}\n')
        f.write("not json\n")
    runner = CliRunner()
    first = runner.invoke(app, ["watch", "ingest", str(config), str(folder / "news.jsonl"), "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout[first.stdout.index("{") :])
    assert report["stored"] == len(items) and report["scored"] == len(items)
    wheres = [r["where"] for r in report["rejected"]]
    assert [w.rsplit("/", 1)[-1] for w in wheres] == [f"news.jsonl:{len(items) + k}" for k in (1, 2, 3)]
    assert "time" in report["rejected"][0]["reason"] and "title" in report["rejected"][1]["reason"]
    assert report["duplicates"] >= 1  # the generator syndicates ~10% of stories
    again = runner.invoke(app, ["watch", "ingest", str(config), str(folder / "news.jsonl"), "--json"])
    report = json.loads(again.stdout[again.stdout.index("{") :])
    assert (report["stored"], report["already_seen"], report["scored"]) == (0, len(items), 0)
    store = WatchStore(load_watch_config(config).db)
    counts = store.counts()
    assert counts["items"] == len(items) and counts["pending"] == 0


def test_replay_finds_the_injected_surge(setup):
    config, folder = setup
    write_items(folder / "news.jsonl")
    result = CliRunner().invoke(app, ["watch", "replay", str(config), str(folder / "news.jsonl"), "--speed", "max"])
    assert result.exit_code == 0, result.output
    alerts = CliRunner().invoke(app, ["watch", "alerts", str(config), "--json"])
    rows = json.loads(alerts.stdout)
    northwind = [a for a in rows if a["key"] == "Northwind Bank" and a["kind"] == "entity"]
    assert northwind, rows
    first = min(datetime.fromisoformat(str(a["bucket_start"])) for a in northwind)
    assert abs((first - SPIKE_AT).total_seconds()) <= 2 * 3600  # within one 2h bucket of the onset
    assert {"key", "kind", "bucket_start", "rule", "value", "threshold", "items"} <= set(northwind[0])
    assert len(northwind[0]["items"]) >= 5
    others = [a for a in rows if a["kind"] == "entity" and a["key"] != "Northwind Bank"]
    assert not others, others  # 3 days of background news: no false alarm about anyone else


def test_bad_config_is_a_clear_error(tmp_path, watch_sentiment):
    config = write_config(tmp_path, watch_sentiment, bucket="every hour")
    result = CliRunner().invoke(app, ["watch", "alerts", str(config)])
    assert result.exit_code == 2 and "bucket" in result.output and "5min" in result.output
    missing = write_config(tmp_path, tmp_path / "no-such-model")
    result = CliRunner().invoke(app, ["watch", "alerts", str(missing)])
    assert result.exit_code == 2 and "sentiment" in result.output and "does not exist" in result.output


def test_kill_9_during_ingest_loses_nothing_and_counts_nothing_twice(setup):
    config, folder = setup
    items = write_items(folder / "news.jsonl", hours=96, spike=False, per_hour=10)
    cmd = [sys.executable, "-m", "fieldtune.cli", "watch", "ingest", str(config), str(folder / "news.jsonl")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = WatchStore(load_watch_config(config).db)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        done = store.counts()["items"] - store.counts()["pending"]
        if 0 < done:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "ingest finished before it could be killed: make the file longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = store.counts()
    assert 0 < partial["items"] - partial["pending"] < len(items)
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    counts = store.counts()
    assert counts["items"] == len(items) and counts["pending"] == 0
    with store.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM watch_items"))]
        mentions = conn.execute(
            text("SELECT COUNT(*), COUNT(DISTINCT item_id || kind || key) FROM watch_mentions")
        ).one()
    assert sorted(ids) == sorted(i["id"] for i in items)
    assert mentions[0] == mentions[1] > 0


def test_retrain_takes_only_the_sources_asked_for(tmp_path):
    """The dashboard writes sentiment corrections (source watch) and topic corrections (watch:topics)
    to one feedback table; a sentiment retrain must see only the first."""
    from fieldtune.monitoring.retrain import Policy, _split_feedback

    store = WatchStore(f"sqlite:///{tmp_path / 'w.db'}").store
    store.add_feedback(
        [
            {"text": "Northwind fined by regulator", "label": "negative", "source": "watch"},
            {"text": "Northwind fined by regulator", "label": ["legal"], "source": "watch:topics"},
        ]
    )
    rows = _split_feedback(store, "classification", Policy(sources=("watch",)))["all"]
    assert [(r.source, r.label) for r in rows] == [("watch", "negative")]
    assert len(_split_feedback(store, "classification", Policy())["all"]) == 2


def test_arrivals_close_a_chunk_after_max_wait_and_raise_reader_errors():
    """A slow stream is handled as it flows; an error while reading reaches the caller."""
    from fieldtune.apps.watch.pipeline import arrivals

    def slow():
        yield from (1, 2)
        time.sleep(0.6)
        yield 3

    assert list(arrivals(slow(), size=10, max_wait=0.2)) == [[1, 2], [3]]
    assert list(arrivals(iter(range(5)), size=2, max_wait=5)) == [[0, 1], [2, 3], [4]]

    def broken():
        yield 1
        raise ValueError("bad line")

    got = []
    with pytest.raises(ValueError, match="bad line"):
        for chunk in arrivals(broken(), size=10, max_wait=0.2):
            got.append(chunk)
    assert got == [[1]]

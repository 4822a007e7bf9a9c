"""Series buckets and the watch alert rules: z-score, CUSUM, cooldown, baselines, webhook."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest

from fieldtune.apps.watch.alerts import MIN_SCALE, cusum_alerts, detect, run_detection, zscore_alerts
from fieldtune.apps.watch.config import AlertSettings, WatchConfig
from fieldtune.apps.watch.series import Bucket, bucket_start, bucketize

UTC = timezone.utc
T0 = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)


def row(t: datetime, item: str, label: str = "neutral", p_neg: float = 0.1, p_pos: float = 0.2):
    return (t, p_neg, p_pos, label, item)


def series(counts: list[tuple[int, int]]) -> list[Bucket]:
    """Hourly buckets from (volume, negatives) pairs; negative item ids are ``b{i}-{j}``."""
    out = []
    for i, (volume, negatives) in enumerate(counts):
        ids = [f"b{i}-{j}" for j in range(volume)]
        share = negatives / volume if volume else 0.0
        out.append(Bucket(T0 + i * HOUR, volume, negatives, share, 0.0, ids, ids[:negatives]))
    return out


def noisy(n: int, volume: int = 50, rate: float = 0.2, seed: int = 0) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    return [(volume, int(k)) for k in rng.binomial(volume, rate, size=n)]


# --- bucketize ---------------------------------------------------------------------------------


def test_bucket_boundaries_are_epoch_aligned_and_start_inclusive():
    rows = [
        row(T0 + timedelta(hours=10), "at-10"),
        row(T0 + timedelta(hours=11) - timedelta(microseconds=1), "just-before-11"),
        row(T0 + timedelta(hours=11), "at-11", "negative", 0.9, 0.0),
    ]
    buckets = bucketize(rows, HOUR)
    assert [b.start for b in buckets] == [T0 + 10 * HOUR, T0 + 11 * HOUR]
    assert buckets[0].items == ["at-10", "just-before-11"] and buckets[1].items == ["at-11"]
    assert buckets[1].negatives == 1 and buckets[1].neg_share == 1.0 and buckets[1].net == pytest.approx(-0.9)
    assert bucket_start(datetime(2026, 3, 2, 10, 7, 30, tzinfo=UTC), timedelta(minutes=5)) == datetime(
        2026, 3, 2, 10, 5, tzinfo=UTC
    )


def test_time_zones_and_naive_times_land_in_utc_buckets():
    shanghai = timezone(timedelta(hours=8))
    rows = [
        row(datetime(2026, 3, 2, 7, 30, tzinfo=shanghai), "cn"),  # 2026-03-01 23:30 UTC
        row(datetime(2026, 3, 2, 0, 30), "naive"),  # naive = UTC
    ]
    days = bucketize(rows, timedelta(days=1))
    assert [b.start for b in days] == [datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)]
    assert days[0].items == ["cn"] and days[1].items == ["naive"]
    assert all(b.start.utcoffset() == timedelta(0) for b in days)


def test_empty_buckets_are_included_and_range_is_respected():
    rows = [
        row(T0 + timedelta(minutes=10), "a", "negative", 0.8, 0.1),
        row(T0 + timedelta(minutes=20), "b", "positive", 0.1, 0.7),
        row(T0 + timedelta(hours=3, minutes=5), "c"),
    ]
    buckets = bucketize(rows, HOUR)
    assert [b.volume for b in buckets] == [2, 0, 0, 1]
    assert buckets[1].neg_share == 0.0 and buckets[1].net == 0.0 and buckets[1].items == []
    assert buckets[0].neg_share == 0.5 and buckets[0].net == pytest.approx(((0.1 - 0.8) + (0.7 - 0.1)) / 2)
    assert buckets[0].negative_items == ["a"]
    # end is exclusive, start may lie before the data (leading empty buckets)
    ranged = bucketize(rows, HOUR, start=T0 - 2 * HOUR, end=T0 + 3 * HOUR)
    assert [b.volume for b in ranged] == [0, 0, 2, 0, 0]
    assert bucketize([], HOUR) == [] and bucketize([], HOUR, start=T0) == []
    assert [b.volume for b in bucketize([], HOUR, start=T0, end=T0 + 2 * HOUR)] == [0, 0]
    assert ranged[2].as_json()["start"] == T0.isoformat()
    with pytest.raises(ValueError):
        bucketize(rows, timedelta(0))


# --- z-score -------------------------------------------------------------------------------------


def test_zscore_fires_on_a_clear_spike_and_not_on_noise():
    counts = noisy(300)
    assert zscore_alerts(series(counts), AlertSettings()) == []
    counts[200] = (50, 40)
    (alert,) = zscore_alerts(series(counts), AlertSettings())
    assert alert["bucket_start"] == T0 + 200 * HOUR and alert["rule"] == "zscore"
    assert alert["value"] >= alert["threshold"] == 4.0
    assert alert["items"] == [f"b200-{j}" for j in range(40)]
    assert alert["details"]["p_value"] < 0.01 and alert["details"]["volume"] == 50


def test_binomial_gate_suppresses_a_low_volume_blip():
    counts = noisy(60, volume=20)
    counts[50] = (2, 2)  # 2 of 2 negative: a share of 1.0, but two headlines prove little
    lenient = AlertSettings(min_volume=1, z=1.0)  # so only the binomial test stands in the way
    blip = T0 + 50 * HOUR
    assert blip not in [a["bucket_start"] for a in zscore_alerts(series(counts), lenient)]
    counts[50] = (20, 16)
    assert blip in [a["bucket_start"] for a in zscore_alerts(series(counts), lenient)]
    counts[50] = (2, 2)
    assert zscore_alerts(series(counts), AlertSettings()) == []  # below min_volume anyway


def test_flat_baseline_does_not_make_every_blip_infinite():
    counts = [(20, 4)] * 30 + [(20, 6)]  # MAD = 0; 6/20 is ordinary binomial noise at 4/20
    assert zscore_alerts(series(counts), AlertSettings()) == []
    counts[-1] = (20, 16)
    (alert,) = zscore_alerts(series(counts), AlertSettings())
    assert np.isfinite(alert["value"]) and alert["details"]["scale"] >= MIN_SCALE


def test_a_sparse_key_is_judged_against_its_pooled_rate():
    counts = [(1 + i % 2, int(i % 4 == 0)) for i in range(40)]  # 1-2 mentions a bucket: none reach min_volume
    counts[30] = (6, 3)  # a busier bucket, half negative: not news at this volume
    assert zscore_alerts(series(counts), AlertSettings()) == []
    counts[30] = (20, 18)
    (alert,) = zscore_alerts(series(counts), AlertSettings())
    assert alert["bucket_start"] == T0 + 30 * HOUR and alert["details"]["baseline"] == "pooled"


# --- CUSUM ---------------------------------------------------------------------------------------


def shifted(n_shift: int, by: int = 8) -> list[tuple[int, int]]:
    """100 events per bucket around 20 negatives, then ``by`` more for ``n_shift`` buckets (z ~ by / 4)."""
    wobble = [0, 2, -1, 1, -2, 0, 1, -1]
    return [(100, 20 + wobble[i % 8]) for i in range(60)] + [(100, 20 + by + wobble[i % 8]) for i in range(n_shift)]


def test_cusum_catches_a_sustained_moderate_shift_that_zscore_misses():
    buckets = series(shifted(8))
    assert zscore_alerts(buckets, AlertSettings()) == []
    alerts = cusum_alerts(buckets, AlertSettings())
    assert alerts and T0 + 60 * HOUR <= alerts[0]["bucket_start"] <= T0 + 67 * HOUR
    assert alerts[0]["value"] > alerts[0]["threshold"] and alerts[0]["details"]["run_start"]
    assert cusum_alerts(series(noisy(300, volume=100)), AlertSettings()) == []


def test_cusum_resets_after_an_alarm():
    buckets = series(shifted(12, by=12))
    starts = [a["bucket_start"] for a in cusum_alerts(buckets, AlertSettings())]
    # without the reset the sum stays above h and every shifted bucket after the first alarm fires
    assert 2 <= len(starts) < 12 - 2
    assert all(b - a >= 2 * HOUR for a, b in zip(starts, starts[1:], strict=False))


def test_cusum_ignores_buckets_below_min_volume():
    counts = noisy(60, volume=100) + [(4, 4)] * 10  # all-negative, but never min_volume
    assert cusum_alerts(series(counts), AlertSettings()) == []


# --- detect: cooldown, de-duplication, baselines --------------------------------------------------


def test_cooldown_is_per_rule_and_counted_in_buckets():
    counts = noisy(100)
    counts[60] = counts[63] = (50, 40)
    settings = AlertSettings(rules=("zscore",), cooldown=6)
    alerts = detect(series(counts), settings, "ICBC", "entity")
    assert [a["bucket_start"] for a in alerts] == [T0 + 60 * HOUR]
    assert alerts[0]["key"] == "ICBC" and alerts[0]["kind"] == "entity"
    settings = AlertSettings(rules=("zscore",), cooldown=2)
    assert len(detect(series(counts), settings, "ICBC", "entity")) == 2
    both = detect(series(counts), AlertSettings(rules=("zscore", "cusum", "zscore")), "ICBC", "entity")
    keys = [(a["bucket_start"], a["rule"]) for a in both]
    assert len(keys) == len(set(keys)) and {"zscore"} <= {a["rule"] for a in both}
    with pytest.raises(ValueError, match="unknown alert rule"):
        detect(series(counts), AlertSettings.model_construct(rules=("nope",)), "ICBC", "entity")


def test_accepting_a_new_baseline_silences_the_old_level():
    counts = noisy(60, volume=50, rate=0.1) + noisy(100, volume=50, rate=0.5, seed=1)
    buckets = series(counts)
    assert detect(buckets, AlertSettings(), "rates", "topic")  # the level shift alerts
    accepted = detect(buckets, AlertSettings(), "rates", "topic", baseline_since=T0 + 62 * HOUR)
    assert accepted == []


# --- run_detection: store + webhook ---------------------------------------------------------------


class FakeStore:
    """The WatchStore surface run_detection uses, in memory."""

    def __init__(self, mentions: dict[tuple[str, str], list[tuple]]):
        self._mentions, self.rows, self.sent, self._baselines = mentions, {}, [], {}

    def keys(self):
        out: dict[str, list[str]] = {"topic": [], "entity": []}
        for kind, key in self._mentions:
            out[kind].append(key)
        return out

    def baselines(self):
        return dict(self._baselines)

    def mentions(self, kind, key, since, until):
        return [r for r in self._mentions.get((kind, key), []) if since is None or r[0] >= since]

    def add_alerts(self, rows):
        new = []
        for r in rows:
            unique = (r["key"], r["kind"], r["bucket_start"], r["rule"])
            if unique not in self.rows:
                self.rows[unique] = {**r, "id": len(self.rows) + 1, "sent_at": None}
                new.append(dict(self.rows[unique]))
        return new

    def alerts(self):
        return [dict(r) for r in self.rows.values()]

    def mark_sent(self, alert_id):
        self.sent.append(alert_id)
        for r in self.rows.values():
            if r["id"] == alert_id:
                r["sent_at"] = datetime.now(UTC)


def spiky_rows() -> list[tuple]:
    rows = []
    for i, (volume, negatives) in enumerate(noisy(40, volume=20)[:30] + [(20, 18)]):
        for j in range(volume):
            label = "negative" if j < negatives else "neutral"
            rows.append(row(T0 + i * HOUR + timedelta(minutes=j), f"{i}-{j}", label, 0.8 if j < negatives else 0.1))
    return rows


@pytest.fixture
def webhook():
    received, status = [], [200]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(status[0])
            self.end_headers()

        def log_message(self, *args):  # keep pytest output clean
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received, status
    server.shutdown()
    server.server_close()


def test_run_detection_stores_new_alerts_and_posts_them(webhook):
    url, received, _ = webhook
    store = FakeStore({("entity", "ICBC"): spiky_rows(), ("topic", "earnings"): spiky_rows()[:200]})
    cfg = WatchConfig(sentiment=Path("unused"), webhook=url)
    new = run_detection(store, cfg)
    assert {(a["kind"], a["key"], a["rule"]) for a in new} == {("entity", "ICBC", "zscore")}
    (payload,) = received
    assert payload["key"] == "ICBC" and payload["bucket_start"] == (T0 + 30 * HOUR).isoformat()
    assert len(payload["items"]) == 18 and payload["rule"] == "zscore" and payload["threshold"] == 4.0
    assert store.sent == [new[0]["id"]] and new[0]["sent_at"] is not None
    assert run_detection(store, cfg) == [] and len(received) == 1  # re-running adds and sends nothing


def test_webhook_failure_leaves_the_alert_stored_and_unsent(webhook, caplog):
    url, received, status = webhook
    status[0] = 500
    store = FakeStore({("entity", "ICBC"): spiky_rows()})
    with caplog.at_level(logging.WARNING, logger="fieldtune.watch"):
        new = run_detection(store, WatchConfig(sentiment=Path("unused"), webhook=url))
    assert len(new) == 1 and new[0]["sent_at"] is None and store.sent == []
    assert len(store.rows) == 1 and len(received) == 1
    assert "HTTP 500" in caplog.text
    status[0] = 200  # the webhook is back: the next run delivers what was left unsent
    assert run_detection(store, WatchConfig(sentiment=Path("unused"), webhook=url)) == []
    assert store.sent == [new[0]["id"]] and len(received) == 2 and received[1]["id"] == new[0]["id"]


def test_run_detection_respects_accepted_baselines_and_key_filter():
    store = FakeStore({("entity", "ICBC"): spiky_rows()})
    cfg = WatchConfig(sentiment=Path("unused"))
    assert run_detection(store, cfg, keys=[("topic", "other")]) == []
    store._baselines[("entity", "ICBC")] = T0 + 25 * HOUR  # too little baseline left to judge
    assert run_detection(store, cfg) == []
    store._baselines.clear()
    assert len(run_detection(store, cfg, keys={"entity": ["ICBC"]})) == 1


def test_one_alert_per_surge_when_both_rules_fire():
    """A strong surge trips the z-score and the CUSUM in the same bucket: one alert, the other rule in details."""
    counts = (
        noisy(40, volume=50, rate=0.2, seed=3) + [(50, 45), (50, 45), (50, 44)] + noisy(10, volume=50, rate=0.2, seed=4)
    )
    buckets = series(counts)
    settings = AlertSettings()
    per_rule = {r["rule"] for r in zscore_alerts(buckets, settings) + cusum_alerts(buckets, settings)}
    assert per_rule == {"zscore", "cusum"}
    alerts = detect(buckets, settings, "Acme", "entity")
    assert len(alerts) == 1 and alerts[0]["bucket_start"] == buckets[40].start
    assert alerts[0]["rule"] == "zscore" and [a["rule"] for a in alerts[0]["details"]["also"]] == ["cusum"]

"""The watch dashboard and its JSON API, in process (FastAPI TestClient), over a SQLite WatchStore
filled directly with fake scores: no model is loaded anywhere in this file."""

from __future__ import annotations

import json
import re
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from fieldtune.apps.watch.config import load_watch_config
from fieldtune.apps.watch.items import Item
from fieldtune.apps.watch.web import create_watch_app
from fieldtune.errors import UserError
from fieldtune.store.watch_store import WatchStore

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
SPIKE_HOUR = 40
SCRIPT_TITLE = "<script>alert('x')</script> ICBC fined by regulator"
ALERT_KEYS = {"key", "kind", "bucket_start", "rule", "value", "threshold", "items"}


def watch_config(tmp: Path):
    """A config whose sentiment 'model' is only its fieldtune.json (labels are all the web reads)."""
    model = tmp / "sentiment"
    model.mkdir(parents=True, exist_ok=True)
    (model / "fieldtune.json").write_text(
        json.dumps({"task": "classification", "labels": ["negative", "neutral", "positive"]})
    )
    raw = {
        "sentiment": "sentiment",
        "topics": {"earnings": ["profit beats forecasts"], "legal": ["regulator fines the bank"]},
        "entities": {"ICBC": ["工商银行"], "Acme Bank": []},
        "bucket": "1h",
        "db": "sqlite:///watch.db",
    }
    return load_watch_config(raw, base_dir=tmp)


def _embedding(item_id: str) -> np.ndarray:
    """A unit vector of its own per id: unrelated stories, so none is a near-duplicate of another."""
    v = np.random.default_rng(zlib.crc32(item_id.encode())).normal(size=32).astype(np.float32)
    return v / np.linalg.norm(v)


def _score(item: Item, sentiment: str, topics: list[str], entities: list[str]) -> dict:
    p = {"negative": 0.05, "neutral": 0.15, "positive": 0.05}
    p[sentiment] = 0.8
    total = sum(p.values())
    return {
        "id": item.id,
        "sentiment": sentiment,
        **{f"p_{k}": v / total for k, v in p.items()},
        "topics": topics,
        "entities": entities,
        "orgs": [],
        "embedding": _embedding(item.id),
        "model_versions": {"sentiment": "sha-sent", "topics": "sha-topics"},
    }


def populate(store: WatchStore) -> dict:
    """48 hours of ICBC and earnings news, a negative surge on ICBC at hour 40, and its alert.

    Returns the spike's negative item ids and the stored alert.
    """
    items, scores, negatives = [], {}, []
    for hour in range(48):
        for n in range(4 if hour != SPIKE_HOUR else 10):
            t = T0 + timedelta(hours=hour, minutes=5 * n)
            item_id = f"n-{hour:02d}-{n}"
            spike = hour == SPIKE_HOUR and n < 8
            title = SCRIPT_TITLE if spike and n == 0 else f"ICBC update {hour}.{n}"
            url = "javascript:alert(1)" if spike and n == 1 else f"https://news.example/{item_id}"
            items.append(Item(item_id, t, "wire" if n % 2 else "daily", title, "body text" if n == 2 else "", url))
            sentiment = "negative" if spike or (n == 3 and hour % 6 == 0) else ("positive" if n == 1 else "neutral")
            topics = ["earnings"] if n % 2 == 0 else []
            scores[item_id] = (sentiment, topics, ["ICBC"])
            if spike:
                negatives.append(item_id)
    store.add_items(items)
    while True:
        with store.claim(200) as claim:
            if not claim:
                break
            claim.save_scores([_score(i, *scores[i.id]) for i in claim])
    rows = store.add_alerts(
        [
            {
                "key": "ICBC",
                "kind": "entity",
                "bucket_start": T0 + timedelta(hours=SPIKE_HOUR),
                "rule": "zscore",
                "value": 6.43,
                "threshold": 4.0,
                "items": negatives,
                "details": {"volume": 10, "negatives": 8, "neg_share": 0.8, "baseline_median": 0.0, "p_value": 1e-6},
            }
        ]
    )
    return {"negatives": negatives, "alert": rows[0]}


class FakeScorer:
    """The Scorer surface the pipeline uses: distinct unit embeddings, so nothing is a duplicate."""

    versions = {"sentiment": "fake"}

    def score(self, items):
        return [_score(i, "negative" if "fined" in i.title else "neutral", [], ["ICBC"]) for i in items]


@pytest.fixture()
def watch(tmp_path):
    cfg = watch_config(tmp_path)
    store = WatchStore(cfg.db)
    made = populate(store)
    built = []

    def factory(c):
        built.append(c)
        return FakeScorer()

    app = create_watch_app(cfg, store, scorer_factory=factory)
    with TestClient(app) as client:
        yield client, store, made, built
    store.close()


def test_dashboard_lists_charts_and_alerts_without_loading_models(watch):
    client, _, made, built = watch
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'data-key="ICBC"' in r.text and 'data-key="earnings"' in r.text
    assert f'href="/alerts/{made["alert"]["id"]}"' in r.text
    assert "Acme Bank" in r.text  # watched but quiet: named, without a chart
    data = json.loads(re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', r.text, re.S)[1])
    icbc = next(c for c in data["charts"] if c["key"] == "ICBC")
    assert len(icbc["x"]) == 48 and icbc["volumes"][SPIKE_HOUR] == 10
    assert icbc["alert_x"] == [int((T0 + timedelta(hours=SPIKE_HOUR)).timestamp())]
    assert [c["key"] for c in data["charts"]][0] == "ICBC"  # the key that alerted comes first
    assert built == []  # pages and reads never build the scorer
    assert client.get("/static/uplot/uPlot.iife.min.js").status_code == 200


def test_dashboard_time_range_filter(watch):
    client, *_ = watch
    r = client.get("/", params={"from": "2024-05-01T00:00", "to": "2024-05-01T12:00"})
    assert r.status_code == 200
    assert "No alerts in this period" in r.text
    data = json.loads(re.search(r'id="chart-data" type="application/json">(.*?)</script>', r.text, re.S)[1])
    assert {len(c["x"]) for c in data["charts"]} == {12}
    assert 'value="2024-05-01T00:00"' in r.text and 'value="2024-05-01T12:00"' in r.text
    bad = client.get("/", params={"from": "yesterday"})
    assert bad.status_code == 200 and "from: &#39;yesterday&#39; is not an ISO 8601 date" in bad.text


def test_alert_page_escapes_headlines_and_unsafe_links(watch):
    client, _, made, _ = watch
    r = client.get(f"/alerts/{made['alert']['id']}")
    assert r.status_code == 200
    assert "<script>alert(" not in r.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; ICBC fined" in r.text
    assert "javascript:" not in r.text  # a non-http link is shown as text, not linked
    assert 'href="https://news.example/n-40-2"' in r.text
    assert r.text.count('class="headline"') == 8
    assert 'class="baseline-button"' in r.text and "zscore" in r.text


def test_unknown_alert_is_404(watch):
    client, *_ = watch
    page = client.get("/alerts/999")
    assert page.status_code == 404 and "There is no alert 999" in page.text
    api = client.get("/v1/watch/alerts/999")
    assert api.status_code == 404 and api.json()["error"]["type"] == "unknown_alert"


def test_alerts_json_shapes(watch):
    client, _, made, _ = watch
    rows = client.get("/v1/watch/alerts").json()
    assert len(rows) == 1 and ALERT_KEYS <= rows[0].keys()
    assert rows[0]["bucket_start"] == (T0 + timedelta(hours=SPIKE_HOUR)).isoformat()
    assert rows[0]["items"] == made["negatives"]
    assert client.get("/v1/watch/alerts", params={"since": "2024-05-03"}).json() == []
    one = client.get(f"/v1/watch/alerts/{rows[0]['id']}").json()
    assert [h["id"] for h in one["headlines"]] == made["negatives"]
    head = one["headlines"][0]
    assert head["sentiment"] == "negative" and abs(sum(head["probs"].values()) - 1) < 1e-6
    assert "embedding" not in head and head["title"] == SCRIPT_TITLE


def test_series_json(watch):
    client, *_ = watch
    r = client.get("/v1/watch/series", params={"key": "ICBC"})
    assert r.status_code == 200
    body = r.json()
    assert body["kind"] == "entity" and body["bucket"] == "1h" and len(body["buckets"]) == 48
    spike = body["buckets"][SPIKE_HOUR]
    assert spike["volume"] == 10 and spike["negatives"] == 8 and spike["neg_share"] == pytest.approx(0.8)
    assert "items" not in spike
    daily = client.get("/v1/watch/series", params={"key": "earnings", "bucket": "1d", "items": "true"}).json()
    assert [b["volume"] for b in daily["buckets"]] == [48, 51] and len(daily["buckets"][0]["items"]) == 48
    ranged = client.get(
        "/v1/watch/series", params={"key": "ICBC", "start": "2024-05-02T00:00:00Z", "end": "2024-05-02T06:00:00+00:00"}
    )
    assert len(ranged.json()["buckets"]) == 6


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"key": "ICBC", "start": "May 1st"}, 422, "start: 'May 1st' is not an ISO 8601"),
        ({"key": "ICBC", "bucket": "fortnightly"}, 422, "bucket: 'fortnightly' is not a duration"),
        ({"key": "ICBC", "bucket": "10s"}, 422, "shorter than"),
        ({"key": "ICBC", "kind": "company"}, 422, "kind: 'company' is not one of"),
        ({"key": "ICBC", "start": "2024-05-02", "end": "2024-05-01"}, 422, "end must be after start"),
        ({"key": "ICBC", "bucket": "1min", "start": "2000-01-01"}, 422, "more than 20000 buckets"),
        ({"key": "Nobody"}, 404, "no topic or entity 'Nobody'"),
        ({}, 422, "key: Field required"),
    ],
)
def test_series_errors(watch, params, status, message):
    client, *_ = watch
    r = client.get("/v1/watch/series", params=params)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]["message"]


def test_feedback_is_stored(watch):
    client, store, made, _ = watch
    item_id = made["negatives"][0]
    r = client.post("/v1/watch/feedback", json={"item_id": item_id, "sentiment": "neutral"})
    assert r.status_code == 201 and r.json()["sentiment"] == "neutral"
    r = client.post("/v1/watch/feedback", json={"item_id": "n-40-2", "topics": ["legal", "earnings"]})
    assert r.status_code == 201
    rows = store.store.feedback()
    assert [(f.label, f.source, f.model_version) for f in rows] == [
        ("neutral", "watch", "sha-sent"),
        (["legal", "earnings"], "watch:topics", "sha-topics"),
    ]
    assert rows[0].text == SCRIPT_TITLE and rows[1].text == "ICBC update 40.2\nbody text"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"item_id": "n-40-0", "sentiment": "furious"},
            422,
            "sentiment: 'furious' is not one of ['negative', 'neutral', 'positive']",
        ),
        ({"item_id": "n-40-0", "topics": ["weather"]}, 422, "topics: ['weather'] are not topics of this watch"),
        ({"item_id": "n-40-0"}, 422, "send a sentiment, topics or both"),
        ({"item_id": "nope", "sentiment": "negative"}, 404, "no item with id 'nope'"),
        ({"item_id": "n-40-0", "label": "negative"}, 422, "label: Extra inputs are not permitted"),
        ({"sentiment": "negative"}, 422, "item_id: Field required"),
        ({"item_id": 7, "sentiment": "negative"}, 422, "item_id: Input should be a valid string"),
    ],
)
def test_feedback_validation(watch, body, status, message):
    client, store, *_ = watch
    r = client.post("/v1/watch/feedback", json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]["message"]
    assert store.store.feedback() == []


def test_bad_bodies_get_watch_hints(watch):
    client, *_ = watch
    r = client.post("/v1/watch/feedback", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_json"
    assert "item_id" in r.json()["error"]["hint"]
    r = client.post("/v1/watch/items", content=b'{"items": []}', headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = client.post("/v1/watch/items", json={"items": "a headline"})
    assert r.status_code == 422 and "items: Input should be a valid list" in r.json()["error"]["message"]
    assert '"items": [{"id"' in r.json()["error"]["hint"]


def test_post_items_scores_lazily_and_reports_rejections(watch):
    client, store, _, built = watch
    items = [
        {"id": "p-1", "time": "2024-05-03T09:00:00Z", "source": "wire", "title": "ICBC fined again"},
        {"id": "p-2", "time": "2024-05-03T09:05:00+08:00", "source": "daily", "title": "ICBC opens branch"},
        {"id": "p-3", "time": "someday", "source": "daily", "title": "bad time"},
        ["not", "an", "object"],
    ]
    r = client.post("/v1/watch/items", json={"items": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["stored"], body["already_seen"], body["scored"]) == (2, 0, 2)
    assert [x["where"] for x in body["rejected"]] == ["request item 2", "request item 3"]
    assert "not ISO 8601" in body["rejected"][0]["reason"] and "not a JSON object" in body["rejected"][1]["reason"]
    again = client.post("/v1/watch/items", json={"items": items[:2]}).json()
    assert (again["stored"], again["already_seen"]) == (0, 2)
    assert len(built) == 1  # built once, on the first post
    assert store.item("p-1")["sentiment"] == "negative"
    assert client.post("/v1/watch/items", json={"items": []}).status_code == 422
    too_many = client.post("/v1/watch/items", json={"items": [{}] * 1001})
    assert too_many.status_code == 413 and "1000" in too_many.json()["error"]["message"]


def test_accept_new_baseline(watch):
    client, store, made, _ = watch
    r = client.post("/v1/watch/baseline", json={"kind": "entity", "key": "ICBC"})
    assert r.status_code == 200
    since = T0 + timedelta(hours=SPIKE_HOUR)
    assert r.json()["since"] == since.isoformat()  # from the key's last alert
    assert store.baselines() == {("entity", "ICBC"): since}
    r = client.post("/v1/watch/baseline", json={"kind": "topic", "key": "earnings", "since": "2024-05-02T00:00Z"})
    assert r.json()["since"] == "2024-05-02T00:00:00+00:00"
    assert client.post("/v1/watch/baseline", json={"kind": "topic", "key": "ICBC"}).status_code == 404
    bad = client.post("/v1/watch/baseline", json={"kind": "sector", "key": "ICBC"})
    assert bad.status_code == 422 and "kind" in bad.json()["error"]["message"]


def test_token_guards_pages_and_api(tmp_path):
    cfg = watch_config(tmp_path)
    store = WatchStore(cfg.db)
    populate(store)
    app = create_watch_app(cfg, store, scorer_factory=lambda c: FakeScorer(), token="s3cret")
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/v1/watch/alerts").status_code == 401
        assert client.get("/v1/watch/alerts", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/").status_code == 401
        login = client.get("/?token=s3cret", follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == "/"
        assert (
            "httponly" in login.headers["set-cookie"].lower()
            and "samesite=strict" in login.headers["set-cookie"].lower()
        )
        assert client.get("/").status_code == 200  # the client kept the cookie
        r = client.post("/v1/watch/feedback", json={"item_id": "n-00-0", "sentiment": "neutral"})
        assert r.status_code == 201  # the page's own posts carry the cookie
    store.close()


def test_models_that_cannot_load_are_a_503_and_nothing_is_stored(tmp_path):
    cfg = watch_config(tmp_path)
    store = WatchStore(cfg.db)

    def broken(c):
        raise UserError("sentiment: no fieldtune.json here", hint="train a model first")

    with TestClient(create_watch_app(cfg, store, scorer_factory=broken)) as client:
        item = {"id": "x-1", "time": "2024-05-03T09:00:00Z", "source": "wire", "title": "ICBC"}
        r = client.post("/v1/watch/items", json={"items": [item]})
        assert r.status_code == 503 and r.json()["error"]["type"] == "models_unavailable"
        assert "no fieldtune.json" in r.json()["error"]["message"]
        assert store.counts()["items"] == 0
        assert client.get("/").status_code == 200  # the pages still work
    store.close()


def test_openapi_lists_the_watch_routes_not_the_pages(watch):
    client, *_ = watch
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/watch/series", "/v1/watch/alerts", "/v1/watch/alerts/{alert_id}", "/v1/watch/items"} <= set(paths)
    assert {"/v1/watch/feedback", "/v1/watch/baseline", "/health"} <= set(paths)
    assert "/" not in paths and "/alerts/{alert_id}" not in paths


def test_alert_page_lists_the_other_rules_of_the_surge(tmp_path):
    """One alert per surge: the rules that also fired are on its page."""
    from fastapi.testclient import TestClient

    from fieldtune.apps.watch.config import load_watch_config
    from fieldtune.apps.watch.web import create_watch_app
    from fieldtune.store.watch_store import WatchStore

    model = tmp_path / "model"
    model.mkdir()
    cfg = load_watch_config({"sentiment": str(model)}, base_dir=tmp_path)
    store = WatchStore(cfg.db)
    (alert,) = store.add_alerts(
        [
            {
                "key": "Acme",
                "kind": "entity",
                "bucket_start": datetime(2026, 3, 2, 10, tzinfo=timezone.utc),
                "rule": "zscore",
                "value": 6.5,
                "threshold": 4.0,
                "items": [],
                "details": {"also": [{"rule": "cusum", "value": 7.25, "threshold": 6.0}]},
            }
        ]
    )
    page = TestClient(create_watch_app(cfg, store)).get(f"/alerts/{alert['id']}")
    assert page.status_code == 200 and "also cusum: 7.25 / 6" in page.text

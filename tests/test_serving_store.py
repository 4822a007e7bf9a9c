"""The server with a store: logged predictions, /v1/feedback, and hot reload of the champion."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from conftest import overfit_config, run, serving

import fieldtune
from fieldtune.serving import create_app
from fieldtune.store import Feedback, Prediction, Store
from fieldtune.store.registry import promote, register_model


@pytest.fixture(scope="module")
def two_runs(cls_file, tmp_path_factory):
    out = []
    for seed in (11, 12):
        path = tmp_path_factory.mktemp(f"srv{seed}") / "run"
        out.append(
            fieldtune.train(overfit_config("classification", cls_file, path, epochs=2, seed=seed), progress=False)
        )
    return [r.output_dir for r in out]


@pytest.fixture(scope="module")
def predictor(two_runs):
    return fieldtune.load(two_runs[0])


TEXTS = ["my card has not arrived", "what is the exchange rate", "my pin is blocked"]


@pytest.mark.parametrize("log_inputs", ["text", "hash"])
def test_every_prediction_is_logged(two_runs, predictor, tmp_path, log_inputs):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    app = create_app(two_runs[0], predictor=predictor, store=store, log_inputs=log_inputs)

    async def body():
        async with serving(app) as client:
            answers = await asyncio.gather(*[client.post("/v1/predict", json={"inputs": TEXTS}) for _ in range(10)])
        return [a.json() for a in answers]

    answers = run(body())  # the lifespan's end flushes what is still queued
    logged = {p.id: p for p in store.predictions()}
    assert len(logged) == 30 == store.count(Prediction)
    for answer in answers:
        for pid, text, out in zip(answer["ids"], TEXTS, answer["predictions"]):
            row = logged[pid]
            assert row.model_version == answer["model_version"] and row.output == out
            assert row.label == out["label"] and row.confidence == pytest.approx(out["score"])
            assert row.text == (text if log_inputs == "text" else None)
            assert len(row.text_hash) == 64 and row.latency_ms > 0


def test_feedback_endpoint(two_runs, predictor, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    app = create_app(two_runs[0], predictor=predictor, store=store)

    async def body():
        async with serving(app) as client:
            pred = (await client.post("/v1/predict", json={"inputs": "my pin is blocked"})).json()
            pid = pred["ids"][0]
            return {  # the prediction is still queued for logging: the endpoint must find it anyway
                "by_id": await client.post("/v1/feedback", json={"prediction_id": pid, "label": "card_arrival"}),
                "by_text": await client.post(
                    "/v1/feedback", json={"text": "rate for euros?", "label": "exchange_rate"}
                ),
                "unknown_label": await client.post("/v1/feedback", json={"prediction_id": pid, "label": "refund"}),
                "unknown_id": await client.post(
                    "/v1/feedback", json={"prediction_id": "ab" * 16, "label": "pin_blocked"}
                ),
                "two_kinds": await client.post("/v1/feedback", json={"text": "x", "label": "a", "labels": ["a"]}),
                "nothing": await client.post("/v1/feedback", json={"label": "pin_blocked"}),
                "extra": await client.post("/v1/feedback", json={"text": "x", "label": "pin_blocked", "zzz": 1}),
                "pred": pred,
            }

    r = run(body())
    assert r["by_id"].status_code == 201, r["by_id"].text
    assert r["by_id"].json()["model_version"] == r["pred"]["model_version"]
    assert r["by_text"].status_code == 201
    for key, status, kind in [
        ("unknown_label", 422, "invalid_label"),
        ("unknown_id", 404, "unknown_prediction"),
        ("two_kinds", 422, "invalid_label"),
        ("nothing", 422, "invalid_request"),
        ("extra", 422, "invalid_request"),
    ]:
        assert r[key].status_code == status, (key, r[key].text)
        err = r[key].json()["error"]
        assert err["type"] == kind and err["message"] and err["hint"], (key, err)
    rows = store.feedback()
    assert [(f.text, f.label) for f in rows] == [
        ("my pin is blocked", "card_arrival"),
        ("rate for euros?", "exchange_rate"),
    ]
    assert rows[0].prediction_id == r["pred"]["ids"][0]


def test_feedback_without_a_store_is_404(two_runs, predictor):
    app = create_app(two_runs[0], predictor=predictor)

    async def body():
        async with serving(app) as client:
            return await client.post("/v1/feedback", json={"text": "x", "label": "pin_blocked"})

    assert run(body()).json()["error"]["type"] == "feedback_disabled"


def test_concurrent_feedback_posts_make_exactly_n_rows(two_runs, predictor, db_url):
    store = Store(db_url)
    app = create_app(two_runs[0], predictor=predictor, store=store)
    n = 60

    async def body():
        async with serving(app) as client:
            posts = [
                client.post("/v1/feedback", json={"text": f"query {i}", "label": "pin_blocked", "source": f"s{i}"})
                for i in range(n)
            ]
            return await asyncio.gather(*posts)

    answers = run(body())
    assert [a.status_code for a in answers] == [201] * n
    assert store.count(Feedback) == n and len({a.json()["id"] for a in answers}) == n
    assert sorted(f.source for f in store.feedback()) == sorted(f"s{i}" for i in range(n))


def test_promotion_under_load_hot_reloads_without_a_failed_request(two_runs, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    a, _ = register_model(store, two_runs[0])
    b, _ = register_model(store, two_runs[1])
    promote(store, a.version)
    app = create_app(None, store=store, reload_interval=0.1, max_wait_ms=2)
    seen: list[tuple[int, str | None]] = []

    async def client_loop(client, stop):
        while not stop.is_set():
            r = await client.post("/v1/predict", json={"inputs": TEXTS[len(seen) % 3]})
            seen.append((r.status_code, r.json().get("model_version")))

    async def body():
        async with serving(app) as client:
            for _ in range(300):
                if (await client.get("/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            stop = asyncio.Event()
            loops = [asyncio.create_task(client_loop(client, stop)) for _ in range(6)]
            await asyncio.sleep(1.0)
            await asyncio.to_thread(promote, store, b.version, "test")
            for _ in range(600):  # until the new champion has answered a while
                if sum(v == b.version for _, v in seen) >= 30:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.gather(*loops)
            return (await client.get("/metadata")).json(), (await client.get("/metrics")).text

    meta, metrics = run(body(), timeout=180)
    assert f'fieldtune_model_info{{model_version="{b.version}",task="classification"}} 1.0' in metrics
    assert a.version not in metrics and "fieldtune_model_reloads_total 1.0" in metrics
    assert meta["model_version"] == b.version
    statuses = {s for s, _ in seen}
    assert statuses == {200}, f"failed requests during the swap: {statuses}"
    versions = [v for _, v in seen]
    assert versions[0] == a.version and versions[-1] == b.version
    first_b = versions.index(b.version)
    assert all(v == a.version for v in versions[:first_b]) and len(versions) > 60


def test_a_corrupted_champion_is_not_served(two_runs, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    copy = tmp_path / "b"
    shutil.copytree(two_runs[1], copy)
    a, _ = register_model(store, two_runs[0])
    b, _ = register_model(store, copy)
    promote(store, a.version)
    app = create_app(None, store=store, reload_interval=0.1)
    service = app.state.service

    async def body():
        async with serving(app) as client:
            while not service.ready:
                await asyncio.sleep(0.1)
            (copy / "model" / "model.safetensors").write_bytes(b"garbage")
            store.promote(b.version, "a writer that skipped the checks")  # bypasses registry.promote's checks
            await asyncio.sleep(1.0)
            answer = await client.post("/v1/predict", json={"inputs": "my pin is blocked"})
            metrics = (await client.get("/metrics")).text
            return answer, metrics

    answer, metrics = run(body())
    assert answer.status_code == 200 and answer.json()["model_version"] == a.version  # still the old model
    assert 'fieldtune_errors_total{type="reload_failed"} 1.0' in metrics

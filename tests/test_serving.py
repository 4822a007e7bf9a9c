"""The HTTP server (``fieldtune.serving``): routes, shapes, limits, auth, metrics, micro-batching,
a real socket with graceful shutdown, and a schemathesis fuzz of the OpenAPI document.

Two tiny real models are trained once per module; the apps get the loaded Predictor so most
tests pay no load time. Everything binds to 127.0.0.1 and every loop is bounded.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from conftest import SAMPLES, overfit_config, run, serving
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import fieldtune
from fieldtune.errors import UserError
from fieldtune.serving import create_app, serve_cli
from fieldtune.serving.app import app_from_env
from fieldtune.serving.batcher import BatcherClosed, MicroBatcher

NER_TEXT = "Watching the game with Justin Bieber in Toronto tonight"


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def cls_run(cls_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serve_cls") / "run"
    config = overfit_config("classification", cls_file, out, epochs=2, batch_size=12)  # serving needs no accuracy
    return fieldtune.train(config, progress=False).output_dir


@pytest.fixture(scope="module")
def ner_run(ner_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serve_ner") / "run"
    config = overfit_config("ner", ner_file, out, epochs=8, batch_size=8, lr=5e-4)  # enough to find entities
    return fieldtune.train(config, progress=False).output_dir


@pytest.fixture(scope="module")
def cls_predictor(cls_run):
    return fieldtune.load(cls_run)


@pytest.fixture(scope="module")
def ner_predictor(ner_run):
    return fieldtune.load(ner_run)


def banking_texts(n: int) -> list[str]:
    """``n`` distinct real queries."""
    with open(SAMPLES / "banking77" / "train.csv", newline="", encoding="utf-8") as f:
        texts = list(dict.fromkeys(row["text"] for row in csv.DictReader(f)))
    return texts[:n]


def metric(text: str, name: str) -> float:
    """The value of one exposition line, e.g. ``fieldtune_batch_size_bucket{le="1.0"}``."""
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def same_prediction(got, want) -> bool:
    """Equal labels, scores within float noise (batched padding may move the 6th decimal)."""
    if isinstance(want, list):
        return len(got) == len(want) and all(same_prediction(g, w) for g, w in zip(got, want, strict=True))
    return got["label"] == want["label"] and abs(got["score"] - want["score"]) < 1e-4


def assert_error(response: httpx.Response, status: int, type_: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == type_ and error["message"] and error["hint"], error
    return error


# ---------------------------------------------------------------- predictions


def test_predict_single_and_list(cls_run, cls_predictor):
    app = create_app(cls_run, predictor=cls_predictor)

    async def body():
        async with serving(app) as client:
            one = (await client.post("/v1/predict", json={"inputs": "my pin is blocked"})).json()
            texts = ["where is my new card?", "what exchange rate do you use", "my pin is blocked"]
            many = (await client.post("/v1/predict", json={"inputs": texts})).json()
            top = (await client.post("/v1/predict", json={"inputs": texts[:1], "parameters": {"top_k": 2}})).json()
            meta = (await client.get("/metadata")).json()
            return one, many, top, meta, texts

    one, many, top, meta, texts = run(body())
    assert set(one) == {"model_version", "predictions", "ids"}
    assert len(one["predictions"]) == 1 and set(one["predictions"][0]) == {"label", "score"}
    assert same_prediction(one["predictions"][0], cls_predictor.predict("my pin is blocked"))
    assert all(same_prediction(g, w) for g, w in zip(many["predictions"], cls_predictor.predict(texts), strict=True))
    ids = one["ids"] + many["ids"]
    assert len(set(ids)) == 4 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert [len(p) for p in top["predictions"]] == [2]  # top-k: a list per input
    assert one["model_version"] == many["model_version"] == meta["model_version"]
    assert re.fullmatch(r"[0-9a-f]{12}", one["model_version"])
    assert meta["task"] == "classification" and meta["labels"] == cls_predictor.labels
    assert meta["metrics"]["test"]["accuracy"] >= 0 and meta["limits"]["max_inputs"] == 64
    assert meta["base_model"]["name"] == "minilm" and meta["causal_lm"] is False
    assert meta["backend"] == "torch"


def test_ner_entities_index_the_text_even_with_control_characters(ner_run, ner_predictor):
    app = create_app(ner_run, predictor=ner_predictor)
    noisy = NER_TEXT.replace(" the ", "\x00the\x07")  # same length; control chars act as spaces

    async def body():
        async with serving(app) as client:
            return (await client.post("/v1/predict", json={"inputs": [NER_TEXT, noisy]})).json()

    clean, dirty = run(body())["predictions"]
    assert clean, "the overfit NER model finds the entities of a training sentence"
    for ents, text in ((clean, NER_TEXT), (dirty, noisy)):
        for ent in ents:
            assert set(ent) == {"entity_group", "word", "start", "end", "score"}
            assert NER_TEXT[ent["start"] : ent["end"]] == ent["word"] == text[ent["start"] : ent["end"]]
    assert [e["word"] for e in dirty] == [e["word"] for e in clean]
    assert [e["word"] for e in clean] == [e["word"] for e in ner_predictor.predict(NER_TEXT)]


WEIRD_TEXTS = [
    "\x00\x01 card \x1b[31m",
    "😀" * 3000,
    "\u202eevil rtl",
    "e\u0301" * 2000,
    "\u200b",
    "\ufeffBOM",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 pin",
    "a\r\nb\tc",
    "中文银行卡",
]


@pytest.mark.parametrize("task", ["classification", "ner"])
def test_unicode_and_control_characters_never_crash(task, cls_run, cls_predictor, ner_run, ner_predictor):
    run_dir, predictor = (cls_run, cls_predictor) if task == "classification" else (ner_run, ner_predictor)
    app = create_app(run_dir, predictor=predictor)
    # lone surrogates are valid JSON escapes
    raw = b'{"inputs": ["a\\ud800b", "\\udfff", "ok \\ud83d\\ude00"]}'

    async def body():
        async with serving(app) as client:
            weird = await client.post("/v1/predict", json={"inputs": WEIRD_TEXTS})
            lone = await client.post("/v1/predict", content=raw, headers={"content-type": "application/json"})
            blank = await client.post("/v1/predict", json={"inputs": ["ok", "\x00\x07 \t"]})
            return weird, lone, blank

    weird, lone, blank = run(body())
    assert weird.status_code == 200 and len(weird.json()["predictions"]) == len(WEIRD_TEXTS)
    assert lone.status_code == 200 and len(lone.json()["predictions"]) == 3
    assert "inputs[1]" in assert_error(blank, 422, "invalid_request")["message"]


# ---------------------------------------------------------------- limits and validation

JSON = {"content-type": "application/json"}


async def chunks():
    """A chunked body without Content-Length: only counting the bytes read can stop it."""
    for part in (b'{"inputs": "', b"x" * 3000, b'"}'):
        yield part


ERROR_CASES = {
    "too many inputs": ({"json": {"inputs": ["a"] * 5}}, 413, "payload_too_large"),
    "text too long": ({"json": {"inputs": ["ok", "x" * 101]}}, 413, "payload_too_large"),
    "body over content-length": (
        {"content": b'{"inputs": "' + b"x" * 3000 + b'"}', "headers": JSON},
        413,
        "payload_too_large",
    ),
    "body over limit when streamed": (
        {"content": "chunks", "headers": JSON},
        413,
        "payload_too_large",
    ),
    "inputs not text": ({"json": {"inputs": 5}}, 422, "invalid_request"),
    "list of numbers": ({"json": {"inputs": [1, 2]}}, 422, "invalid_request"),
    "top_k not int": (
        {"json": {"inputs": "a", "parameters": {"top_k": "3"}}},
        422,
        "invalid_request",
    ),
    "top_k zero": ({"json": {"inputs": "a", "parameters": {"top_k": 0}}}, 422, "invalid_request"),
    "empty string": ({"json": {"inputs": ""}}, 422, "invalid_request"),
    "blank string": ({"json": {"inputs": "   "}}, 422, "invalid_request"),
    "empty list": ({"json": {"inputs": []}}, 422, "invalid_request"),
    "missing inputs": ({"json": {"input": "a"}}, 422, "invalid_request"),
    "not an object": ({"json": ["a"]}, 422, "invalid_request"),
    "invalid json": ({"content": b'{"inputs": ', "headers": JSON}, 422, "invalid_json"),
    "deep json": ({"content": b"[" * 1500, "headers": JSON}, 422, "invalid_json"),
    "invalid utf-8": ({"content": b'{"inputs": "\xff\xfe"}', "headers": JSON}, 422, "invalid_utf8"),
    "no content-type": ({"content": b'{"inputs": "a"}'}, 415, "unsupported_media_type"),
}


def test_limits_and_validation_errors_are_json(cls_run, cls_predictor):
    app = create_app(cls_run, predictor=cls_predictor, max_inputs=4, max_chars=100, max_body_bytes=2000)

    async def body():
        async with serving(app) as client:
            out = {}
            for name, (kwargs, _, _) in ERROR_CASES.items():
                if kwargs.get("content") == "chunks":
                    kwargs = {**kwargs, "content": chunks()}
                out[name] = await client.post("/v1/predict", **kwargs)
            out["unknown route"] = await client.get("/v2/nothing")
            out["wrong method"] = await client.get("/v1/predict")
            return out

    responses = run(body())
    for name, (_, status, type_) in ERROR_CASES.items():
        error = assert_error(responses[name], status, type_)
        if status == 413:
            assert any(str(n) in error["message"] for n in (4, 100, 2000)), error  # names the limit
    assert_error(responses["unknown route"], 404, "not_found")
    assert_error(responses["wrong method"], 405, "method_not_allowed")
    assert "inputs" in responses["missing inputs"].json()["error"]["message"]


# ---------------------------------------------------------------- auth, chat, probes, metrics


def test_bearer_auth(cls_run, cls_predictor, monkeypatch):
    monkeypatch.setenv("FIELDTUNE_API_TOKEN", "s3cret")
    app = create_app(cls_run, predictor=cls_predictor)
    ok = {"Authorization": "Bearer s3cret"}

    async def body():
        async with serving(app) as client:
            return {
                "no token": await client.post("/v1/predict", json={"inputs": "a"}),
                "wrong token": await client.post(
                    "/v1/predict", json={"inputs": "a"}, headers={"Authorization": "Bearer nope"}
                ),
                "metadata": await client.get("/metadata"),
                "good": await client.post("/v1/predict", json={"inputs": "a"}, headers=ok),
                "good metadata": await client.get("/metadata", headers=ok),
                "health": await client.get("/health"),
                "ready": await client.get("/ready"),
            }

    r = run(body())
    for name in ("no token", "wrong token", "metadata"):
        assert_error(r[name], 401, "unauthorized")
        assert r[name].headers["www-authenticate"] == "Bearer"
    assert all(r[name].status_code == 200 for name in ("good", "good metadata", "health", "ready"))
    monkeypatch.delenv("FIELDTUNE_API_TOKEN")
    assert "HTTPBearer" not in json.dumps(create_app(cls_run, predictor=cls_predictor).openapi())  # off by default


def test_chat_completions_is_documented_and_404_for_non_causal_models(cls_run, cls_predictor):
    app = create_app(cls_run, predictor=cls_predictor)

    async def body():
        async with serving(app) as client:
            return await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})

    error = assert_error(run(body()), 404, "not_a_causal_lm")
    assert "not a causal LM" in error["message"]
    assert "post" in app.openapi()["paths"]["/v1/chat/completions"]


def test_ready_only_once_the_model_is_loaded(cls_run):
    app = create_app(cls_run)  # loads for real, in the background

    async def body():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            before = await client.get("/ready")  # lifespan not started: nothing loaded
            refused = await client.post("/v1/predict", json={"inputs": "a"})
        async with serving(app) as client:
            health = await client.get("/health")
            for _ in range(300):  # bounded: <= 60 s
                ready = await client.get("/ready")
                if ready.status_code == 200:
                    break
                await asyncio.sleep(0.2)
            predicted = await client.post("/v1/predict", json={"inputs": "my pin is blocked"})
        return before, refused, health, ready, predicted

    before, refused, health, ready, predicted = run(body(), timeout=90)
    assert before.status_code == 503 and before.json()["status"] == "loading"
    assert_error(refused, 503, "not_ready")
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert predicted.status_code == 200


def test_a_model_that_cannot_load_is_reported_not_served(cls_run, tmp_path):
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "fieldtune.json").write_bytes((cls_run / "model" / "fieldtune.json").read_bytes())  # no weights
    app = create_app(broken)

    async def body():
        async with serving(app) as client:
            for _ in range(100):  # bounded: <= 20 s
                ready = await client.get("/ready")
                if ready.json()["status"] != "loading":
                    break
                await asyncio.sleep(0.2)
            return ready, await client.post("/v1/predict", json={"inputs": "a"})

    ready, refused = run(body())
    assert ready.status_code == 503 and ready.json()["status"] == "failed" and ready.json()["error"]
    assert_error(refused, 503, "model_failed")


class BrokenPredictor:
    meta, labels = {}, []

    def predict(self, texts, top_k=None):
        raise RuntimeError("boom")


def test_unexpected_errors_are_a_json_500(cls_run):
    app = create_app(cls_run, predictor=BrokenPredictor())

    async def body():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.post("/v1/predict", json={"inputs": "a"})

    assert_error(run(body()), 500, "internal_error")


def test_metrics_count_requests_errors_and_batches(cls_run, cls_predictor):
    app = create_app(cls_run, predictor=cls_predictor)

    async def body():
        async with serving(app) as client:
            for _ in range(3):
                await client.post("/v1/predict", json={"inputs": ["a", "b"]})
            await client.post("/v1/predict", json={"inputs": []})
            return await client.get("/metrics")

    response = run(body())
    text = response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert metric(text, 'fieldtune_requests_total{method="POST",route="/v1/predict",status="200"}') == 3
    assert metric(text, 'fieldtune_requests_total{method="POST",route="/v1/predict",status="422"}') == 1
    assert metric(text, 'fieldtune_errors_total{type="invalid_request"}') == 1
    assert metric(text, 'fieldtune_request_duration_seconds_count{route="/v1/predict"}') == 4
    assert metric(text, "fieldtune_batch_size_sum") == 6
    assert "fieldtune_model_info{" in text


# ---------------------------------------------------------------- micro-batching


@pytest.mark.parametrize("batching", [True, False])
def test_concurrent_requests_get_their_own_predictions(batching, cls_run, cls_predictor):
    texts = banking_texts(40)
    top_ks = [2 if i % 3 == 0 else None for i in range(len(texts))]  # different top_k: never mixed
    app = create_app(cls_run, predictor=cls_predictor, batching=batching, max_batch=16, max_wait_ms=50)

    async def body():
        async with serving(app) as client:
            calls = [
                client.post("/v1/predict", json={"inputs": t, "parameters": {"top_k": k}})
                for t, k in zip(texts, top_ks, strict=True)
            ]
            responses = await asyncio.gather(*calls)
            return responses, (await client.get("/metrics")).text

    responses, metrics = run(body())
    for text, k, response in zip(texts, top_ks, responses, strict=True):
        assert response.status_code == 200, response.text
        assert same_prediction(response.json()["predictions"][0], cls_predictor.predict(text, top_k=k))
    calls = metric(metrics, "fieldtune_batch_size_count")
    singles = metric(metrics, 'fieldtune_batch_size_bucket{le="1.0"}')
    assert metric(metrics, "fieldtune_batch_size_sum") == 40
    if batching:
        assert singles < calls and calls <= 20, (singles, calls)  # batches > 1 happened
    else:
        assert singles == calls == 40


def test_batcher_groups_by_parameters_and_isolates_failures():
    calls: list[tuple[list[str], object]] = []

    def predict(texts, key):
        calls.append((list(texts), key))
        if "boom" in texts:
            raise ValueError("bad text")
        return [f"{t}:{key}" for t in texts]

    async def body():
        batcher = MicroBatcher(predict, max_batch=4, max_wait_ms=100)
        await batcher.start()
        jobs = [batcher.submit([f"t{i}"], i % 2) for i in range(6)] + [batcher.submit(["boom"], 0)]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        await batcher.stop()
        with pytest.raises(BatcherClosed):
            await batcher.submit(["late"], 0)
        return results

    results = run(body(), timeout=20)
    assert results[:6] == [[f"t{i}:{i % 2}"] for i in range(6)]
    assert isinstance(results[6], ValueError)
    assert all(len(texts) <= 4 for texts, _ in calls)
    assert all(key == int(t[-1]) % 2 for texts, key in calls for t in texts if t != "boom")
    assert len(calls[0][0]) > 1  # the first call carried several requests


def test_batcher_drains_queued_work_on_stop():
    release = threading.Event()

    def predict(texts, key):
        release.wait(5)
        return list(texts)

    async def body():
        batcher = MicroBatcher(predict, max_batch=2, max_wait_ms=1)
        await batcher.start()
        pending = [asyncio.ensure_future(batcher.submit([f"t{i}"])) for i in range(5)]
        await asyncio.sleep(0.05)
        stopping = asyncio.ensure_future(batcher.stop(timeout=10))
        await asyncio.sleep(0.05)
        assert not stopping.done()  # still draining the queue
        release.set()
        await stopping
        return [p.result() for p in pending]

    assert run(body(), timeout=20) == [[f"t{i}"] for i in range(5)]


# ---------------------------------------------------------------- a real socket


class SlowPredictor:
    """Wraps a Predictor; each call waits so a request is surely in flight at shutdown."""

    def __init__(self, inner, delay: float) -> None:
        self.inner, self.delay, self.meta, self.labels = inner, delay, inner.meta, inner.labels
        self.entered = threading.Event()

    def predict(self, texts, top_k=None):
        self.entered.set()
        time.sleep(self.delay)
        return self.inner.predict(texts, top_k=top_k)


def test_socket_server_shuts_down_gracefully(cls_run, cls_predictor):
    slow = SlowPredictor(cls_predictor, delay=1.0)
    app = create_app(cls_run, predictor=slow)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=10))
    http = httpx.Client(timeout=30, trust_env=False)  # loopback only, never a proxy
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):  # bounded: <= 20 s
            if server.started:
                break
            time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        assert http.get(f"{base}/health").json() == {"status": "ok"}
        first = http.post(f"{base}/v1/predict", json={"inputs": "my pin is blocked"})
        assert first.status_code == 200 and first.json()["predictions"][0]["label"]
        slow.entered.clear()
        inflight: dict = {}
        client = threading.Thread(
            target=lambda: inflight.setdefault(
                "r", http.post(f"{base}/v1/predict", json={"inputs": ["where is my card?"]})
            )
        )
        client.start()
        assert slow.entered.wait(10), "the request never reached the model"
        server.should_exit = True  # what SIGTERM / Ctrl-C does
        client.join(30)
        assert inflight["r"].status_code == 200 and len(inflight["r"].json()["predictions"]) == 1
    finally:
        server.should_exit = True
        thread.join(30)
    assert not thread.is_alive()
    with pytest.raises(httpx.TransportError):
        http.get(f"{base}/health", timeout=2)
    http.close()


# ---------------------------------------------------------------- serve_cli and the worker factory


def test_serve_cli_fails_fast_on_a_bad_model_dir(tmp_path, monkeypatch):
    bound = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: bound.append(a))
    with pytest.raises(UserError, match="no such run"):
        serve_cli(tmp_path / "missing")
    with pytest.raises(UserError, match="not a fieldtune model"):
        serve_cli(tmp_path)
    from typer.testing import CliRunner

    from fieldtune.cli import app as cli

    result = CliRunner().invoke(cli, ["serve", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no such run" in result.output
    assert not bound


def test_serve_cli_runs_uvicorn_with_a_factory_for_several_workers(cls_run, monkeypatch):
    seen = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.append((app, kw)))
    monkeypatch.setenv("FIELDTUNE_MAX_INPUTS", "7")
    monkeypatch.setenv("FIELDTUNE_MODEL_DIR", "(restored after the test)")
    monkeypatch.setenv("FIELDTUNE_BACKEND", "auto")
    serve_cli(cls_run, port=0, workers=1)
    serve_cli(cls_run, port=0, workers=3, backend="torch")
    (one, kw1), (target, kw3) = seen
    assert one.state.service.limits.max_inputs == 7 and kw1["host"] == "127.0.0.1"
    assert kw1["timeout_graceful_shutdown"] == 30
    assert target == "fieldtune.serving.app:app_from_env" and kw3["factory"] and kw3["workers"] == 3
    app = app_from_env()  # what each worker process builds
    assert app.state.service.limits.max_inputs == 7 and app.state.service.backend == "torch"
    monkeypatch.setenv("FIELDTUNE_MAX_INPUTS", "lots")
    with pytest.raises(UserError, match="FIELDTUNE_MAX_INPUTS"):
        serve_cli(cls_run, port=0)
    with pytest.raises(UserError, match="backend"):
        serve_cli(cls_run, port=0, backend="bogus")
    with pytest.raises(UserError, match="ONNX"):
        serve_cli(cls_run, port=0, backend="onnx")  # nothing exported: refused before binding
    assert len(seen) == 2


# ---------------------------------------------------------------- schemathesis


@pytest.fixture(scope="module")
def api_schema(cls_run, cls_predictor):
    app = create_app(cls_run, predictor=cls_predictor, max_inputs=8, max_chars=200)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


FUZZ_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_openapi_fuzz(api_schema):
    """Every operation of /openapi.json, valid and (for POST) invalid bodies: never a 5xx, only
    documented statuses and content types, bodies that match the documented schemas.

    (Driven through hypothesis directly: schemathesis' ``from_fixture`` lazy loader reads
    ``request.node._nodeid``, which pytest 9 no longer has.)
    """
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/v1/predict",
        "/v1/chat/completions",
        "/ready",
        "/metadata",
    }
    for operation in operations:
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if operation.method == "post" else [])
        for mode in modes:
            examples = 25 if operation.method == "post" else 3

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case):
                case.call_and_validate(checks=FUZZ_CHECKS)

            check()

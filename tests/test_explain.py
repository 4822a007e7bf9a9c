"""Explanations (``fieldtune.explain``): word offsets, integrated-gradients completeness, a decisive word
ranked first on a tiny overfit model (integrated gradients and occlusion), NER spans, the CLI (table,
--json, --html) and ``POST /v1/explain``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import overfit_config, run, serving
from typer.testing import CliRunner

import fieldtune
from fieldtune.cli import app as cli_app
from fieldtune.errors import UserError
from fieldtune.explain import explain, load_for_explaining
from fieldtune.explain.gradients import baseline_ids, integrated_gradients
from fieldtune.explain.render import to_html
from fieldtune.explain.words import pieces_to_words, split_words, word_of_char
from fieldtune.serving import create_app

TEMPLATES = [
    "can I get a {} for my order",
    "please send the {} to my account",
    "how long does a {} take",
    "I am still waiting for my {}",
    "where is the {} for my payment",
    "I need a {} today",
    "is there a {} for this purchase",
    "my {} has not arrived yet",
]
QUERY = "Could you process my refund, please? Merci — café"
TRICKY = "Zürich's café—naïve 東京 don't!  e-mail: a.b@c.io (¿qué?) <b>&amp;</b>"


@pytest.fixture(scope="module")
def refund_run(tmp_path_factory) -> Path:
    """A tiny classifier where the word "refund" alone decides the label (the other texts differ only there)."""
    tmp = tmp_path_factory.mktemp("explain")
    with open(tmp / "refund.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for t in TEMPLATES:
            writer.writerow([t.format("refund"), "refund"])
            writer.writerows([[t.format(other), "other"] for other in ("receipt", "statement")])
    config = overfit_config("classification", tmp / "refund.csv", tmp / "run", epochs=6, batch_size=8)
    return fieldtune.train(config, progress=False).output_dir


@pytest.fixture(scope="module")
def refund(refund_run):
    return load_for_explaining(refund_run)


@pytest.fixture(scope="module")
def ner_run(ner_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("explain_ner") / "run"
    config = overfit_config("ner", ner_file, out, epochs=8, batch_size=8, lr=5e-4)
    return fieldtune.train(config, progress=False).output_dir


def top_word(result: dict) -> str:
    return max(result["attributions"], key=lambda a: a["score"])["word"]


# ---------------------------------------------------------------- words and offsets


def test_words_round_trip_with_punctuation_and_non_ascii():
    words = split_words(TRICKY)
    assert all(TRICKY[w.start : w.end] == w.word for w in words)
    assert [w.word for w in words][:9] == ["Zürich's", "café", "—", "naïve", "東", "京", "don't", "!", "e-mail"]
    assert "".join(w.word for w in words) == "".join(TRICKY.split())  # every visible character, once


def test_every_piece_lands_in_its_word(refund):
    tok = refund.artifact.tokenizer
    enc = tok(TRICKY, return_offsets_mapping=True, return_special_tokens_mask=True)
    words = split_words(TRICKY)
    owners = pieces_to_words(enc["offset_mapping"], word_of_char(TRICKY, words))
    for (start, end), special, owner in zip(enc["offset_mapping"], enc["special_tokens_mask"], owners):
        assert (owner == -1) == bool(special)
        if not special:
            assert words[owner].start <= start and end <= words[owner].end


@pytest.mark.parametrize("method", ["ig", "occlusion"])
def test_explanation_offsets_index_the_text(refund, method):
    result = explain(refund, TRICKY, method=method)
    assert [a["word"] for a in result["attributions"]] == [w.word for w in split_words(TRICKY)]
    assert all(TRICKY[a["start"] : a["end"]] == a["word"] for a in result["attributions"])


# ---------------------------------------------------------------- integrated gradients


def test_integrated_gradients_add_up_to_the_logit_difference(refund):
    tok, model = refund.artifact.tokenizer, refund.artifact.model
    enc = tok(QUERY, return_special_tokens_mask=True)
    ids = enc["input_ids"]
    base = baseline_ids(ids, enc["special_tokens_mask"], tok.pad_token_id)
    assert base[0] == ids[0] and base[-1] == ids[-1] and set(base[1:-1]) == {tok.pad_token_id}
    for label_id in range(len(refund.labels)):
        g = integrated_gradients(model, ids, base, lambda logits, i=label_id: logits[:, i], steps=50)
        assert abs(g.pieces.sum() - (g.value - g.baseline_value)) == pytest.approx(abs(g.convergence_delta))
        assert abs(g.convergence_delta) < 1e-3 * max(1.0, abs(g.value - g.baseline_value))
        assert g.pieces[0] == 0 and g.pieces[-1] == 0  # special tokens are the same in the baseline
    result = explain(refund, QUERY)
    assert result["method"] == "ig" and abs(result["convergence_delta"]) < 1e-3
    # the word scores are the piece scores summed: they still add up (to rounding)
    g = integrated_gradients(model, ids, base, lambda logits: logits[:, refund.labels.index(result["label"])], 50)
    assert sum(a["score"] for a in result["attributions"]) == pytest.approx(g.pieces.sum(), abs=1e-4)


# ---------------------------------------------------------------- the decisive word


@pytest.mark.parametrize("method", ["ig", "occlusion"])
def test_the_decisive_word_ranks_first(refund, method):
    result = explain(refund, QUERY, method=method)
    assert result["label"] == "refund" and result["score"] > 0.5
    assert top_word(result) == "refund"
    against = explain(refund, QUERY, method=method, label="other")  # the same word pushes away from "other"
    assert against["label"] == "other"
    assert min(against["attributions"], key=lambda a: a["score"])["word"] == "refund"


def test_bad_requests_are_user_errors(refund):
    with pytest.raises(UserError, match="unknown label"):
        explain(refund, QUERY, label="nope")
    with pytest.raises(UserError, match="unknown method"):
        explain(refund, QUERY, method="shap")
    with pytest.raises(UserError, match="empty"):
        explain(refund, "   ")


def test_occlusion_explains_an_embedding_zero_shot_model(refund_run, tmp_path):
    """The model-agnostic path: an embedding artifact has no PyTorch encoder to differentiate."""
    train = refund_run.parent / "refund.csv"
    config = {**overfit_config("classification", train, tmp_path / "zs"), "method": "zero_shot"}
    config.pop("train")
    predictor = load_for_explaining(fieldtune.train(config, progress=False).output_dir)
    with pytest.raises(UserError, match="occlusion"):
        explain(predictor, QUERY, method="ig")
    result = explain(predictor, QUERY)
    assert result["method"] == "occlusion" and "convergence_delta" not in result
    assert all(QUERY[a["start"] : a["end"]] == a["word"] for a in result["attributions"])
    if result["label"] == "refund":
        assert top_word(result) == "refund"


# ---------------------------------------------------------------- NER


@pytest.mark.parametrize("method", ["ig", "occlusion"])
def test_ner_explains_each_entity(ner_run, method):
    predictor = load_for_explaining(ner_run)
    text = "Watching the game with Justin Bieber in Toronto tonight"
    entities = predictor.predict(text)
    result = explain(predictor, text, method=method)
    assert [(e["start"], e["end"], e["label"]) for e in result["entities"]] == [
        (e["start"], e["end"], e["entity_group"]) for e in entities
    ]
    for e in result["entities"]:
        assert text[e["start"] : e["end"]] == e["word"]
        assert all(text[a["start"] : a["end"]] == a["word"] for a in e["attributions"])
        if method == "ig":
            assert abs(e["convergence_delta"]) < 1e-3 * max(1.0, sum(abs(a["score"]) for a in e["attributions"]))
    forced = explain(predictor, text, span=(23, 36), label="person", method=method)
    [one] = forced["entities"]
    assert (one["word"], one["label"]) == ("Justin Bieber", "person")


# ---------------------------------------------------------------- CLI and HTTP


def test_cli_json_table_and_html(refund_run, tmp_path):
    runner = CliRunner()
    got = runner.invoke(cli_app, ["explain", str(refund_run), QUERY, "--json"])
    assert got.exit_code == 0, got.output
    result = json.loads(got.stdout.strip().splitlines()[-1])
    assert {"label", "score", "method", "attributions", "convergence_delta"} <= set(result)
    assert top_word(result) == "refund"
    page = tmp_path / "why.html"
    text = "my refund <b>&amp;</b> now"
    got = runner.invoke(cli_app, ["explain", str(refund_run), text, "--method", "occlusion", "--html", str(page)])
    assert got.exit_code == 0, got.output
    assert "refund" in got.stdout and "occlusion" in got.stdout
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<title>refund (score" in html
    assert ">&lt;</span>" in html and ">&amp;</span>" in html and ">&gt;</span>" in html  # each its own word
    assert "<b>" not in html and "</b>" not in html
    got = runner.invoke(cli_app, ["explain", str(refund_run), QUERY, "--label", "nope"])
    assert got.exit_code == 2 and "unknown label" in got.output


def test_html_shades_by_sign_and_size():
    result = {
        "label": "x",
        "score": 0.9,
        "method": "ig",
        "attributions": [
            {"word": "good", "start": 0, "end": 4, "score": 2.0},
            {"word": "bad", "start": 5, "end": 8, "score": -1.0},
        ],
    }
    html = to_html("good bad", result)
    assert "rgba(22, 163, 74, 0.800)" in html and "rgba(220, 38, 38, 0.400)" in html


def test_http_explain(refund_run, refund, ner_run):
    app = create_app(refund_run, predictor=refund)

    async def body():
        async with serving(app) as client:
            ok = await client.post("/v1/explain", json={"inputs": QUERY})
            occ = await client.post("/v1/explain", json={"inputs": QUERY, "method": "occlusion", "label": "other"})
            bad = await client.post("/v1/explain", json={"inputs": QUERY, "label": "nope"})
            empty = await client.post("/v1/explain", json={"inputs": " "})
            schema = (await client.get("/openapi.json")).json()
            return ok, occ, bad, empty, schema

    ok, occ, bad, empty, schema = run(body())
    assert ok.status_code == 200, ok.text
    got = ok.json()
    assert got["label"] == "refund" and got["method"] == "ig" and top_word(got) == "refund"
    want = explain(refund, QUERY)
    assert [a["word"] for a in got["attributions"]] == [a["word"] for a in want["attributions"]]
    assert np.allclose([a["score"] for a in got["attributions"]], [a["score"] for a in want["attributions"]], atol=1e-4)
    assert occ.status_code == 200 and occ.json()["label"] == "other"
    for response in (bad, empty):
        assert response.status_code == 422 and response.json()["error"]["hint"]
    assert "/v1/explain" in schema["paths"]


def test_http_explain_ner(ner_run):
    predictor = load_for_explaining(ner_run)
    app = create_app(ner_run, predictor=predictor)
    text = "Watching the game with Justin Bieber in Toronto tonight"

    async def body():
        async with serving(app) as client:
            return await client.post("/v1/explain", json={"inputs": text, "span": [23, 36], "label": "person"})

    response = run(body())
    assert response.status_code == 200, response.text
    [entity] = response.json()["entities"]
    assert entity["word"] == "Justin Bieber" and entity["label"] == "person"


def test_cli_help_lists_explain():
    runner = CliRunner()
    top = runner.invoke(cli_app, ["--help"], env={"COLUMNS": "200"})
    assert top.exit_code == 0 and "explain" in top.output
    got = runner.invoke(cli_app, ["explain", "--help"], env={"COLUMNS": "200"})
    assert got.exit_code == 0
    assert all(option in got.output for option in ("--label", "--json", "--html", "--method", "--steps", "--span"))

"""Zero-shot NER with a decoder: strict JSON parsing and offset mapping (pure), and a small real run
with SmolLM2-135M producing seqeval metrics and a Predictor with the encoder NER output shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import conll_sentences

import fieldtune
from fieldtune.llm.ner import (
    build_prompt,
    conversation,
    joined,
    locate,
    parse_entities,
    pick_examples,
    to_tags,
    word_spans,
)
from fieldtune.predict import PredictorProtocol
from fieldtune.predict.llm_ner import NerPredictor

TYPES = ["LOC", "ORG", "PER"]


# ---------------------------------------------------------------- parsing (pure)


def test_parse_valid_answers():
    assert parse_entities('[{"type": "PER", "text": "Ada Lovelace"}]', TYPES) == [("PER", "Ada Lovelace")]
    assert parse_entities("[]", TYPES) == []
    fenced = '```json\n[{"type": "location", "text": "Paris"}, {"type": "org", "text": "UN"}]\n```'
    assert parse_entities(fenced, TYPES) == [("LOC", "Paris"), ("ORG", "UN")]  # type words and case map back
    assert parse_entities('[{"type": "ANIMAL", "text": "cat"}, {"type": "PER", "text": " "}]', TYPES) == []


@pytest.mark.parametrize(
    "answer",
    [
        "Paris is a location.",  # not JSON
        '[{"type": "PER", "text": "Ada"}',  # cut off
        '{"type": "PER", "text": "Ada"}',  # an object, not a list
        '["Ada"]',  # strings, not objects
        '[{"type": "PER", "name": "Ada"}]',  # wrong key
        '[{"type": "PER", "text": 3}]',  # wrong value type
        "[] and more",  # trailing text
    ],
)
def test_parse_failures(answer):
    assert parse_entities(answer, TYPES) is None


# ---------------------------------------------------------------- mapping to words (pure)


def test_locate_maps_to_word_offsets():
    text = "Paris Hilton flew from Paris to Paris, Texas."
    spans = word_spans(text)
    found, missing = locate(
        text, spans, [("PER", "Paris Hilton"), ("LOC", "Paris"), ("LOC", "Paris"), ("LOC", "Texas")]
    )
    assert missing == 0
    chars = [(t, spans[a][0], spans[b][1]) for t, a, b in found]
    assert chars == [("PER", 0, 12), ("LOC", 23, 28), ("LOC", 32, 37), ("LOC", 39, 44)]  # first *unused* Paris


def test_locate_drops_hallucinations_and_partial_words():
    text = "Parisians love Berlin"
    found, missing = locate(text, word_spans(text), [("LOC", "Paris"), ("LOC", "London"), ("LOC", "Berlin")])
    assert found == [("LOC", 2, 2)] and missing == 2  # "Paris" is inside a word: not an entity of the text


def test_locate_on_pre_split_tokens_ignores_spacing():
    text, spans = joined(["Germany", "'s", "U.S.", "envoy"])
    found, missing = locate(text, spans, [("LOC", "Germany's"), ("LOC", "U.S.")])
    assert (found, missing) == ([("LOC", 0, 1), ("LOC", 2, 2)], 0)
    assert to_tags(4, found) == ["B-LOC", "I-LOC", "B-LOC", "O"]


def test_prompt_shows_types_and_examples(ner_file):
    from fieldtune.data.readers import read_examples

    train = read_examples(ner_file, "ner", fieldtune.config.DataConfig(train=ner_file)).examples
    prompt = build_prompt(["location", "person"], pick_examples(train, ["location", "person"], 2))
    messages = conversation(prompt, "Hello Bob")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "location" in messages[0]["content"] and messages[-1]["content"] == "Text: Hello Bob"
    assert all(isinstance(e, list) for e in (json.loads(messages[2]["content"]), json.loads(messages[4]["content"])))


# ---------------------------------------------------------------- a real zero-shot run


def test_zero_shot_ner_run_and_predictor(ner_file, tmp_path):
    sentences = conll_sentences(ner_file)
    small = tmp_path / "small.txt"
    small.write_text("\n\n".join("\n".join(s) for s in sentences[:3]) + "\n", encoding="utf-8")
    config = {
        "task": "ner",
        "model": "smollm2",
        "method": "zero_shot",
        "data": {"train": str(ner_file), "dev": str(small), "test": str(small)},
        "output": str(tmp_path / "run"),
        "prompt": {"max_new_tokens": 32},
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = fieldtune.train(config, progress=False)
        predictor = fieldtune.load(result.output_dir)
        assert isinstance(predictor, NerPredictor) and isinstance(predictor, PredictorProtocol)
        text = "Justin Bieber played in Toronto"
        entities = predictor.predict(text)
    finally:
        torch.set_num_threads(threads)
    test = result.metrics["test"]
    assert {"f1", "precision", "recall", "parse_failures", "hallucinated"} <= set(test)
    assert 0.0 <= test["f1"] <= 1.0 and 0 <= test["parse_failures"] <= 3
    meta = json.loads((Path(result.model_dir) / "fieldtune.json").read_text())
    assert meta["kind"] == "llm" and meta["task"] == "ner" and meta["labels"][0] == "O"
    assert not list(Path(result.model_dir).glob("*.safetensors"))  # no weights: the base model is referenced
    for e in entities:
        assert set(e) == {"entity_group", "word", "start", "end", "score"}
        assert text[e["start"] : e["end"]] == e["word"]

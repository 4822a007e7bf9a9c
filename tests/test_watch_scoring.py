"""``fieldtune watch`` scoring: a real tiny sentiment model (trained here, 30 steps on 60 hand-written
finance headlines with capitalised labels), the real bundled ``minilm`` encoder for topics and
de-duplication, and the pure pieces (sentence splitter, aggregation, alias linker) on their own.

One model is trained per module; one scorer is built per module.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import fieldtune
from fieldtune.apps.watch import scoring
from fieldtune.apps.watch.config import load_watch_config
from fieldtune.apps.watch.dedup import find_duplicates
from fieldtune.apps.watch.entities import AliasLinker, link_orgs, org_words
from fieldtune.apps.watch.scoring import POLARITIES, Int8Encoder, Scorer, sentiment_columns
from fieldtune.apps.watch.sentences import MAX_BODY_SENTENCES, TITLE_WEIGHT, aggregate, segments, split_sentences
from fieldtune.apps.watch.topics import ExampleTopics, ModelTopics, NoTopics
from fieldtune.errors import UserError
from fieldtune.fewshot.head import embed
from fieldtune.tasks import get_task

DATA = Path(__file__).resolve().parent / "data"
TOPICS = json.loads((DATA / "watch_topics.json").read_text(encoding="utf-8"))
ENTITIES = {
    "ICBC": ["Industrial and Commercial Bank of China", "工商银行"],
    "Bank of China": ["中国银行"],
    "Northwind": ["Northwind Bank"],
}
KEYS = {"id", "sentiment", "p_positive", "p_negative", "p_neutral", "topics", "entities", "orgs", "embedding"}
KEYS |= {"model_versions"}
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class News:
    """The fields of ``apps.watch.items.Item`` the scorer reads."""

    id: str
    title: str
    text: str = ""


@pytest.fixture(scope="module")
def sentiment_dir(tmp_path_factory) -> Path:
    """A real classifier on our own headlines; labels Positive / Negative / Neutral (capitalised on
    purpose: the scorer matches them case-insensitively)."""
    tmp = tmp_path_factory.mktemp("sentiment")
    with open(DATA / "watch_sentiment.csv", newline="", encoding="utf-8") as f:
        rows = [(r["text"], r["label"].capitalize()) for r in csv.DictReader(f)]
    with open(tmp / "train.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    config = {
        "task": "classification",
        "model": "minilm",
        "data": {"train": str(tmp / "train.csv"), "dev": str(tmp / "train.csv")},
        "output": str(tmp / "run"),
        "train": {"max_steps": 30, "lr": 3e-4, "batch_size": 16, "patience": None, "checkpoint": False, "seed": 7},
    }
    return fieldtune.train(config, progress=False).model_dir


@pytest.fixture(scope="module")
def scorer(sentiment_dir, tmp_path_factory) -> Scorer:
    raw = {"sentiment": str(sentiment_dir), "topics": TOPICS["examples"], "entities": ENTITIES, "batch_size": 16}
    return Scorer.from_config(load_watch_config(raw, base_dir=tmp_path_factory.mktemp("cfg")))


# ---------------------------------------------------------------- the scorer with real models


def test_score_rows_have_the_store_columns_and_probabilities(scorer):
    items = [
        News("n1", "Northwind Bank fined for money laundering failures"),
        News("n2", "Brightmart shares surge after record holiday sales"),
        News("n3", "工商银行公布年度报告", "工商银行今天发布了年报。报告共有三百页。"),
    ]
    rows = scorer.score(items)
    assert [r["id"] for r in rows] == ["n1", "n2", "n3"]
    for row in rows:
        assert set(row) == KEYS
        probs = [row[f"p_{p}"] for p in POLARITIES]
        assert all(isinstance(p, float) and 0.0 <= p <= 1.0 for p in probs)
        assert sum(probs) == pytest.approx(1.0, abs=1e-6)
        assert row["sentiment"] == POLARITIES[int(np.argmax(probs))]  # lower case, whatever the model's case
        assert row["embedding"].dtype == np.float32 and row["embedding"].shape == (384,)
        assert np.linalg.norm(row["embedding"]) == pytest.approx(1.0, abs=1e-4)
        assert set(row["model_versions"]) == {"sentiment", "topics", "embedder"}
        assert all(isinstance(x, list) for x in (row["topics"], row["entities"], row["orgs"]))
    assert rows[0]["sentiment"] == "negative" and rows[1]["sentiment"] == "positive"  # seen in training
    assert rows[0]["entities"] == ["Northwind"] and rows[2]["entities"] == ["ICBC"]
    assert rows[0]["topics"][0] == "regulation"
    assert scorer.score([]) == []


def test_a_batch_scores_like_its_items_one_by_one(scorer):
    items = [News(str(i), h["title"]) for i, h in enumerate(TOPICS["headlines"][::5])]
    items.append(News("long", "Orion Foods posts best quarter in a decade", "Sales rose 3.5% in the U.S. market."))
    batch = scorer.score(items)
    for item, row in zip(items, batch):
        alone = scorer.score([item])[0]
        assert (alone["sentiment"], alone["topics"], alone["entities"]) == (
            row["sentiment"],
            row["topics"],
            row["entities"],
        )
        for p in POLARITIES:
            assert alone[f"p_{p}"] == pytest.approx(row[f"p_{p}"], abs=1e-4)  # padding changes only rounding
        assert np.dot(alone["embedding"], row["embedding"]) > 0.9999


def test_long_text_is_the_weighted_mean_of_its_sentences(scorer):
    title = "Eastgate Bank says results due on Thursday"
    body = "Eastgate Bank profit falls sharply on bad loans. The bank is based in Leeds. 它的股价下跌了。"
    row = scorer.score([News("x", title, body)])[0]
    texts = segments(title, body)
    assert texts == [
        title,
        "Eastgate Bank profit falls sharply on bad loans.",
        "The bank is based in Leeds.",
        "它的股价下跌了。",
    ]
    task, labels = scorer.sentiment.task, scorer.sentiment.labels
    per = scorer.sentiment.predict_examples([task.from_text(t) for t in texts])
    probs = np.array([[p[label] for label in labels] for p in per])
    neutral = labels.index("Neutral")
    expected = aggregate(probs, np.zeros(4, dtype=int), np.array([True, False, False, False]), neutral, 1)[0]
    assert row["p_negative"] == pytest.approx(expected[labels.index("Negative")], abs=1e-4)
    assert row["p_neutral"] == pytest.approx(expected[neutral], abs=1e-4)


def test_topics_from_examples_pick_the_obvious_topic(scorer):
    topics = ExampleTopics.from_examples(TOPICS["examples"], scorer.encoder, scorer.versions["embedder"])
    headlines = TOPICS["headlines"]
    rows = scorer.score([News(str(i), h["title"]) for i, h in enumerate(headlines)])
    first = [r["topics"][0] if r["topics"] else None for r in rows]
    hits = sum(f == h["topic"] for f, h in zip(first, headlines))
    assert hits >= 0.9 * len(headlines)  # measured: 38 of 40 (topics.py docstring)
    assert topics.version == scorer.topics.version  # same phrases, settings and encoder: same version
    assert topics.assign([h["title"] for h in headlines], np.stack([r["embedding"] for r in rows])) == [
        r["topics"] for r in rows
    ]
    off = scorer.score([News(str(i), t) for i, t in enumerate(TOPICS["other"])])
    assert all(r["topics"] == [] for r in off)
    two = TOPICS["two_topics"]
    rows = scorer.score([News(str(i), h["title"]) for i, h in enumerate(two)])
    assert all(r["topics"][0] in h["topics"] for r, h in zip(rows, two))  # the best topic is one of the two
    assert sum(len(set(r["topics"]) & set(h["topics"])) for r, h in zip(rows, two)) >= 7  # measured: 7 of 12


def test_topics_from_a_model_folder(scorer):
    single = ModelTopics(scorer.sentiment)  # any classifier: its top label is the topic
    titles = ["Northwind Bank fined for money laundering failures", "Orion Foods renames its snacks division"]
    assert single.assign(titles, np.zeros((2, 384))) == [["Negative"], ["Neutral"]]
    assert single.version == scorer.versions["sentiment"] and single.assign([], np.zeros((0, 384))) == []

    class MultiLabel:
        task, meta = get_task("multilabel"), {"created": "2025-01-01"}

        def predict_examples(self, examples):
            return [
                {"scores": {"mergers": 0.7, "regulation": 0.55, "markets": 0.1}, "threshold": 0.5} for _ in examples
            ]

    assert ModelTopics(MultiLabel()).assign(["x"], np.zeros((1, 384))) == [["mergers", "regulation"]]
    assert NoTopics().assign(["x", "y"], np.zeros((2, 384))) == [[], []]


def test_near_duplicates_group_a_rewrite_not_a_different_story(scorer):
    items = [
        News("a", "Northwind Bank fined $50 million over money laundering failures"),
        News("b", "Quill Software shares plunge after revenue warning"),
        News("c", "Northwind Bank fined $50 mln over money-laundering failures - sources"),
        News("d", "Quill Software shares jump after strong revenue forecast"),
        News("e", "UPDATE 1-Northwind Bank fined $50 mln over money-laundering failures - sources"),
    ]
    rows = scorer.score(items)
    assert find_duplicates(rows, [], 0.92) == {"c": "a", "e": "a"}  # a copy of a copy joins the head
    recent = [("old", rows[1]["embedding"])]  # "b" already seen in an earlier batch
    assert find_duplicates(rows[1:], recent, 0.92) == {"b": "old", "e": "c"}
    assert find_duplicates(rows[:1], [("a", rows[0]["embedding"])], 0.92) == {}  # never its own copy
    assert find_duplicates([], recent, 0.92) == {}
    # with times: an earlier item of the batch older than the window is not a candidate
    times = [T0, T0, T0 + timedelta(hours=30), T0, T0 + timedelta(hours=30)]
    assert find_duplicates(rows, [], 0.92, times=times, window=timedelta(hours=24)) == {"e": "c"}


def test_a_sentiment_model_without_a_negative_label_is_a_clear_error(sentiment_dir, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree(sentiment_dir, broken)
    meta = json.loads((broken / "fieldtune.json").read_text())
    meta["labels"] = ["Bearish" if label == "Negative" else label for label in meta["labels"]]
    (broken / "fieldtune.json").write_text(json.dumps(meta))
    cfg = load_watch_config({"sentiment": str(broken), "topics": {}}, base_dir=tmp_path)
    with pytest.raises(UserError) as err:
        Scorer.from_config(cfg)
    assert str(broken) in str(err.value) and "'negative'" in str(err.value)
    assert "['Bearish', 'Neutral', 'Positive']" in str(err.value)
    assert sentiment_columns(["NEGATIVE", " Neutral ", "positive", "mixed"]) == {
        "positive": 2,
        "negative": 0,
        "neutral": 1,
    }


def test_an_int8_sentiment_model_gets_the_int8_title_encoder(scorer, sentiment_dir, tmp_path, monkeypatch):
    version = scorer.versions["embedder"]
    int8 = Int8Encoder.load(version, folder=tmp_path / "watch-encoder")  # exported here, once
    titles = [h["title"] for h in TOPICS["headlines"]]
    fast, exact = embed(int8, titles, 16), embed(scorer.encoder, titles, 16)
    assert fast.shape == exact.shape and np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-4)
    assert (fast * exact).sum(axis=1).min() > 0.98  # measured: >= 0.989
    assert embed(int8, []).shape == (0, 384)

    class Int8Sentiment:  # the trained model, as if loaded from its int8 ONNX export
        def __init__(self, path, backend, batch_size):
            self.inner = fieldtune.load(path, batch_size=batch_size)
            self.artifact = self.inner.artifact  # fully fine-tuned: no layers shared with minilm
            self.labels, self.meta, self.task, self.backend = (
                self.inner.labels,
                self.inner.meta,
                self.inner.task,
                "onnx-int8",
            )
            self.predict_examples = self.inner.predict_examples

    monkeypatch.setattr(scoring, "load", lambda path, backend, batch_size: Int8Sentiment(path, backend, batch_size))
    monkeypatch.setenv("FIELDTUNE_CACHE", str(tmp_path))  # the export above is the cache: not made again
    raw = {"sentiment": str(sentiment_dir), "topics": TOPICS["examples"], "entities": ENTITIES, "backend": "onnx-int8"}
    fast_scorer = Scorer.from_config(load_watch_config(raw, base_dir=tmp_path))
    assert isinstance(fast_scorer.encoder, Int8Encoder) and fast_scorer.versions["embedder"] == f"{version}-int8"
    rows = fast_scorer.score([News(str(i), t) for i, t in enumerate(titles)])
    hits = sum(bool(r["topics"]) and r["topics"][0] == h["topic"] for r, h in zip(rows, TOPICS["headlines"]))
    assert hits >= 0.9 * len(titles)


class FakeNer:
    """A NER predictor's surface: ``predict(texts)`` → entity lists (organisations by capitalised 'Bank')."""

    def predict(self, texts):
        out = []
        for text in texts:
            start = text.find("Bank")
            out.append([] if start < 0 else [{"entity_group": "ORG", "word": text[: start + 4], "start": 0}])
        return out


def test_ner_organisations_link_to_the_watch_list_or_stay_orgs(scorer):
    with_ner = Scorer(scorer.sentiment, scorer.encoder, scorer.topics, scorer.linker, FakeNer(), batch_size=8)
    rows = with_ner.score([News("1", "Big Northwind Bank cuts jobs"), News("2", "Westfield Bank opens branch")])
    assert (rows[0]["entities"], rows[0]["orgs"]) == (["Northwind"], [])
    assert (rows[1]["entities"], rows[1]["orgs"]) == ([], ["Westfield Bank"])


# ---------------------------------------------------------------- pure pieces


def test_aliases_match_whole_words_case_insensitively_and_chinese_as_substrings():
    linker = AliasLinker(ENTITIES)
    assert linker.find("icbc's profit rises") == ["ICBC"]
    assert linker.find("ICBCX fund launches") == []  # not a whole word
    assert linker.find("XICBC and ICBC2 and 2ICBC") == []
    assert linker.find("工商银行一季度净利润增长") == ["ICBC"]  # CJK: substring, no word boundaries
    assert linker.find("工商银行ICBC发布公告") == ["ICBC"]
    assert linker.find("Industrial and  Commercial\nBank of China said") == ["ICBC"]  # any whitespace
    assert linker.find("Bank of China and Northwind Bank") == ["Bank of China", "Northwind"]
    assert linker.find("中国银行与工商银行") == ["Bank of China", "ICBC"]
    assert linker.find("") == [] and AliasLinker({}).find("ICBC") == []
    # longest match wins on overlap: the long alias, not the shorter one inside it
    nested = AliasLinker({"China": ["China"], "ICBC": ["Industrial and Commercial Bank of China"]})
    assert nested.find("Industrial and Commercial Bank of China") == ["ICBC"]
    assert [k for _, _, k in nested.spans("China and the Industrial and Commercial Bank of China")] == [
        "china",
        "industrial and commercial bank of china",
    ]
    shared = AliasLinker({"A": ["Acme"], "B": ["acme"]})
    assert shared.find("ACME rises") == ["A", "B"]


def test_ner_helpers():
    output = [
        {"entity_group": "ORG", "word": "ICBC Asia"},
        {"entity_group": "PER", "word": "Chen"},
        {"entity_group": "corporation", "word": "Westfield  Holdings"},
    ]
    assert org_words(output) == ["ICBC Asia", "Westfield  Holdings"]
    linker = AliasLinker(ENTITIES)
    assert link_orgs(linker, ["Northwind"], org_words(output)) == (["Northwind", "ICBC"], ["Westfield Holdings"])


def test_sentence_splitter_keeps_abbreviations_and_decimals():
    text = (
        "Apple Inc. said revenue rose 3.5% to $1.2 bln. Mr. Smith of the U.S. unit agreed! Shares fell? "
        "Yes.\nNew paragraph without a stop"
    )
    assert split_sentences(text) == [
        "Apple Inc. said revenue rose 3.5% to $1.2 bln.",
        "Mr. Smith of the U.S. unit agreed!",
        "Shares fell?",
        "Yes.",
        "New paragraph without a stop",
    ]
    assert split_sentences("工商银行净利润增长3.5%。股价上涨！分析师看好；评级上调") == [
        "工商银行净利润增长3.5%。",
        "股价上涨！",
        "分析师看好；",
        "评级上调",
    ]
    assert split_sentences('He said "profits fell." Then he left.') == ['He said "profits fell."', "Then he left."]
    assert split_sentences("Results due Jan. 5. Analysts expect a loss.") == [
        "Results due Jan. 5.",
        "Analysts expect a loss.",
    ]
    assert split_sentences("") == [] and split_sentences("  \n ") == []
    assert split_sentences("One. Two. Three.", limit=2) == ["One.", "Two."]
    assert segments("T", "") == ["T"]
    assert len(segments("T", "One. " * 50)) == 1 + MAX_BODY_SENTENCES


def test_aggregation_weights_the_title_and_sentences_that_carry_sentiment():
    neg, neu, pos = [0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]  # columns: negative, neutral, positive
    probs = np.array([neg, neu, neu, neu, pos, neu])
    owners = np.array([0, 0, 0, 0, 1, 2])
    titles = np.array([True, False, False, False, True, True])
    out = aggregate(probs, owners, titles, 1, 3)
    assert out.shape == (3, 3) and np.allclose(out.sum(axis=1), 1.0)
    assert np.allclose(out[1], pos) and np.allclose(out[2], neu)  # a title alone keeps its probabilities
    assert out[0].argmax() == 0  # neutral filler does not dilute a negative story to neutral
    plain_mean = probs[:4].mean(axis=0)
    assert out[0][0] > plain_mean[0]
    # the title counts TITLE_WEIGHT times a body sentence of the same polar mass
    two = aggregate(np.array([neg, pos]), np.array([0, 0]), np.array([True, False]), 1, 1)[0]
    assert two[0] / two[2] == pytest.approx((TITLE_WEIGHT * 0.9 + 0.05) / (TITLE_WEIGHT * 0.05 + 0.9), rel=1e-3)


def test_copies_share_entities_and_sentiment():
    """Same template about another company, or the opposite sentiment: not a copy, however similar."""
    e = np.ones(4, dtype=np.float32)
    rows = [
        {"id": "a", "embedding": e, "entities": ["Contoso"], "sentiment": "negative"},
        {"id": "b", "embedding": e, "entities": ["Litware"], "sentiment": "negative"},
        {"id": "c", "embedding": e, "entities": ["Contoso"], "sentiment": "positive"},
        {"id": "d", "embedding": e, "entities": ["Contoso"], "sentiment": "negative"},
    ]
    assert find_duplicates(rows, [], 0.92) == {"d": "a"}
    recent = [("old", e, ["Litware"], "negative")]
    assert find_duplicates(rows[:1] + rows[1:2], recent, 0.92) == {"b": "old"}

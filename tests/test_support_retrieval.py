"""Support retrieval on the shipped templates with the real minilm: BM25, dense, RRF fusion, Chinese, fine-tuning."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from fieldtune.apps.support.kb import Passage, kb_texts, load_templates
from fieldtune.apps.support.retrieval import RRF_K, Retriever, tokenize
from fieldtune.errors import UserError

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "fieldtune" / "samples"
PASSAGES = [
    Passage(
        "faq/wire.md#1",
        "Our SWIFT/BIC code is FLDTGB2L; give it with your IBAN to receive money from abroad.",
        "faq/wire.md",
        "Receiving international payments",
    ),
    Passage("faq/zh.md#1", "您可以在中国工商银行的网点存入现金，一般两个工作日内到账。", "faq/zh.md", "现金存款"),
    Passage("faq/zh.md#2", "信用卡年费为每年一百元，首年免费。", "faq/zh.md", "年费"),
]
PARAPHRASE = "I wish to shut down everything and leave"  # terminate_account, not one word in common


@pytest.fixture(scope="module")
def encoder():
    from fieldtune.models.embedder import load_sentence_encoder

    return load_sentence_encoder("minilm")


@pytest.fixture(scope="module")
def kb():
    return kb_texts(load_templates(SAMPLES / "support" / "templates.csv"), PASSAGES)


@pytest.fixture(scope="module")
def retriever(encoder, kb):
    return Retriever(*kb, encoder)


def ids(hits):
    return [h.id for h in hits]


def test_bm25_finds_a_keyword(retriever):
    assert ids(retriever.search("FLDTGB2L", 3, "bm25")) == ["faq/wire.md#1"]  # only items sharing a word
    hit = retriever.search("the ATM swallowed it", 5, "bm25")[0]
    assert (hit.id, hit.kind, hit.dense) == ("card_swallowed", "template", None) and hit.bm25 == hit.score > 0


def test_dense_finds_a_paraphrase_with_no_shared_words(retriever, kb):
    text = dict(zip(kb[0], kb[2]))["terminate_account"]
    assert not set(tokenize(PARAPHRASE)) & set(tokenize(text))
    assert "terminate_account" not in ids(retriever.search(PARAPHRASE, 50, "bm25"))
    best = retriever.search(PARAPHRASE, 5, "dense")[0]
    assert best.id == "terminate_account" and 0 < best.score == best.dense < 1


def test_hybrid_is_rrf_and_keeps_items_only_one_side_found(encoder, kb, retriever):
    narrow = Retriever(*kb, encoder, retriever.embeddings, candidates=3)  # three from each side
    bm25, dense = ids(narrow.search(PARAPHRASE, 3, "bm25")), ids(narrow.search(PARAPHRASE, 3, "dense"))
    fused = {}
    for ranked in (bm25, dense):
        for rank, item in enumerate(ranked, start=1):
            fused[item] = fused.get(item, 0.0) + 1 / (RRF_K + rank)
    hits = narrow.search(PARAPHRASE, 6, "hybrid")
    assert {h.id: h.score for h in hits} == pytest.approx(fused)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    only_bm25 = [h.id for h in hits if h.id in bm25 and h.id not in dense]
    only_dense = [h.id for h in hits if h.id in dense and h.id not in bm25]
    assert only_bm25 and "terminate_account" in only_dense  # found by one side, still in the fused list
    assert "terminate_account" in ids(retriever.search(PARAPHRASE, 5, "hybrid"))  # default depth 50
    weighted = Retriever(*kb, encoder, retriever.embeddings, candidates=3, dense_weight=2.0)
    assert {h.id: h.score for h in weighted.search(PARAPHRASE, 6, "hybrid")} == pytest.approx(
        {i: fused[i] + (1 / (RRF_K + dense.index(i) + 1) if i in dense else 0) for i in fused}
    )


def test_chinese_is_segmented(retriever):
    assert tokenize("中国工商银行") == ["中国工商银行", "中国", "国工", "工商", "商银", "银行"]
    hits = retriever.search("工商银行", 3, "bm25")
    assert ids(hits)[0] == "faq/zh.md#1" and hits[0].kind == "passage"  # jieba keeps 中国工商银行 as one word
    assert ids(retriever.search("信用卡年费多少", 1, "hybrid")) == ["faq/zh.md#2"]


def test_search_many_matches_search_and_embeddings_are_reusable(encoder, kb, retriever):
    assert retriever.search_many([], 3) == []
    queries = ["my card has not arrived", PARAPHRASE, "", "工商银行"]
    batch = retriever.search_many(queries, 4, "hybrid")
    assert [ids(b) for b in batch] == [ids(retriever.search(q, 4, "hybrid")) for q in queries]
    emb = retriever.embeddings
    assert emb.dtype == np.float32 and emb.shape == (len(kb[0]), 384)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)

    class Counting:
        def __init__(self):
            self.texts = 0

        def encode(self, texts, **kwargs):
            self.texts += len(texts)
            return encoder.encode(texts, **kwargs)

    counting = Counting()
    stored = Retriever(*kb, counting, embeddings=emb)
    assert counting.texts == 0  # stored embeddings: nothing re-encoded
    assert ids(stored.search("card arrival", 3, "dense")) == ids(retriever.search("card arrival", 3, "dense"))
    assert counting.texts == 1


def test_expansions_feed_bm25_only(kb, retriever):
    plain = Retriever(*kb, None)
    expanded = Retriever(*kb, None, expansions={"card_swallowed": ["the hole in the wall ate my plastic"]})
    assert "card_swallowed" not in ids(plain.search("hole in the wall ate it", 3, "bm25"))
    assert ids(expanded.search("hole in the wall ate it", 3, "bm25"))[0] == "card_swallowed"


def test_bad_arguments(kb):
    bm25_only = Retriever(*kb, None)
    assert bm25_only.embeddings is None
    with pytest.raises(ValueError, match="needs an encoder"):
        bm25_only.search("card", 3, "dense")
    with pytest.raises(ValueError, match="unknown mode"):
        bm25_only.search("card", 3, "fuzzy")
    with pytest.raises(ValueError, match="shape"):
        Retriever(*kb, None, embeddings=np.zeros((2, 384)))
    with pytest.raises(ValueError, match="not unique"):
        Retriever(["a", "a"], ["template"] * 2, ["x", "y"], None)
    with pytest.raises(UserError, match="empty"):
        Retriever([], [], [], None)


def test_fine_tuning_brings_questions_closer_to_their_template(tmp_path, encoder):
    from fieldtune.apps.support.biencoder import fine_tune
    from fieldtune.models.embedder import load_sentence_encoder

    templates = {t.intent: t for t in load_templates(SAMPLES / "support" / "templates.csv")}
    ids_, kinds, texts = kb_texts(list(templates.values()), [])
    text_of = dict(zip(ids_, texts))
    with (SAMPLES / "banking77" / "train.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    intents = sorted({r["category"] for r in rows})[:8]
    pairs = [
        (r["text"], text_of[templates[i].id]) for i in intents for r in [x for x in rows if x["category"] == i][:5]
    ]
    assert len(pairs) == 40

    def gold_ranks(model):
        found = Retriever(ids_, kinds, texts, model).search_many([q for q, _ in pairs], len(ids_), "dense")
        gold = [templates[i].id for i in intents for _ in range(5)]
        return np.array([ids(hits).index(g) + 1 for hits, g in zip(found, gold)])

    before = gold_ranks(encoder)
    with pytest.raises(UserError, match="same answer"):
        fine_tune([("q", "a"), ("r", "a")], tmp_path / "never")
    out = fine_tune(pairs, tmp_path / "tuned", epochs=1, batch_size=8, learning_rate=1e-4)
    after = gold_ranks(load_sentence_encoder(str(out)))
    assert after.mean() < before.mean() and (after == 1).sum() > (before == 1).sum()

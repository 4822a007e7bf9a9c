"""Drift's unseen-vocabulary check on Chinese and mixed Chinese-English text: jieba words, not clauses."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fieldtune.monitoring import text_features
from fieldtune.monitoring.checks import vocabulary_check
from fieldtune.monitoring.reference import Reference
from fieldtune.monitoring.text_features import oov_rate, words
from fieldtune.monitoring.thresholds import Thresholds

# Short reviews and news lines of our own writing.
REFERENCE = [
    "这家酒店的服务很好，房间也很干净。",
    "物流很快，包装完好，客服态度很好。",
    "房间太小了，隔音很差，晚上睡不好。",
    "价格便宜，质量不错，下次还会再买。",
    "招商银行股价大跌，投资者担忧。",
    "银行今天公布了季度利润，股价上涨。",
]
# The same kind of text: the words were all seen, only their sentences are new.
SAME_WORDS = ["客服态度很好，物流很快。", "房间很干净，价格便宜。", "银行股价上涨，投资者不错。"]
# New words (a product, crypto, a refund): a new topic in the traffic.
NEW_WORDS = ["比特币暴涨，矿机缺货。", "手机电池续航太短，申请退款。", "元宇宙概念股涨停。"]


def test_segmenter_is_quiet_and_caches_under_fieldtune_cache(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("FIELDTUNE_CACHE", str(tmp_path))
    text_features._segmenter.cache_clear()  # first here, so the loaded dictionary serves the tests below
    assert words("股价大跌") == ["股价", "大跌"]
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert (tmp_path / "jieba" / "jieba.cache").is_file()


def test_chinese_is_segmented_into_words():
    assert words("招商银行股价大跌") == ["招商银行", "股价", "大跌"]
    assert words("招商银行股价大跌，投资者担忧。") == ["招商银行", "股价", "大跌", "投资者", "担忧"]


def test_mixed_chinese_english_splits_at_the_script_change():
    assert words("iPhone 销量下降") == ["iphone", "销量", "下降"]
    assert words("iPhone销量下降") == ["iphone", "销量", "下降"]
    assert words("Amazon的退货政策不错😀！") == ["amazon", "的", "退货", "政策", "不错"]


def test_english_is_unchanged_and_never_loads_jieba(monkeypatch):
    def no_segmenter():
        raise AssertionError("jieba loaded for text without Chinese")

    monkeypatch.setattr(text_features, "_segmenter", no_segmenter)
    assert words("The café's Wi-Fi is DOWN, again: 42 users_affected") == [
        "the",
        "café",
        "s",
        "wi",
        "fi",
        "is",
        "down",
        "again",
        "42",
        "users_affected",
    ]
    assert words("") == []
    assert words("Привет мир") == ["привет", "мир"]


def test_unseen_vocabulary_rate_on_chinese():
    vocab = {w for text in REFERENCE for w in words(text)}
    same_rate, _ = oov_rate(SAME_WORDS, vocab)
    new_rate, unseen = oov_rate(NEW_WORDS, vocab)
    # \w+ alone would call every new sentence one unseen word: a rate of 1.0 for both windows.
    assert same_rate == 0.0
    assert new_rate > 0.6
    assert {"暴涨", "退款", "涨停"} <= set(unseen)
    assert "股价" not in unseen


@pytest.mark.parametrize(("window", "drift"), [(SAME_WORDS, False), (NEW_WORDS, True)])
def test_vocabulary_check_on_chinese_traffic(window, drift):
    vocab = frozenset(w for text in REFERENCE for w in words(text))
    ref = Reference(
        version="v1",
        task="classification",
        labels=["neg", "pos"],
        source="test",
        texts=len(REFERENCE),
        label_counts={},
        confidences=np.zeros(0),
        embeddings=np.zeros((0, 384), dtype=np.float32),
        vocab=vocab,
        oov_rate=0.0,
        vocab_source="training texts",
    )
    rows = [SimpleNamespace(text=text) for text in window * 10]
    check = vocabulary_check(ref, rows, Thresholds(min_predictions=2))
    assert check.drifted is drift
    assert check.details["window_rate"] == pytest.approx(oov_rate(window, vocab)[0])

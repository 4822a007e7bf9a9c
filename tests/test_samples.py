"""The shipped demo configs read their shipped samples: counts, labels and, for the Chinese NER sample,
words that are exactly fieldtune's own split of the sentence (so raw-text prediction sees the same units)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import fieldtune
from fieldtune.config import load_config
from fieldtune.recipes.common import read_data
from fieldtune.tasks.token_classification import words_with_offsets

CONFIGS = Path(fieldtune.__file__).parent / "configs"


@pytest.mark.parametrize(
    "name,train,dev,test",
    [("banking77", None, None, 144), ("wnut17", 800, 200, 250), ("zh_ner", 48, 12, 11), ("zh_sentiment", 64, 16, 16)],
)
def test_each_demo_config_reads_its_shipped_sample(name, train, dev, test):
    task, splits, labels = read_data(load_config(CONFIGS / f"{name}.yaml"))
    assert len(splits.test) == test and (train is None or (len(splits.train), len(splits.dev)) == (train, dev))
    if name == "zh_ner":
        assert set(labels) == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}
        for sentence in [*splits.train, *splits.dev, *splits.test]:
            text = "".join(sentence.tokens)
            assert [w for w, _, _ in words_with_offsets(text)] == list(sentence.tokens)
        assert any("iPhone" in s.tokens for s in splits.train)  # a Latin run stays one word
    if name == "zh_sentiment":
        assert labels == ["正面", "负面"]
        assert Counter(ex.labels[0] for ex in splits.test) == {"正面": 8, "负面": 8}
        assert not {ex.text for ex in splits.test} & {ex.text for ex in splits.train}


def test_a_confusion_matrix_of_chinese_labels_never_draws_empty_boxes(tmp_path):
    import warnings

    from fieldtune.evaluation.plots import confusion_matrix_png, label_font

    labels = ["正面", "负面"]
    font, drawable = label_font(labels)
    assert label_font(["pos", "neg"]) == (None, True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for each box it draws
        confusion_matrix_png(["正面", "负面"], ["正面", "正面"], labels, tmp_path / "cm.png")
    assert (tmp_path / "cm.png").stat().st_size > 1000
    assert drawable or font is None  # a covering font, or none and numbered ticks

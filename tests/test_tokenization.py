"""Sub-word / label alignment, windows instead of truncation, dynamic padding, length grouping."""

from __future__ import annotations

import pytest
import transformers

from fieldtune.data.examples import TaggedSentence
from fieldtune.tasks import get_task
from fieldtune.training.batching import IGNORE, LengthGroupedBatches, can_pack, collate, collate_packed
from fieldtune.zoo import resolve

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
L2I = {label: i for i, label in enumerate(LABELS)}


@pytest.fixture(scope="module")
def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(resolve("minilm"))


def test_only_first_subword_of_each_word_is_labelled(tokenizer):
    ex = TaggedSentence(("Ouagadougou", "welcomes", "Kristalina", "Georgieva"), ("B-LOC", "O", "B-PER", "I-PER"))
    (feat,) = get_task("ner").encode([ex], tokenizer, L2I, 512)
    word_ids = tokenizer(list(ex.tokens), is_split_into_words=True).word_ids()
    assert len(word_ids) > 6  # the rare names really are split into several pieces
    for pos, word in enumerate(word_ids):
        first = word is not None and (pos == 0 or word_ids[pos - 1] != word)
        expected = L2I[ex.tags[word]] if first else IGNORE
        assert feat["labels"][pos] == expected, (pos, word)
    assert [w for _, w in feat["first"]] == [0, 1, 2, 3]


def test_long_sentence_is_windowed_not_truncated(tokenizer):
    words = tuple(f"Word{i}" for i in range(60))
    tags = tuple("B-PER" if i % 7 == 0 else "O" for i in range(60))
    ex = TaggedSentence(words, tags)
    feats = get_task("ner").encode([ex], tokenizer, L2I, 24)
    assert len(feats) > 3
    assert all(len(f["input_ids"]) <= 24 for f in feats)
    covered = [w for f in feats for _, w in f["first"]]
    assert covered == list(range(60))  # every word exactly once, in order
    for f in feats:
        assert f["input_ids"][0] == tokenizer.cls_token_id and f["input_ids"][-1] == tokenizer.sep_token_id
        assert sum(label != IGNORE for label in f["labels"]) == len(f["first"])


def test_decode_stitches_windows_back(tokenizer):
    import numpy as np

    task = get_task("ner")
    words = tuple(f"w{i}" for i in range(30))
    ex = TaggedSentence(words, ("O",) * 30)
    feats = task.encode([ex], tokenizer, L2I, 12)
    logits = []
    for f in feats:  # make the model "say" B-PER on word 17 only
        row = np.zeros((len(f["input_ids"]), len(LABELS)))
        row[:, 0] = 5
        for pos, word in f["first"]:
            if word == 17:
                row[pos] = [0, 0, 0, 9, 0]
        logits.append(row)
    ((tags, conf),) = task.decode([ex], feats, logits, dict(enumerate(LABELS)), {})
    assert tags == ["O"] * 17 + ["B-PER"] + ["O"] * 12
    assert all(0.5 < c <= 1 for c in conf)


def _valid_iob2(tags):
    return all(
        not t.startswith("I-") or (prev is not None and prev[2:] == t[2:] and prev != "O")
        for prev, t in zip([None, *tags[:-1]], tags)
    )


def test_decode_writes_the_most_probable_valid_iob2_sequence(tokenizer):
    import itertools

    import numpy as np

    from fieldtune.tasks.token_classification import best_tags

    task = get_task("ner")
    # each word's own best tag would be "B-PER I-LOC O I-PER": a broken entity and a guessed one
    probs = np.array(
        [
            [0.05, 0.05, 0.05, 0.8, 0.05],
            [0.1, 0.05, 0.45, 0.05, 0.35],
            [0.9, 0.02, 0.03, 0.02, 0.03],
            [0.3, 0.05, 0.05, 0.1, 0.5],
        ]
    )
    ex = TaggedSentence(("Ana", "Silva", "said", "Lisbon"), ("O",) * 4)
    (feat,) = task.encode([ex], tokenizer, L2I, 512)
    row = np.zeros((len(feat["input_ids"]), len(LABELS)))
    for pos, word in feat["first"]:
        row[pos] = np.log(probs[word])
    ((tags, conf),) = task.decode([ex], [feat], [row], dict(enumerate(LABELS)), {})
    assert tags == ["B-PER", "I-PER", "O", "O"]
    assert conf == pytest.approx([0.8, 0.35, 0.9, 0.3])  # the chosen tag's probability, not the row's max
    rng = np.random.default_rng(0)
    for _ in range(40):  # Viterbi = the best of every valid sequence, found by brute force
        logits = rng.normal(0, 2, (5, len(LABELS)))
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        valid = [s for s in itertools.product(range(len(LABELS)), repeat=5) if _valid_iob2([LABELS[i] for i in s])]
        best = max(valid, key=lambda s: sum(logp[w, i] for w, i in enumerate(s)))
        assert best_tags(logits, LABELS) == list(best)
    assert best_tags(np.log(probs[[0, 3]]), ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]) == [3, 4]  # valid: kept


def test_raw_text_entities_map_to_character_offsets():
    task = get_task("ner")
    text = "Met  Ana Silva in São Paulo, Brazil!"
    ex = task.from_text(text)
    assert ex.tokens == ("Met", "Ana", "Silva", "in", "São", "Paulo", ",", "Brazil", "!")
    tags = ["O", "B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "B-LOC", "O"]
    out = task.to_output(text, ex, (tags, [0.9] * len(tags)), None)
    assert [(e["entity_group"], e["word"]) for e in out] == [
        ("PER", "Ana Silva"),
        ("LOC", "São Paulo"),
        ("LOC", "Brazil"),
    ]
    for e in out:
        assert text[e["start"] : e["end"]] == e["word"]


def test_collate_pads_to_longest_in_batch_only():
    feats = [
        {"input_ids": [1, 2, 3], "labels": [IGNORE, 4, IGNORE]},
        {"input_ids": [1, 2, 3, 4, 5], "labels": [IGNORE, 1, 2, 3, IGNORE]},
    ]
    batch = collate(feats, pad_id=0)
    assert batch["input_ids"].shape == (2, 5)  # not padded to 128 or 512
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["labels"][0].tolist() == [IGNORE, 4, IGNORE, IGNORE, IGNORE]


def test_length_grouping_cuts_padding_and_is_reproducible():
    import random

    rng = random.Random(0)
    lengths = [rng.randint(5, 120) for _ in range(2000)]

    def padded(sampler):
        return sum(max(lengths[i] for i in b) * len(b) for b in sampler)

    grouped = LengthGroupedBatches(lengths, 32, seed=1)
    plain = LengthGroupedBatches(lengths, 32, seed=1, group=False)
    assert padded(grouped) < 0.6 * padded(plain)
    first = list(grouped)
    assert sorted(i for b in first for i in b) == list(range(2000))  # nothing dropped or repeated
    assert list(grouped) == first  # same seed, same epoch -> same batches
    grouped.use_epoch(1)
    assert list(grouped) != first


def _ner_features(tokenizer, n: int = 24) -> tuple[list[dict], int]:
    """Real NER features of the shipped WNUT-17 sample: sentences of many lengths."""
    from conftest import SAMPLES

    from fieldtune.config import DataConfig
    from fieldtune.data.readers import read_examples

    sentences = read_examples(SAMPLES / "wnut17" / "train.txt", "ner", DataConfig(train="x")).examples[:n]
    tags = sorted({t for s in sentences for t in s.tags})
    return get_task("ner").encode(sentences, tokenizer, {t: i for i, t in enumerate(tags)}, 512), len(tags)


def test_packed_batch_gives_the_same_logits_as_the_padded_one(tokenizer):
    import torch

    features, num_labels = _ner_features(tokenizer)
    packed, padded = collate_packed(features, pad_id=0), collate(features, pad_id=0)
    assert packed["input_ids"].shape[0] < len(features) / 2  # several sentences share a row
    assert int(packed["num_real_tokens"]) == int(padded["attention_mask"].sum())
    assert packed["input_ids"].numel() < 0.8 * padded["input_ids"].numel()  # far less padding
    torch.manual_seed(0)
    model = transformers.AutoModelForTokenClassification.from_pretrained(
        resolve("minilm"), num_labels=num_labels, attn_implementation="eager"
    ).eval()
    assert can_pack(model, features)
    with torch.no_grad():
        out_packed = model(**{k: v for k, v in packed.items() if k not in ("labels", "num_real_tokens")}).logits
        out_padded = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
    # find every sentence in its packed row (each starts with [CLS]) and compare its logits
    found = 0
    for row, ids in enumerate(packed["input_ids"].tolist()):
        starts = [p for p, t in enumerate(ids) if t == tokenizer.cls_token_id]
        for start in starts:
            i = next(i for i, f in enumerate(features) if ids[start : start + len(f["input_ids"])] == f["input_ids"])
            n = len(features[i]["input_ids"])
            assert packed["position_ids"][row, start : start + n].tolist() == list(range(n))
            assert packed["labels"][row, start : start + n].tolist() == features[i]["labels"]
            torch.testing.assert_close(out_packed[row, start : start + n], out_padded[i, :n], atol=2e-5, rtol=1e-4)
            found += 1
    assert found == len(features)


def test_sequence_tasks_and_prompt_adapters_are_not_packed(tokenizer):
    features, _ = _ner_features(tokenizer, 4)
    model = transformers.AutoModelForTokenClassification.from_pretrained(resolve("minilm"), num_labels=3)
    assert can_pack(model, features)
    assert not can_pack(model, [{"input_ids": [1, 2], "labels": 1}])  # one label per text
    assert not can_pack(model, [{"input_ids": [1, 2], "labels": [0.0, 1.0]}])  # multi-hot

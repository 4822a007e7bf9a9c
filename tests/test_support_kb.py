"""The support knowledge base: templates validated with file:line errors, documents split into passages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fieldtune.apps.support.kb import Passage, Template, kb_texts, load_docs, load_templates, split_text
from fieldtune.errors import UserError

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "fieldtune" / "samples" / "support" / "templates.csv"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def error(path: Path) -> UserError:
    with pytest.raises(UserError) as info:
        load_templates(path)
    return info.value


def test_shipped_sample_has_one_template_per_banking77_intent():
    templates = load_templates(SAMPLE)
    assert len(templates) == 77
    assert len({t.intent for t in templates}) == 77 and len({t.id for t in templates}) == 77
    assert all(t.title and 1 <= len(re.findall(r"[.!?](?:\s|$)", t.answer)) <= 3 for t in templates)  # 1-3 sentences
    card = next(t for t in templates if t.intent == "reverted_card_payment?")
    assert card.id == "reverted_card_payment"  # ids are clean slugs; the intent keeps BANKING77's spelling


def test_csv_with_optional_columns_and_tags(tmp_path):
    path = write(
        tmp_path / "t.csv",
        'id,intent,title,answer,tags\na1,card_arrival,Card late,"Cards arrive in a week, usually.",card|delivery\n'
        "\n"  # a blank line is not a row
        "a2,,,Call us.,\n",
    )
    assert load_templates(path) == [
        Template("a1", "Cards arrive in a week, usually.", "card_arrival", "Card late", ("card", "delivery")),
        Template("a2", "Call us."),
    ]


def test_jsonl_templates(tmp_path):
    rows = [{"id": 7, "answer": "Seven.", "tags": ["x", " y "]}, {"id": "b", "answer": "Bee.", "tags": "p|q"}]
    path = write(tmp_path / "t.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert load_templates(path) == [Template("7", "Seven.", tags=("x", "y")), Template("b", "Bee.", tags=("p", "q"))]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("id,intent\na,b\n", 1, "missing column 'answer'"),
        ("answer\nhello\n", 1, "missing column 'id'"),
        ("id,answer\na,Hello.\nb,  \n", 3, "empty 'answer'"),
        ("id,answer\na,Hello.\n,Hi.\n", 3, "empty 'id'"),
        ('id,answer\na,"two\nlines"\nb,ok\na,again\n', 5, "duplicate template id 'a' (first on line 2)"),
        ("id,answer\na,b,c\n", 2, "3 fields but the header has 2"),
        ("", None, "empty file"),
        ("id,answer\n", None, "no templates"),
    ],
)
def test_bad_csv_names_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path / "kb.csv", text)
    err = error(path)
    assert words in err.message and err.path == path and err.line == line
    assert str(err).startswith(f"{path}:{line}: " if line else f"{path}: ")


def test_not_utf8_gives_the_line(tmp_path):
    path = write(tmp_path / "kb.csv", "id,answer\na,fine\nb,caf\xe9\n".encode("latin-1"))
    err = error(path)
    assert err.line == 3 and "not UTF-8" in err.message and "UTF-8" in err.hint


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('{"id": "a", "answer": "x"}\n{"id": "b", "answer": \n', 2, "broken JSON"),
        ('\n["a", "x"]\n', 2, "not a JSON object"),
        ('{"id": "a", "answer": 3}\n', 1, "'answer' must be a string"),
        ('{"id": "a", "answer": "x", "tags": [1]}\n', 1, "'tags' must be"),
    ],
)
def test_bad_jsonl_names_the_line(tmp_path, text, line, words):
    err = error(write(tmp_path / "kb.jsonl", text))
    assert words in err.message and err.line == line


def test_missing_file_and_wrong_kind(tmp_path):
    assert "no such templates file" in error(tmp_path / "nope.csv").message
    assert "not a .csv or .jsonl" in error(write(tmp_path / "kb.xlsx", "x")).message


def test_split_keeps_headings_and_word_limit():
    long_paragraph = " ".join(f"Sentence number {i} says a few more words here." for i in range(40))  # 40 x 9 words
    text = (
        "Intro line before any heading.\n\n"
        "# Cards\n\nCards arrive in a week.\n\nThey are free.\n\n"
        "## Lost cards ##\n\n" + long_paragraph + "\n\n"
        "# Empty\n\n"
        "# Code\n\n```\n# not a heading\n\nstill code\n```\n"
    )
    passages = split_text(text, max_words=120)
    titles = [t for t, _ in passages]
    assert titles[:2] == [None, "Cards"] and passages[1][1] == "Cards arrive in a week.\n\nThey are free."
    lost = [p for t, p in passages if t == "Lost cards"]
    assert [len(p.split()) for p in lost] == [117, 117, 117, 9]  # 13 whole sentences fit in 120 words
    assert all(p.endswith("here.") for p in lost)  # cut between sentences
    assert " ".join(lost) == long_paragraph
    assert "Empty" not in titles  # a heading with nothing under it makes no passage
    assert titles[-1] == "Code" and "# not a heading" in passages[-1][1] and "still code" in passages[-1][1]


def test_split_a_sentence_longer_than_the_limit():
    passages = split_text("word " * 250, max_words=100)
    assert [len(p.split()) for _, p in passages] == [100, 100, 50]


def test_load_docs_ids_titles_and_sources(tmp_path):
    write(tmp_path / "faq" / "cards.md", "# Delivery\n\nIt takes a week.\n\n# Fees\n\nNone.\n")
    write(tmp_path / "notes.txt", "Plain text.\n\nSecond paragraph.\n")
    write(tmp_path / "image.png", b"\x89PNG")
    passages = load_docs(tmp_path)
    assert passages == [
        Passage("faq/cards.md#1", "It takes a week.", "faq/cards.md", "Delivery"),
        Passage("faq/cards.md#2", "None.", "faq/cards.md", "Fees"),
        Passage("notes.txt#1", "Plain text.\n\nSecond paragraph.", "notes.txt", None),
    ]


def test_load_docs_errors(tmp_path):
    with pytest.raises(UserError, match="no such documents folder"):
        load_docs(tmp_path / "missing")
    write(tmp_path / "bad.md", b"# ok\n\n\xff\xfe broken\n")
    with pytest.raises(UserError) as info:
        load_docs(tmp_path)
    assert info.value.line == 3 and str(info.value.path).endswith("bad.md")


def test_kb_texts_templates_first_with_titles():
    templates = [Template("t1", "Answer one.", title="One"), Template("t2", "Answer two.")]
    passages = [Passage("a.md#1", "Passage.", "a.md", "Heading")]
    assert kb_texts(templates, passages) == (
        ["t1", "t2", "a.md#1"],
        ["template", "template", "passage"],
        ["One\nAnswer one.", "Answer two.", "Heading\nPassage."],
    )
    with pytest.raises(UserError, match="also a passage id"):
        kb_texts([Template("a.md#1", "x")], passages)

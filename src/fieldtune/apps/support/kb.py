"""The support knowledge base: answer templates and documents, loaded, validated and split into passages.

Templates come from a CSV file (a header row with at least ``id`` and ``answer``; optionally ``intent``,
``title`` and ``tags``, the tags separated by ``|``) or a JSONL file (one object per line with the same
keys; ``tags`` a list or a ``|``-separated string). Every problem is a :class:`~fieldtune.errors.UserError`
naming the file and line, so a company's export can be fixed where it is broken; nothing is skipped silently.

Documents are the ``*.md`` and ``*.txt`` files of a folder (searched recursively), split at Markdown
headings and blank lines into passages of at most ``max_words`` words. A passage keeps the heading it
sits under as its ``title``, so a short paragraph ("It takes 3 days.") is still found by what it is about.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import UserError

MAX_WORDS = 120  # a passage's length: short enough to be one topic, long enough to answer
TEMPLATE_SUFFIXES = (".csv", ".jsonl")
DOC_SUFFIXES = (".md", ".txt")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s{0,3}(```|~~~)")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")  # Chinese puts no space after a full stop


@dataclass(frozen=True)
class Template:
    """One answer the assistant can give as it is, optionally tied to an ``intent``."""

    id: str
    answer: str
    intent: str | None = None
    title: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Passage:
    """A piece of a document: ``id`` is ``relative/path.md#3`` (the 3rd passage of that file)."""

    id: str
    text: str
    source: str
    title: str | None = None


def load_templates(path: str | Path) -> list[Template]:
    """Read and validate answer templates from a CSV or JSONL file.

    Args:
        path: A ``.csv`` file with a header row (``id``, ``answer``; optional ``intent``, ``title``,
            ``tags``) or a ``.jsonl`` file with one object per line.

    Returns:
        The templates in file order.

    Raises:
        UserError: The file is missing, not UTF-8, has no ``id``/``answer`` column, or a row has an
            empty id or answer, a duplicate id, broken JSON or a wrong type (with the line number).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such templates file: {path}", hint="give a .csv or .jsonl file of answer templates")
    if path.suffix.lower() not in TEMPLATE_SUFFIXES:
        raise UserError(
            f"cannot read templates from {path.name}: not a .csv or .jsonl file",
            path=path,
            hint="save the templates as CSV (id,intent,title,answer) or JSONL",
        )
    text = _read_text(path)
    rows = _csv_rows(text, path) if path.suffix.lower() == ".csv" else _jsonl_rows(text, path)
    templates: list[Template] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        template = _template(row, path, line)
        if template.id in first_line:
            raise UserError(
                f"duplicate template id {template.id!r} (first on line {first_line[template.id]})",
                path=path,
                line=line,
                hint="give every template its own id",
            )
        first_line[template.id] = line
        templates.append(template)
    if not templates:
        raise UserError("no templates in the file", path=path, hint="add one row per answer template")
    return templates


def _read_text(path: Path) -> str:
    """The file's text (a UTF-8 BOM dropped); invalid UTF-8 is an error naming its line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise UserError(
            "not UTF-8 text", path=path, line=line, hint="save the file as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet)"
        ) from None


def _csv_rows(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line where the row starts, row) for every non-blank CSV row after the header."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise UserError("empty file: no header row", path=path, hint="the first row names the columns") from None
    except csv.Error as err:
        raise UserError(f"broken CSV: {err}", path=path, line=1) from None
    missing = [name for name in ("id", "answer") if name not in header]
    if missing:
        raise UserError(
            f"missing column {' and '.join(repr(m) for m in missing)} (the header has {header})",
            path=path,
            line=1,
            hint="the header row needs at least id and answer; intent, title and tags are optional",
        )
    rows = []
    start = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as err:  # e.g. a quote never closed: the rest of the file is one field
            raise UserError(f"broken CSV: {err}", path=path, line=start) from None
        if any(v.strip() for v in values):
            if len(values) > len(header):
                raise UserError(
                    f"{len(values)} fields but the header has {len(header)}",
                    path=path,
                    line=start,
                    hint="quote fields that contain commas",
                )
            rows.append((start, dict(zip(header, values))))
        start = reader.line_num + 1
    return rows


def _jsonl_rows(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line, object) for every non-blank JSONL line."""
    rows = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as err:
            raise UserError(f"broken JSON: {err.msg} (column {err.colno})", path=path, line=line) from None
        if not isinstance(obj, dict):
            raise UserError("not a JSON object", path=path, line=line, hint='one {"id": ..., "answer": ...} per line')
        rows.append((line, obj))
    return rows


def _template(row: dict[str, Any], path: Path, line: int) -> Template:
    """One validated :class:`Template` from a decoded row."""
    fields: dict[str, str | None] = {}
    for name in ("id", "answer", "intent", "title"):
        value = row.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and name == "id":
            value = str(value)  # numeric ids are common in exports
        if value is not None and not isinstance(value, str):
            raise UserError(f"{name!r} must be a string, got {type(value).__name__}", path=path, line=line)
        fields[name] = value.strip() if value and value.strip() else None
    for name in ("id", "answer"):
        if fields[name] is None:
            raise UserError(f"empty {name!r}", path=path, line=line, hint=f"every template needs an {name}")
    return Template(
        id=str(fields["id"]),
        answer=str(fields["answer"]),
        intent=fields["intent"],
        title=fields["title"],
        tags=_tags(row.get("tags"), path, line),
    )


def _tags(value: Any, path: Path, line: int) -> tuple[str, ...]:
    """``a|b`` or ``["a", "b"]`` as a tuple of non-empty stripped tags."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split("|")
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise UserError("'tags' must be a list of strings or 'a|b|c'", path=path, line=line)
    return tuple(t.strip() for t in value if t.strip())


def load_docs(folder: str | Path, max_words: int = MAX_WORDS) -> list[Passage]:
    """Split the ``*.md`` / ``*.txt`` files under ``folder`` into passages.

    Args:
        folder: The documents folder (searched recursively; files in path order).
        max_words: The most words in one passage; paragraphs are packed up to it, and a longer
            paragraph is split at sentence ends (or, failing that, between words).

    Returns:
        Passages in file order, ids ``relative/path.md#n`` (n from 1 in each file), ``title`` the
        nearest Markdown heading above the passage (None before the first heading or in plain text).

    Raises:
        UserError: The folder doesn't exist or a file is not UTF-8 text.
    """
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"no such documents folder: {root}", hint="give a folder of .md or .txt files")
    passages: list[Passage] = []
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in DOC_SUFFIXES)
    for path in files:
        source = path.relative_to(root).as_posix()
        chunks = split_text(_read_text(path), max_words)
        passages.extend(Passage(f"{source}#{i}", text, source, title) for i, (title, text) in enumerate(chunks, 1))
    return passages


def split_text(text: str, max_words: int = MAX_WORDS) -> list[tuple[str | None, str]]:
    """(heading, passage text) pairs: sections at Markdown headings, packed paragraphs of <= ``max_words``.

    Args:
        text: Markdown or plain text.
        max_words: The most words in one passage.

    Returns:
        The passages in order; a heading with no text under it makes no passage.
    """
    passages: list[tuple[str | None, str]] = []
    for title, paragraphs in _sections(text):
        pieces = [piece for p in paragraphs for piece in _fit(p, max_words)]
        current: list[str] = []
        for piece in pieces:
            if current and _count(" ".join(current)) + _count(piece) > max_words:
                passages.append((title, "\n\n".join(current)))
                current = []
            current.append(piece)
        if current:
            passages.append((title, "\n\n".join(current)))
    return passages


def _sections(text: str) -> list[tuple[str | None, list[str]]]:
    """(heading, its paragraphs) in order; lines in code fences are never headings."""
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    paragraph: list[str] = []
    in_fence = False

    def flush() -> None:
        if paragraph:
            sections[-1][1].append("\n".join(paragraph).strip())
            paragraph.clear()

    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else HEADING.match(line)
        if heading:
            flush()
            sections.append((heading.group(2).strip() or None, []))
        elif not line.strip() and not in_fence:
            flush()
        else:
            paragraph.append(line)
    flush()
    return [(title, paragraphs) for title, paragraphs in sections if paragraphs]


def _count(text: str) -> int:
    """Words as a reader counts them: whitespace-separated runs (a CJK character counts as one word)."""
    return len(text.split()) + len(re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]", text))


def _fit(paragraph: str, max_words: int) -> list[str]:
    """A paragraph as pieces of at most ``max_words`` words: whole sentences where possible."""
    if _count(paragraph) <= max_words:
        return [paragraph]
    pieces: list[str] = []
    current: list[str] = []
    for sentence in SENTENCE_END.split(paragraph):
        if current and _count(" ".join(current + [sentence])) > max_words:
            pieces.append(" ".join(current))
            current = []
        if _count(sentence) > max_words:  # one endless sentence: cut between words
            words = sentence.split()
            step = max(1, max_words)
            pieces.extend(" ".join(words[i : i + step]) for i in range(0, len(words), step))
            continue
        current.append(sentence)
    if current:
        pieces.append(" ".join(current))
    return pieces


def kb_texts(templates: list[Template], passages: list[Passage]) -> tuple[list[str], list[str], list[str]]:
    """What to index: (ids, kinds ``template``/``passage``, texts ``title`` + newline + answer or text).

    Args:
        templates: From :func:`load_templates`.
        passages: From :func:`load_docs`.

    Returns:
        Three parallel lists, templates first.

    Raises:
        UserError: A template id equals a passage id (a search hit must name one item).
    """
    ids: list[str] = []
    kinds: list[str] = []
    texts: list[str] = []
    for kind, items in (("template", templates), ("passage", passages)):
        for item in items:
            body = item.answer if isinstance(item, Template) else item.text
            ids.append(item.id)
            kinds.append(kind)
            texts.append(f"{item.title}\n{body}" if item.title else body)
    if len(set(ids)) != len(ids):
        clash = next(i for i in ids if ids.count(i) > 1)
        raise UserError(f"template id {clash!r} is also a passage id", hint="rename the template")
    return ids, kinds, texts

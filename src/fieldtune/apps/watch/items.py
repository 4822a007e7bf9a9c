"""News items: the ``Item`` record, its validation, and readers for JSONL, JSON, CSV, a folder, stdin.

An item is ``{"id", "time", "source", "title", "text"?, "url"?}``. Every input row becomes either an
:class:`Item` or a :class:`Rejected` naming where it was (``news.jsonl:17``) and why, in words a user
can act on; nothing is dropped silently (blank lines are not rows). Readers stream, so a file of any
size is read a line at a time, and one bad line (invalid UTF-8, broken JSON, an array instead of an
object) is rejected without stopping the rest. An id seen twice is not a rejection: the store keeps
the first and counts the later ones as already seen.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from ...errors import UserError
from ...utils.times import utc

MAX_ID = 200  # the store's id and source columns are this wide
MAX_LINE = 16 * 1024 * 1024  # a longer JSONL line is rejected unread, so one runaway line cannot exhaust memory
REQUIRED = ("id", "time", "source", "title")
SUFFIXES = (".jsonl", ".json", ".csv")
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true/false"}


@dataclass(frozen=True)
class Item:
    """One headline or article, validated; ``time`` is aware UTC."""

    id: str
    time: datetime
    source: str
    title: str
    text: str = ""
    url: str | None = None


@dataclass(frozen=True)
class Rejected:
    """An input row that is not an item: ``where`` it was (``news.jsonl:17``) and the ``reason``."""

    where: str
    reason: str


def parse_item(obj: Any, where: str) -> Item | Rejected:
    """Validate one decoded row (a JSON object or a CSV row) into an :class:`Item`.

    Args:
        obj: the row: a dict with ``id``, ``time`` (ISO 8601), ``source``, ``title`` and optionally
            ``text`` and ``url``; other keys are ignored. ``id`` may be a JSON integer.
        where: where the row came from, for the rejection (``news.jsonl:17``, ``request item 3``).

    Returns:
        The item (id, source and title stripped of surrounding spaces; a naive time taken as UTC,
        an aware one converted to UTC), or a :class:`Rejected` with the first problem found.
    """
    if not isinstance(obj, dict):
        return Rejected(where, f"not a JSON object (got {_json_type(obj)})")
    fields: dict[str, Any] = {}
    for name in (*REQUIRED, "text", "url"):
        value, problem = _field(obj, name)
        if problem:
            return Rejected(where, problem)
        fields[name] = value
    for name in ("id", "source"):
        if len(fields[name]) > MAX_ID:
            return Rejected(where, f"'{name}' is longer than {MAX_ID} characters ({len(fields[name])})")
    time = parse_time(fields["time"])
    if time is None:
        return Rejected(where, f"time {_clip(fields['time'])} is not ISO 8601 (e.g. 2024-05-01T09:30:00Z)")
    return Item(fields["id"], time, fields["source"], fields["title"], fields["text"] or "", fields["url"] or None)


def _field(obj: dict[str, Any], name: str) -> tuple[Any, str | None]:
    """One field's value, or the reason it is unusable."""
    value = obj.get(name)
    required = name in REQUIRED
    if value is None or (isinstance(value, str) and not value.strip()):
        if not required:
            return None, None
        return None, f"missing '{name}'" if value is None else f"empty '{name}'"  # absent or null: missing
    if name == "id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # numeric ids are common in exports; "17" and 17 are the same item
    if not isinstance(value, str):
        return None, f"'{name}' must be a string, got {_json_type(value)}"
    if "\x00" in value:
        return None, f"'{name}' contains a NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON, or undecodable CSV bytes)
        return None, f"'{name}' is not valid UTF-8 text"
    return (value.strip() if required else value), None


def parse_time(value: str) -> datetime | None:
    """An ISO 8601 date or date-time as aware UTC (naive = UTC; a trailing ``Z`` is accepted), or None."""
    try:
        parsed = datetime.fromisoformat(value.strip())
        return utc(parsed)
    except (ValueError, OverflowError):  # OverflowError: e.g. year 9999 with a negative offset
        return None


def read_items(source: str | Path) -> Iterator[Item | Rejected]:
    """Stream items (and rejections) from a file, a folder, or ``-`` (JSONL on stdin).

    Args:
        source: a ``.jsonl`` file (one object per line; ``.json`` too, which may instead hold one
            array of objects), a ``.csv`` file with a header row, a folder (its ``*.jsonl``,
            ``*.json`` and ``*.csv`` files in name order; other files are not read), or ``-``.

    Yields:
        One :class:`Item` or :class:`Rejected` per row, in input order.

    Raises:
        UserError: the path does not exist or is not a kind of file we read.
    """
    if str(source) == "-":
        yield from _read_jsonl(sys.stdin.buffer, "stdin")
        return
    path = Path(source)
    if path.is_dir():
        for child in sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES):
            yield from _read_file(child, str(child))
        return
    if not path.exists():
        raise UserError(f"no such file or folder: {path}", hint="give a .jsonl/.csv file, a folder of them, or -")
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(f"cannot read {path}: not a .jsonl, .json or .csv file", hint="convert it to JSONL or CSV")
    yield from _read_file(path, str(path))


def _read_file(path: Path, name: str) -> Iterator[Item | Rejected]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from _read_csv(path, name)
        return
    with open(path, "rb") as f:
        if suffix == ".json" and _starts_with_array(f):
            yield from _read_json_array(f, name)
        else:
            yield from _read_jsonl(f, name)


def _read_jsonl(f: BinaryIO, name: str) -> Iterator[Item | Rejected]:
    """One JSON object per line; each line decoded on its own so one bad line spoils only itself."""
    for number, raw in _lines(f):
        where = f"{name}:{number}"
        if raw is None:
            yield Rejected(where, f"line is longer than {MAX_LINE:,} bytes")
            continue
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark from Windows tools
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield Rejected(where, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})")
            continue
        if not line.strip():
            continue  # blank lines separate nothing and are not rows
        yield _parse_json_text(line.rstrip("\r\n"), where)  # without the newline an error's column is on this line


def _parse_json_text(line: str, where: str) -> Item | Rejected:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        return Rejected(where, f"not valid JSON: {e.msg} at column {e.colno}")
    except RecursionError:
        return Rejected(where, "not valid JSON: nested too deeply")
    return parse_item(obj, where)


def _lines(f: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, bytes)``; None for a line over MAX_LINE, whose rest is skipped unread."""
    number = 0
    while True:
        raw = f.readline(MAX_LINE + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE:
            while raw and not raw.endswith(b"\n"):  # skip to the end of this line, a chunk at a time
                raw = f.readline(MAX_LINE)
            yield number, None
        else:
            yield number, raw


def _starts_with_array(f: BinaryIO) -> bool:
    head = f.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    f.seek(0)
    return head.startswith(b"[")


def _read_json_array(f: BinaryIO, name: str) -> Iterator[Item | Rejected]:
    """A ``.json`` file holding one array of objects (read whole: use JSONL for large inputs)."""
    try:
        data = json.loads(f.read().decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        yield Rejected(name, f"not valid UTF-8 (byte offset {e.start})")
        return
    except json.JSONDecodeError as e:
        yield Rejected(f"{name}:{e.lineno}", f"not valid JSON: {e.msg} at column {e.colno}")
        return
    except RecursionError:
        yield Rejected(name, "not valid JSON: nested too deeply")
        return
    if not isinstance(data, list):
        yield Rejected(name, f"expected an array of objects, got {_json_type(data)}")
        return
    for index, obj in enumerate(data, 1):
        yield parse_item(obj, f"{name} item {index}")


def _read_csv(path: Path, name: str) -> Iterator[Item | Rejected]:
    """A header row, then one item per row (a quoted field may span lines: ``where`` is its first line)."""
    # surrogateescape: undecodable bytes survive as lone surrogates and reject only their row
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f)
        header = _csv_row(reader)
        if not isinstance(header, list):
            if isinstance(header, str):
                yield Rejected(f"{name}:1", f"bad CSV header: {header}")
            return
        header = [h.strip() for h in header]
        while True:
            start = reader.line_num + 1
            row = _csv_row(reader)
            if row is None:
                return
            where = f"{name}:{start}"
            if isinstance(row, str):
                yield Rejected(where, f"bad CSV row: {row}")
            elif not any(cell.strip() for cell in row):
                continue  # an empty line
            elif len(row) != len(header):
                yield Rejected(where, f"row has {len(row)} fields but the header has {len(header)}")
            else:
                yield parse_item(dict(zip(header, row)), where)


def _csv_row(reader: Any) -> list[str] | str | None:
    """The next row, the csv module's complaint about it (a str), or None at the end."""
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as e:  # e.g. a field over the csv module's size limit
        return str(e)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _clip(value: str, width: int = 40) -> str:
    return repr(value if len(value) <= width else value[:width] + "…")

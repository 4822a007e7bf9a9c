"""Readers for CSV/TSV, JSONL and CoNLL column files.

Each reader returns a :class:`Dataset`; every problem raises a :class:`UserError` naming the
file, the line and the fix. Nothing is dropped silently: a row that can't be used is an error.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path
from typing import Any

from ..errors import UserError
from .examples import ChatExample, Dataset, TaggedSentence, TextExample
from .tags import check_tag, is_bioes, normalize_tags

TEXT_COLUMNS = ("text", "sentence", "content", "query", "utterance")
LABEL_COLUMNS = ("label", "labels", "category", "intent", "class", "tags")
_MISSING = object()  # csv.DictReader restval: a row shorter than the header


def read_examples(path: str | Path, task: str, data_cfg: Any) -> Dataset:
    """Read a data file for ``task`` ('classification' | 'multilabel' | 'ner' | 'causal_lm')."""
    path = Path(path)
    fmt = _detect_format(path, data_cfg.format, task)
    text = read_text(path, data_cfg.encoding)
    if task == "causal_lm":
        if fmt != "jsonl":
            raise UserError(
                f"task causal_lm reads JSONL, not {fmt}",
                path=path,
                hint='one object per line: {"prompt": ..., "response": ...} or {"messages": [...]}',
            )
        dataset = _read_chat_jsonl(path, text)
    elif task == "ner":
        dataset = _read_tagged_jsonl(path, text) if fmt == "jsonl" else _read_conll(path, text)
    elif fmt == "jsonl":
        dataset = _read_text_jsonl(path, text, data_cfg, multilabel=task == "multilabel")
    else:
        delimiter = "\t" if fmt == "tsv" else ","
        dataset = _read_table(path, text, delimiter, data_cfg, multilabel=task == "multilabel")
    if not dataset.examples:
        raise UserError("no examples in file", path=path, hint="check the format and the file content")
    return dataset


def read_text(path: Path, encoding: str) -> str:
    """Whole file as text; missing, empty or wrongly encoded files are clear errors.

    A byte-order mark wins over ``encoding``: a file Excel saved as UTF-8 (with BOM) or as
    "Unicode text" (UTF-16) reads right whatever ``data.encoding`` says for the other files.
    """
    if not path.is_file():
        raise UserError(
            "file not found", path=path, hint="check the path (relative paths are from the config file's folder)"
        )
    raw = path.read_bytes()
    if not raw.strip():
        raise UserError("file is empty", path=path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UserError(
            f"unknown encoding {encoding!r}", hint="use a Python codec name such as utf-8, gb18030 or latin-1"
        ) from None
    for bom, codec in BOMS:
        if raw.startswith(bom):
            encoding = codec
            break
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # a byte-order mark (Excel's CSVs) is not part of the first column name
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise UserError(
            f"byte {raw[err.start]:#04x} is not valid {encoding.removesuffix('-sig')}",
            path=path,
            line=line,
            hint=f"set data.encoding: {_likely_encoding(raw)} (or the file's real encoding), or re-save it as UTF-8",
        ) from None


# Longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _likely_encoding(raw: bytes) -> str:
    """gb18030 when the file reads as common Chinese in it (GBK/GB2312 files are GB18030 too),
    else latin-1: a guess for the hint, never applied silently.

    Latin-1 text often decodes as GB18030 too ("ü" + a letter is a valid pair), but into rare
    characters outside GB2312's 6,763 common Han characters and punctuation.
    """
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        return "latin-1"
    non_ascii = [c for c in text if ord(c) > 127]
    common = sum(1 for c in non_ascii if _in_gb2312(c))
    return "gb18030" if non_ascii and common >= 0.9 * len(non_ascii) else "latin-1"


def _in_gb2312(char: str) -> bool:
    try:
        char.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def _detect_format(path: Path, fmt: str, task: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return suffix[1:]
    if task == "ner":
        return "conll"
    raise UserError(
        f"can't tell the format of a {suffix or 'suffix-less'} file",
        path=path,
        hint="set data.format to csv, tsv or jsonl",
    )


def _read_conll(path: Path, text: str) -> Dataset:
    sentences, tokens, tags, start, iob1, bioes = [], [], [], 0, False, False

    def flush() -> None:
        nonlocal tokens, tags, iob1, bioes
        if tokens:
            fixed, changed = normalize_tags(tags)
            iob1 |= changed
            bioes |= is_bioes(tags)
            sentences.append(TaggedSentence(tuple(tokens), tuple(fixed), start))
        tokens, tags = [], []

    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            flush()
            continue
        if fields[0] == "-DOCSTART-":
            flush()
            continue
        if len(fields) < 2:
            raise UserError(
                f"token {fields[0]!r} has no tag",
                path=path,
                line=number,
                hint="each line is `token ... TAG` (tag in the last column); a blank line ends a sentence",
            )
        check_tag(fields[-1], path, number)
        if not tokens:
            start = number
        tokens.append(fields[0])
        tags.append(fields[-1])
    flush()
    notes = [_conversion_note(bioes)] if iob1 else []
    return Dataset(path, sentences, notes)


def _read_tagged_jsonl(path: Path, text: str) -> Dataset:
    sentences, iob1, bioes = [], False, False
    for number, obj in _jsonl_objects(path, text):
        tokens, tags = obj.get("tokens"), obj.get("tags", obj.get("ner_tags"))
        if not isinstance(tokens, list) or not isinstance(tags, list):
            raise UserError('expected {"tokens": [...], "tags": [...]}', path=path, line=number)
        if len(tokens) != len(tags):
            raise UserError(f"{len(tokens)} tokens but {len(tags)} tags", path=path, line=number)
        if not tokens:
            raise UserError("empty token list", path=path, line=number, hint="remove the line")
        for tag in tags:
            check_tag(str(tag), path, number)
        fixed, changed = normalize_tags([str(t) for t in tags])
        iob1 |= changed
        bioes |= is_bioes([str(t) for t in tags])
        sentences.append(TaggedSentence(tuple(str(t) for t in tokens), tuple(fixed), number))
    return Dataset(path, sentences, [_conversion_note(bioes)] if iob1 else [])


def _conversion_note(bioes: bool) -> str:
    """What the tag conversion did (BIOES/BMES files say so; otherwise they were IOB1)."""
    return f"{'BIOES/BMES' if bioes else 'IOB1'} tags converted to IOB2"


CHAT_ROLES = ("system", "user", "assistant")


def _read_chat_jsonl(path: Path, text: str) -> Dataset:
    """Conversations: ``{"prompt", "response"}`` (optional ``"system"``) or ``{"messages": [...]}``
    whose last message is the assistant's answer."""
    examples = []
    for number, obj in _jsonl_objects(path, text):
        if "messages" in obj:
            messages = _chat_messages(obj["messages"], path, number)
        elif "prompt" in obj and "response" in obj:
            messages = [("user", _content(obj["prompt"], "prompt", path, number))]
            if obj.get("system") is not None:
                messages.insert(0, ("system", _content(obj["system"], "system", path, number)))
            messages.append(("assistant", _content(obj["response"], "response", path, number)))
        else:
            raise UserError(
                f"expected keys prompt and response, or messages; got {sorted(obj)}",
                path=path,
                line=number,
                hint='e.g. {"prompt": "Translate: chat", "response": "cat"}',
            )
        examples.append(ChatExample(tuple(messages[:-1]), messages[-1][1], number))
    return Dataset(path, examples)


def _chat_messages(raw: Any, path: Path, line: int) -> list[tuple[str, str]]:
    """(role, content) pairs, checked: known roles, system only first, a user turn, the assistant last."""
    if not isinstance(raw, list) or len(raw) < 2:
        raise UserError("messages must be a list of at least a user and an assistant message", path=path, line=line)
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise UserError(f'messages[{i}] is not {{"role": ..., "content": ...}}', path=path, line=line)
        if m["role"] not in CHAT_ROLES:
            raise UserError(
                f"messages[{i}] has role {m['role']!r}", path=path, line=line, hint=f"roles are {', '.join(CHAT_ROLES)}"
            )
        if m["role"] == "system" and i > 0:
            raise UserError(f"messages[{i}]: a system message may only come first", path=path, line=line)
        messages.append((m["role"], _content(m["content"], f"messages[{i}].content", path, line)))
    if messages[-1][0] != "assistant":
        raise UserError(
            f"the last message is from the {messages[-1][0]}, not the assistant",
            path=path,
            line=line,
            hint="end each conversation with the assistant answer to learn",
        )
    if not any(role == "user" for role, _ in messages[:-1]):
        raise UserError("no user message before the assistant's answer", path=path, line=line)
    return messages


def _content(value: Any, key: str, path: Path, line: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{key} is empty or not a string", path=path, line=line, hint="fill it in or remove the line")
    return value


def _read_text_jsonl(path: Path, text: str, cfg: Any, multilabel: bool) -> Dataset:
    examples = []
    objects = list(_jsonl_objects(path, text))
    keys = list(objects[0][1].keys()) if objects else []
    text_key = _pick_column(keys, cfg.text_column, TEXT_COLUMNS, "text", path)
    label_key = _pick_column(keys, cfg.label_column, LABEL_COLUMNS, "label", path)
    for number, obj in objects:
        if text_key not in obj or label_key not in obj:
            raise UserError(f"missing key {text_key!r} or {label_key!r}", path=path, line=number)
        examples.append(_make_example(obj[text_key], obj[label_key], cfg, multilabel, path, number))
    return Dataset(path, examples)


def _read_table(path: Path, text: str, delimiter: str, cfg: Any, multilabel: bool) -> Dataset:
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL  # TSV: quotes are text
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, restval=_MISSING, quoting=quoting)
    columns = reader.fieldnames or []
    text_key = _pick_column(columns, cfg.text_column, TEXT_COLUMNS, "text", path)
    label_key = _pick_column(columns, cfg.label_column, LABEL_COLUMNS, "label", path)
    if text_key == label_key:
        raise UserError(
            f"text and label are the same column {text_key!r}",
            path=path,
            line=1,
            hint="set data.text_column and data.label_column",
        )
    examples = []
    for row in reader:
        number = reader.line_num
        # Too few fields get _MISSING, extra ones a list under key None: either way the row doesn't
        # line up with the header (often an unquoted delimiter in the text) and would be misread.
        missing, extra = sum(v is _MISSING for v in row.values()), len(row.get(None) or ())
        if missing or extra:
            raise UserError(
                f"row has {len(columns) - missing + extra} fields, the header has {len(columns)}",
                path=path,
                line=number,
                hint="quote fields that contain the delimiter",
            )
        examples.append(_make_example(row[text_key], row[label_key], cfg, multilabel, path, number))
    return Dataset(path, examples)


def _make_example(text: Any, label: Any, cfg: Any, multilabel: bool, path: Path, line: int) -> TextExample:
    if not isinstance(text, str) or not text.strip():
        raise UserError("empty text", path=path, line=line, hint="remove the row or fill in its text")
    if multilabel:
        labels = label if isinstance(label, list) else [p for p in str(label).split(cfg.label_separator)]
        labels = tuple(sorted({str(x).strip() for x in labels if str(x).strip()}))
    else:
        if isinstance(label, list) or label is None or not str(label).strip():
            raise UserError(
                f"expected one label, got {label!r}",
                path=path,
                line=line,
                hint="use task: multilabel for several labels per text",
            )
        labels = (str(label).strip(),)
    return TextExample(text, labels, line)


def _pick_column(columns: list[str], wanted: str | None, defaults: tuple[str, ...], kind: str, path: Path) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise UserError(
                f"no {kind} column {wanted!r}; columns are {columns}",
                path=path,
                line=1,
                hint=f"set data.{kind}_column to one of them",
            )
        return wanted
    for name in defaults:
        if name in columns:
            return name
    if len(columns) < 2:
        raise UserError(
            f"need a text and a label column; found {columns}",
            path=path,
            line=1,
            hint="add a header line such as `text,label`, or set data.format / the delimiter",
        )
    raise UserError(
        f"no {kind} column among {columns}",
        path=path,
        line=1,
        hint=f"name it {defaults[0]!r} or set data.{kind}_column",
    )


def _jsonl_objects(path: Path, text: str):
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(
                f"invalid JSON: {err.msg}", path=path, line=number, hint="one JSON object per line"
            ) from None
        if not isinstance(obj, dict):
            raise UserError("expected a JSON object", path=path, line=number)
        yield number, obj

"""Candidates to label: a pool file or the store's uncorrected predictions, less what is labelled already.

Texts are compared by :func:`text_key` (case-folded, all whitespace removed), so ``"Hello , world"``
(a CoNLL sentence's tokens joined) and ``"hello, world"`` are the same text.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ..config import DataConfig
from ..data.readers import TEXT_COLUMNS, read_text
from ..errors import UserError
from ..monitoring.reference_data import existing_data_file, read_texts
from ..store.models import Feedback, Prediction

POOL_SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".ndjson", ".json")


@dataclass(frozen=True)
class Candidate:
    """An unlabelled text and where it came from (a line of the pool file, or a logged prediction)."""

    text: str
    line: int = 0
    prediction_id: str | None = None


def text_key(text: str) -> str:
    """What two texts must share to count as the same text."""
    return "".join(text.casefold().split())


def read_pool(path: Path, text_column: str | None = None, encoding: str = "utf-8") -> list[Candidate]:
    """The texts of a pool file: ``.txt`` one per line (blank lines skipped), ``.csv`` / ``.tsv`` with a
    text column (labels, if any, are ignored), ``.jsonl`` objects with a text key (or ``tokens``) or
    JSON strings.

    Raises:
        UserError: A missing or empty file, an unknown suffix, or a bad row (file and line named).
    """
    suffix = path.suffix.lower()
    if suffix not in POOL_SUFFIXES:
        raise UserError(
            f"can't read a pool from a {suffix or 'suffix-less'} file",
            path=path,
            hint="use .txt (one text per line), .csv/.tsv with a text column, or .jsonl",
        )
    content = read_text(path, encoding)
    if suffix == ".txt":
        rows = [Candidate(line.strip(), n) for n, line in enumerate(content.splitlines(), 1) if line.strip()]
    elif suffix in (".csv", ".tsv"):
        rows = _table(path, content, "\t" if suffix == ".tsv" else ",", text_column)
    else:
        rows = _jsonl(path, content, text_column)
    if not rows:
        raise UserError("the pool has no texts", path=path, hint="one text per line (.txt), or a text column")
    return rows


def _table(path: Path, content: str, delimiter: str, text_column: str | None) -> list[Candidate]:
    reader = csv.DictReader(io.StringIO(content, newline=""), delimiter=delimiter)
    columns = reader.fieldnames or []
    key = text_column or next((c for c in TEXT_COLUMNS if c in columns), None)
    if key not in columns:
        raise UserError(
            f"no text column among {columns}",
            path=path,
            line=1,
            hint=f"name it {TEXT_COLUMNS[0]!r} or pass --text-column",
        )
    rows = []
    for row in reader:
        text = row.get(key)
        if not isinstance(text, str) or not text.strip():
            raise UserError("empty text", path=path, line=reader.line_num, hint="fill in the text or remove the row")
        rows.append(Candidate(text.strip(), reader.line_num))
    return rows


def _jsonl(path: Path, content: str, text_column: str | None) -> list[Candidate]:
    rows = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(
                f"invalid JSON: {err.msg}", path=path, line=number, hint="one JSON value per line"
            ) from None
        text = _json_text(obj, text_column)
        if not isinstance(text, str) or not text.strip():
            raise UserError(
                "no text on this line",
                path=path,
                line=number,
                hint='write {"text": "..."} (or --text-column), {"tokens": [...]} or a JSON string',
            )
        rows.append(Candidate(text.strip(), number))
    return rows


def _json_text(obj: Any, text_column: str | None) -> Any:
    if isinstance(obj, str):
        return obj
    if not isinstance(obj, dict):
        return None
    if text_column:
        return obj.get(text_column)
    if isinstance(obj.get("tokens"), list):
        return " ".join(str(t) for t in obj["tokens"])
    return next((obj[c] for c in TEXT_COLUMNS if c in obj), None)


def labelled_keys(meta: dict[str, Any], model_dir: Path, extra: list[Path]) -> tuple[set[str], list[str]]:
    """Keys of every text already labelled: the model's own train / dev / test files (when they are
    still where training found them) and each ``extra`` file (``--exclude``, the training formats or
    ``.txt`` with one text per line). Returns (keys, the files read)."""
    config = meta.get("config") or {}
    raw = dict(config.get("data") or {})
    data = DataConfig(**{k: v for k, v in raw.items() if k in DataConfig.model_fields})
    files = [existing_data_file(raw.get(name), model_dir, config) for name in ("train", "dev", "test")]
    keys: set[str] = set()
    read = []
    for path in [p for p in files if p is not None] + list(extra):
        if not Path(path).is_file():
            raise UserError("labelled file not found", path=path, hint="check the --exclude path")
        keys.update(text_key(t) for t in read_texts(Path(path), meta["task"], data))
        read.append(str(path))
    return keys, read


def store_candidates(store: Any, model_version: str | None = None) -> tuple[list[Candidate], int]:
    """Logged predictions nobody has corrected (no feedback names their id or their text), oldest
    first; and how many were skipped because only a hash of their text was logged."""
    with store.session() as s:
        corrected_ids = set(s.scalars(select(Feedback.prediction_id).where(Feedback.prediction_id.is_not(None))))
        corrected_hashes = set(s.scalars(select(Feedback.text_hash)))
        q = select(Prediction.id, Prediction.text, Prediction.text_hash).order_by(Prediction.created_at, Prediction.id)
        if model_version:
            q = q.where(Prediction.model_version == model_version)
        rows = s.execute(q).all()
    hashed = sum(1 for r in rows if r.text is None)
    out = [
        Candidate(r.text, 0, r.id)
        for r in rows
        if r.text and r.text.strip() and r.id not in corrected_ids and r.text_hash not in corrected_hashes
    ]
    return out, hashed

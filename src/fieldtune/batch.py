"""Batch prediction over files: streamed in chunks, one JSON line per input line, written atomically."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .data.readers import read_text
from .errors import UserError
from .predict import PredictorProtocol, load_predictor
from .utils.atomic import atomic_open
from .utils.progress import progress_bar

CHUNK = 256


def predict_texts(
    model: str | Path, texts: list[str], top_k: int | None = None, backend: str = "auto"
) -> Iterator[str]:
    predictor = load_predictor(model, backend=backend)
    for text, pred in zip(texts, predictor.predict(list(texts), top_k=top_k)):
        yield json.dumps({"text": text, "prediction": pred}, ensure_ascii=False)


def predict_file(
    model: str | Path,
    path: Path,
    output: Path | None,
    *,
    top_k: int | None = None,
    text_key: str = "text",
    backend: str = "auto",
) -> int:
    """Predict every line of ``path`` (.txt: one text per line; .jsonl: objects with ``text_key``)."""
    records = list(_read_inputs(Path(path), text_key))  # validate the whole file before any work
    predictor = load_predictor(model, backend=backend)
    lines = _predict_lines(predictor, records, text_key, top_k)
    if output is None:
        for line in lines:
            print(line)
    else:
        with atomic_open(Path(output)) as f:
            for line in lines:
                f.write(line + "\n")
    return len(records)


def _predict_lines(
    predictor: PredictorProtocol, records: list[dict[str, Any]], key: str, top_k: int | None
) -> Iterator[str]:
    with progress_bar(total=len(records), desc="predict", unit="text", disable=len(records) < CHUNK) as bar:
        for i in range(0, len(records), CHUNK):
            chunk = records[i : i + CHUNK]
            for record, pred in zip(chunk, predictor.predict([r[key] for r in chunk], top_k=top_k)):
                yield json.dumps({**record, "prediction": pred}, ensure_ascii=False)
            bar.update(len(chunk))


def _read_inputs(path: Path, key: str) -> Iterator[dict[str, Any]]:
    text = read_text(path, "utf-8")
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson", ".json")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            raise UserError("empty line", path=path, line=number, hint="remove blank lines: every line is one input")
        if not jsonl:
            yield {"text": line}
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"invalid JSON: {e.msg}", path=path, line=number) from None
        obj = {key: obj} if isinstance(obj, str) else obj
        if not isinstance(obj, dict) or not isinstance(obj.get(key), str) or not obj[key].strip():
            raise UserError(
                f"no non-empty string field {key!r}",
                path=path,
                line=number,
                hint='each line is {"text": "..."} (or set --text-key)',
            )
        yield obj

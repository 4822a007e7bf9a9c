"""sha256 fingerprints of texts, files, folders' files and JSON values (hex digests)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def text_sha256(text: str) -> str:
    """sha256 of ``text`` as UTF-8 (lone surrogates kept, so any Python string hashes)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def files_sha256(root: Path, files: list[Path]) -> str:
    """sha256 over ``files``' paths (relative to ``root``) and contents, in the order given."""
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def json_sha256(value: Any) -> str:
    """sha256 of ``value`` as JSON with sorted keys (anything JSON can't encode as its ``str``)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()

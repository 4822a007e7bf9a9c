"""Small facts about files on disk."""

from __future__ import annotations

from pathlib import Path


def folder_bytes(path: str | Path) -> int:
    """Bytes of the files under ``path`` (an artifact's size on disk)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())

"""Atomic writes: readers see the old file or folder or the new one, never half of either.

Files are written to a hidden sibling and renamed over the target (``os.replace``); folders are
built in a hidden sibling folder (:func:`staged_dir`) and swapped in only once complete, so a crash
or Ctrl-C mid-write leaves the previous version in place.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a hidden sibling of ``path`` for writing; on success it is synced and renamed to ``path``.

    Args:
        path: The file to (re)place; its folder is created.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        encoding: Text encoding (ignored for ``"wb"``).

    Yields:
        The open file. An exception inside the block removes the temporary file and leaves
        ``path`` as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a new file: mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # os.open rather than mkstemp: the file gets the usual permissions (0o666 less umask), not 0o600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)


def replace_dir(staging: Path, target: Path) -> None:
    """Swap a complete ``staging`` folder in as ``target``; an older ``target`` goes only after.

    A kill between the two renames leaves the previous version at ``.<target>.old``.
    """
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)  # left by an earlier kill between the renames
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(target: str | Path, keep_existing: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Build a folder in a hidden temporary sibling of ``target``; swap it in when the block succeeds.

    Args:
        target: The folder to (re)place; its parent is created.
        keep_existing: None replaces an older ``target`` (:func:`replace_dir`). Given, the staging
            folder is renamed onto ``target`` only if nothing is there yet; when another process
            put one there first and ``keep_existing(target)`` says it is complete, that copy is
            kept and ours dropped (else the rename's error is raised).

    Yields:
        The staging folder to write into. On an exception it is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield staging
        if keep_existing is None:
            replace_dir(staging, target)
        else:
            try:
                os.replace(staging, target)  # fails when a non-empty target is already there
            except OSError:
                if not keep_existing(target):
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a successful swap


def drop_older_copies(target: Path) -> list[Path]:
    """Remove the other cached conversions of the same source file: folders named ``<stem>-<size>-<mtime>``
    like ``target`` but for the mtime. Reinstalling a model's package gives its file a new mtime, and each
    install otherwise left one more full copy (465 MB for ``multilingual``). Returns what was removed."""
    stem, _, stamp = target.name.rpartition("-")
    removed = []
    for old in target.parent.glob(f"{glob.escape(stem)}-*"):
        mtime = old.name[len(stem) + 1 :]
        if old != target and stamp.isdigit() and mtime.isdigit() and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
    return removed

"""The converted-model cache: a bundled model file (GGUF, packed e5) turned once into a Hugging Face folder
under ``$FIELDTUNE_CACHE/models``, written whole or not at all."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from ..utils.atomic import drop_older_copies, staged_dir


def is_converted(folder: Path) -> bool:
    """Is ``folder`` a finished conversion? (Renamed into place complete, so config.json suffices.)"""
    return (folder / "config.json").is_file()


def cached_conversion(
    src: Path,
    write: Callable[[Path], None],
    *,
    root: Path,
    kind: str,
    target: Path | None = None,
    source: dict | None = None,
) -> Path:
    """The HF folder converted from ``src`` by ``write(folder)``, converted on first use.

    Keyed by the file's name, size and mtime (``root/models/<stem>-<size>-<mtime_ns>``) unless ``target``
    names the folder; a keyed conversion drops the older conversions of the same file (a reinstalled
    package's previous copy). ``fieldtune-source.json`` records ``source`` or the file (under ``kind``).
    The folder is written in a hidden sibling renamed into place, so a kill mid-conversion or two
    processes converting at once never leave a half folder; when another process finished first, its
    copy is used. Any failure is a :class:`UserError` naming the file.
    """
    st = src.stat()
    keyed = target is None
    target = target or root / "models" / f"{src.stem}-{st.st_size}-{st.st_mtime_ns}"
    if is_converted(target):
        return target
    try:
        with staged_dir(target, keep_existing=is_converted) as tmp:
            write(tmp)
            record = source or {kind: str(src), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
            (tmp / "fieldtune-source.json").write_text(json.dumps(record), encoding="utf-8")
    except Exception as err:
        raise UserError(f"could not convert the {kind} model: {err}", path=src) from None
    if keyed:
        drop_older_copies(target)
    return target

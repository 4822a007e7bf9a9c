"""The model registry over artifacts on disk: register, checked promotion, rollback.

A version is promoted only after its folder is checked: it exists, it is a fieldtune model, its
files hash to the checksum taken at registration, and (by default) it loads and predicts. A
corrupted, missing or half-written challenger therefore never becomes the champion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..artifacts import check_model_dir, model_version
from ..errors import UserError
from ..predict import load_predictor
from ..tasks import artifact_task
from ..utils.hashing import files_sha256, json_sha256
from .models import ModelVersion
from .store import Store


def artifact_checksum(model_dir: Path) -> str:
    """sha256 over the artifact's file names and contents (sorted; exports under onnx/ excluded,
    as they may be added after registration)."""
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    kept = [f for f in files if not f.relative_to(model_dir).as_posix().startswith(("onnx/", "."))]
    return files_sha256(model_dir, kept)


def describe_artifact(path: str | Path) -> tuple[Path, dict[str, Any], str]:
    """(model folder, its fieldtune.json, its version) or a UserError (not a model, damaged, or
    of a task this fieldtune doesn't know)."""
    model_dir, meta = check_model_dir(path)
    artifact_task(meta, model_dir)
    return model_dir.resolve(), meta, model_version(meta)


def register_model(
    store: Store, path: str | Path, *, parent: str | None = None, reason: str = "registered by hand"
) -> tuple[ModelVersion, bool]:
    """Add an artifact as a challenger; (row, created). Registering it again changes nothing."""
    model_dir, meta, version = describe_artifact(path)
    fingerprint = json_sha256(meta.get("data"))
    metrics = {split: _headline(meta.get("metrics", {}).get(split)) for split in ("dev", "test")}
    row = {
        "version": version,
        "task": meta["task"],
        "path": str(model_dir),
        "parent": parent,
        "data_fingerprint": fingerprint[:16],
        "checksum": artifact_checksum(model_dir),
        "metrics": {k: v for k, v in metrics.items() if v},
    }
    return store.register(row, reason)


def verify(row: ModelVersion, *, load: bool = True) -> None:
    """Raise a UserError unless ``row``'s artifact is intact (and, with ``load``, predicts)."""
    path = Path(row.path)
    if not path.is_dir():
        raise UserError(f"model {row.version}: its folder is missing", path=path, hint="re-register or retrain it")
    try:
        model_dir, _, version = describe_artifact(path)
    except UserError as e:
        raise UserError(f"model {row.version}: {e.message}", path=path, hint=e.hint) from None
    if version != row.version:
        raise UserError(f"model {row.version}: the folder now holds version {version}", path=path)
    if artifact_checksum(model_dir) != row.checksum:
        raise UserError(
            f"model {row.version}: files changed since registration (checksum mismatch)",
            path=path,
            hint="the artifact is corrupted or was overwritten; retrain or re-register it",
        )
    if load:
        try:
            load_predictor(model_dir, backend="torch").predict(["a quick check"])
        except Exception as e:  # noqa: BLE001 - any failure to load or predict blocks the promotion
            raise UserError(f"model {row.version} does not load: {e}", path=path) from None


def promote(store: Store, version: str, reason: str = "promoted by hand", details: dict | None = None) -> str:
    """Check ``version``'s artifact, then make it the champion. Returns the previous champion."""
    row = store.model(version)
    verify(row)
    return store.promote(version, reason, details)


def rollback(store: Store, reason: str = "rolled back by hand") -> tuple[str, str]:
    """Make the previous champion the champion again; (from, to)."""
    current = store.champion()
    if current is None:
        raise UserError("the registry has no champion", hint="fieldtune registry promote VERSION")
    previous = store.previous_champion()
    if not previous:
        raise UserError(f"{current.version} has no previous champion to roll back to")
    verify(store.model(previous))
    store.promote(previous, reason, {"from": current.version}, action="rollback")
    return current.version, previous


def _headline(metrics: dict | None) -> dict | None:
    if not metrics:
        return None
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

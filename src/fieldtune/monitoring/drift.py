"""Drift: is the recent traffic of a model version still like the data it was trained for?

``check_drift`` compares a window of logged predictions (:mod:`.window`: the last N, or a time
range) with the version's training reference (:mod:`.reference`) on four checks (:mod:`.checks`),
and the same statistics over earlier windows of the version's history for the plot. The
:class:`~.report.DriftReport` it returns is written by :func:`~.report.write_report`
(``report.md``, ``drift.png``, ``drift.json``) and sent by :mod:`.webhook`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..artifacts import check_model_dir, model_version
from ..errors import UserError
from ..tasks import artifact_task
from .checks import Embedder, run_checks
from .reference import default_cache_dir, load_reference
from .report import DriftReport
from .thresholds import Thresholds
from .window import history_points, iso, select_window


def resolve_model(store: Any, version: str | None, model: Path | None) -> tuple[Path, dict[str, Any], str]:
    """(artifact folder, fieldtune.json, version): from ``model`` (a path), the registry's
    ``version`` (or a unique prefix of it), or the registry's champion.

    Raises:
        UserError: Not a model, an unknown version, or no champion.
    """
    if model is not None:
        model_dir, meta = _checked(model)
        found = model_version(meta)
        if version and version != found:
            raise UserError(f"{model} holds version {found}, not {version}", hint="drop --version or fix --model")
        return model_dir, meta, found
    if version:
        row = store.find_model(version)
        if row is None:  # a unique prefix is enough, as in `fieldtune registry show`
            matches = [m for m in store.models() if m.version.startswith(version)]
            row = matches[0] if len(matches) == 1 else None
        if row is None:
            raise UserError(
                f"model version {version!r} is not in the registry",
                hint="register it (fieldtune registry add) or pass its artifact with --model PATH",
            )
    else:
        row = store.champion()
        if row is None:
            raise UserError("the registry has no champion", hint="pass --version V or --model PATH")
    model_dir, meta = _checked(row.path)
    return model_dir, meta, row.version


def _checked(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The artifact folder and its fieldtune.json, of a task this fieldtune knows."""
    model_dir, meta = check_model_dir(path)
    artifact_task(meta, model_dir)
    return model_dir, meta


def check_drift(
    store: Any,
    version: str | None = None,
    *,
    model: Path | None = None,
    window: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    thresholds: Thresholds = Thresholds(),
    reference_file: Path | None = None,
    cache_dir: Path | None = None,
    refresh_reference: bool = False,
    history: int = 20,
    backend: str = "auto",
) -> DriftReport:
    """Compare a window of a version's logged predictions with its training reference.

    Args:
        store: A :class:`~fieldtune.store.Store`.
        version: The model version (default: the registry's champion).
        model: Its artifact folder, for a version served without the registry.
        window: The last N predictions (default 500 without ``since``/``until``).
        since, until: A time range of predictions instead (UTC when naive).
        thresholds: When a check says drift.
        reference_file: Reference texts instead of the model's held-out data.
        cache_dir: Where references are cached (default ``.drift/`` beside a SQLite store).
        refresh_reference: Recompute the cached reference.
        history: Windows of the same size, ending with this one, for the plot (0 or 1: none).
        backend: The Predictor backend that labels the reference texts.

    Raises:
        UserError: Unknown version, missing reference data, or too few predictions.
    """
    model_dir, meta, version = resolve_model(store, version, model)
    rows, info = select_window(
        store, version, window=window, since=since, until=until, minimum=thresholds.min_predictions
    )
    cache = Path(cache_dir) if cache_dir else default_cache_dir(getattr(store, "url", None))
    ref = load_reference(
        model_dir, meta, version, cache, reference_file=reference_file, refresh=refresh_reference, backend=backend
    )
    embedder = Embedder()
    checks = run_checks(ref, rows, thresholds, embedder)
    notes = list(ref.notes)
    if 0 < info["texts"] < info["predictions"]:
        notes.append(f"{info['predictions'] - info['texts']} predictions in the window were logged as hashes only")
    return DriftReport(
        model_version=version,
        task=ref.task,
        window=info,
        checks=checks,
        reference=ref.summary(),
        history=history_points(store, version, rows, ref, thresholds, embedder, history, checks),
        thresholds=thresholds,
        created=iso(datetime.now(timezone.utc)),
        notes=notes,
    )

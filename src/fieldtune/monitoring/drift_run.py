"""One drift run as ``fieldtune drift`` does it: parse the options, open the store, check, write
the report folder. Sending the report to a webhook is :class:`~.webhook.WebhookAlert`'s."""

from __future__ import annotations

from pathlib import Path

from ..store import Store
from .drift import check_drift
from .report import DriftReport, write_report
from .thresholds import Thresholds
from .window import parse_time


def run_drift(
    *,
    db: str | None = None,
    version: str | None = None,
    model: Path | None = None,
    window: int | None = None,
    since: str | None = None,
    until: str | None = None,
    thresholds: list[str] | None = None,
    reference: Path | None = None,
    refresh_reference: bool = False,
    history: int = 20,
    output: Path | None = None,
) -> DriftReport:
    """Check the drift of a model version's logged predictions and write the report.

    Args:
        db: Store URL (default: FIELDTUNE_DB_URL or runs/fieldtune.db).
        version: The model version (default: the registry's champion).
        model: The version's artifact folder, for a model served without the registry.
        window: The last N predictions.
        since, until: A time range: ISO 8601, or a duration back from now (``24h``, ``7d``).
        thresholds: ``NAME=VALUE`` overrides of the default thresholds.
        reference: Reference texts instead of the model's held-out data.
        refresh_reference: Recompute the cached reference.
        history: Windows to plot, this one last.
        output: The report folder (default: ``runs/drift/<UTC time>``).

    Returns:
        The report, its ``output_dir`` set to the folder holding report.md, drift.png and drift.json.

    Raises:
        UserError: A bad option, an unknown version, missing reference data or too few predictions.
    """
    parsed = Thresholds.parse(thresholds)
    store = Store(db)
    try:
        report = check_drift(
            store,
            version,
            model=model,
            window=window,
            since=parse_time(since),
            until=parse_time(until),
            thresholds=parsed,
            reference_file=reference,
            refresh_reference=refresh_reference,
            history=history,
        )
    finally:
        store.close()
    write_report(report, output)
    return report

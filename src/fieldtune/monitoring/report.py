"""The drift report: the :class:`DriftReport` of one run, its JSON (what ``drift.json`` holds and a
webhook receives), the markdown ``report.md`` and the folder they are written to."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..utils.atomic import atomic_write_bytes
from ..utils.jsonsafe import json_safe
from .checks import CHECKS, Check
from .plot import drift_png
from .thresholds import Thresholds
from .window import HISTORY_EMBEDDINGS


@dataclass
class DriftReport:
    """The checks of one window against the reference, and the same statistics over time."""

    model_version: str
    task: str
    window: dict[str, Any]
    checks: dict[str, Check]
    reference: dict[str, Any]
    history: list[dict[str, Any]]
    thresholds: Thresholds
    created: str
    notes: list[str] = field(default_factory=list)
    output_dir: Path | None = None

    @property
    def drifted(self) -> bool:
        return any(c.drifted for c in self.checks.values())

    def as_json(self) -> dict[str, Any]:
        """What ``drift.json`` holds and a webhook receives (no user text in it)."""
        return json_safe(
            {
                "model_version": self.model_version,
                "task": self.task,
                "window": self.window,
                "drifted": self.drifted,
                "checks": {name: check.as_dict() for name, check in self.checks.items()},
                "thresholds": asdict(self.thresholds),
                "reference": self.reference,
                "history": self.history,
                "notes": self.notes,
                "created": self.created,
                "report": str(self.output_dir) if self.output_dir else None,
            }
        )


def default_output_dir(root: Path = Path("runs") / "drift") -> Path:
    """``runs/drift/<UTC time>``, suffixed when two reports start within a second."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path, n = root / stamp, 1
    while path.exists():
        path, n = root / f"{stamp}-{n}", n + 1
    return path


def write_report(report: DriftReport, output_dir: Path | None = None) -> Path:
    """Write ``drift.json``, ``drift.png`` and ``report.md`` into ``output_dir``; returns it."""
    output_dir = Path(output_dir) if output_dir else default_output_dir()
    output_dir.mkdir(parents=True, exist_ok=True)
    report.output_dir = output_dir
    payload = report.as_json()
    atomic_write_bytes(output_dir / "drift.json", json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8"))
    drift_png(report.history, report.thresholds, report.checks, output_dir / "drift.png")
    atomic_write_bytes(output_dir / "report.md", render_markdown(report).encode("utf-8"))
    return output_dir


def fmt(value: Any) -> str:
    """A number as the report shows it (``–`` for none)."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return str(value)


def render_markdown(report: DriftReport) -> str:
    """The human-readable report: verdict, checks, their details, the plot and the history."""
    lines = _summary(report) + ["", "## Details", ""] + _details(report) + _over_time(report)
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    t = report.thresholds
    lines += [
        "",
        f"Thresholds: PSI > {t.psi} with chi-square p < {t.label_p}; confidence drop > {t.confidence_drop}; "
        f"MMD p < {t.mmd_p}; unseen-word increase > {t.oov_increase}; at least {t.min_predictions} predictions.",
        "",
    ]
    return "\n".join(lines)


def _summary(report: DriftReport) -> list[str]:
    """Title, verdict, window and reference, and the table of checks."""
    w, ref = report.window, report.reference
    verdict = "**DRIFT**" if report.drifted else "**no drift**"
    lines = [
        f"# Drift report: model {report.model_version}",
        "",
        f"{verdict} — {report.created}",
        "",
        f"- window: {w['predictions']} predictions ({w['selection']}), {w['from']} to {w['to']}, "
        f"{w['texts']} with text",
        f"- reference: {ref['source']} — {ref['texts']} texts, {ref['embedded']} embedded, vocabulary from "
        f"{ref['vocab_source']} ({ref['vocab_size']} words)",
        "",
        "| check | status | value | threshold | rule |",
        "|---|---|---|---|---|",
    ]
    for name, c in report.checks.items():
        status = f"unavailable: {c.reason}" if c.reason else c.status
        lines.append(f"| {name} | {status} | {fmt(c.value)} | {fmt(c.threshold)} | `{c.rule}` |")
    return lines


def _details(report: DriftReport) -> list[str]:
    """One bullet per computed check with its numbers (and the most frequent unseen words)."""
    lines = []
    c = report.checks["label_shift"]
    if not c.reason:
        lines.append(f"- label shift: PSI {fmt(c.details['psi'])}, chi-square p {fmt(c.details['chi2_p'])}")
        for ch in c.details["top_changes"]:
            lines.append(
                f"  - `{ch['label']}`: {ch['reference']:.1%} of the reference, {ch['window']:.1%} of the window"
            )
    c = report.checks["confidence_drop"]
    if not c.reason:
        lines.append(
            f"- confidence: mean {fmt(c.details['reference_mean'])} (reference) vs {fmt(c.details['window_mean'])} "
            f"(window), KS p {fmt(c.details['ks_p'])}"
        )
    c = report.checks["embedding_shift"]
    if not c.reason:
        lines.append(
            f"- embeddings ({report.reference['embedder']}): MMD² {fmt(c.details['mmd2'])}, "
            f"permutation p {fmt(c.details['p_value'])} "
            f"({c.details['permutations']} permutations, {c.details['reference_n']} vs {c.details['window_n']} texts), "
            f"centroid cosine distance {fmt(c.details['centroid_cosine_distance'])}"
        )
    c = report.checks["unseen_vocabulary"]
    if not c.reason:
        lines.append(
            f"- unseen words: {c.details['window_rate']:.1%} of the window's words vs "
            f"{c.details['reference_rate']:.1%} of the reference's"
        )
        top = c.private.get("top_unseen") or []
        if top:
            lines.append("  - most frequent: " + ", ".join(f"`{word}` ({n})" for word, n in top))
    return lines


def _over_time(report: DriftReport) -> list[str]:
    """The plot and the table of the history's windows."""
    lines = ["", "## Over time", "", "![drift over time](drift.png)", ""]
    if len(report.history) > 1:
        lines += [f"Earlier windows embed a seeded sample of {HISTORY_EMBEDDINGS} texts each for the MMD test.", ""]
    lines += ["| window end | predictions | " + " | ".join(CHECKS) + " |", "|---|---|" + "---|" * len(CHECKS)]
    for h in report.history:
        cells = []
        for name in CHECKS:
            p = h.get(name)
            cells.append("–" if not p else fmt(p["value"]) + (" ⚠" if p["drifted"] else ""))
        lines.append(f"| {h['to']} | {h['predictions']} | " + " | ".join(cells) + " |")
    return lines

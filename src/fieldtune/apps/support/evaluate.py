"""``fieldtune support eval``: how an assistant does on labelled questions it has not seen.

Every question is decided as :meth:`Assistant.ask` decides a first message (no history): answered
with a template or handed off. Reported (``metrics.json`` + ``report.md`` + ``answer_coverage.png``):

- ``intent_accuracy``: the top intent, over in-scope questions;
- ``answered_precision``: of the questions answered, the share answered with a template of the gold
  intent (an answer to an out-of-scope question is wrong);
- ``in_scope_answered``: the share of in-scope questions answered; ``oos_handoff``: the share of
  out-of-scope ones handed off; ``handoff_rate`` over all;
- retrieval of the gold intent's template from the question alone: ``recall@1``, ``recall@5``,
  ``mrr`` for ``bm25``, ``dense`` and ``hybrid``;
- the precision–coverage curve as the confidence minimum moves (the distance limit as built), with
  the built rule marked;
- ``latency_ms``: p50 / p95 of one ``ask`` call on this machine (the first 100 questions by default).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ...utils.atomic import atomic_write_text
from .assistant import Assistant, decide
from .build import read_questions
from .intent import OOS

MODES = ("bm25", "dense", "hybrid")


def evaluate_assistant(
    assistant: Assistant, questions: Path, output: Path | None = None, latency_questions: int = 100
) -> dict[str, Any]:
    """Metrics of ``assistant`` on ``questions`` (``text``, ``intent``); written to ``output`` when given;
    latency timed on the first ``latency_questions``."""
    rows = read_questions(questions)
    texts, gold = [q.text for q in rows], [q.labels[0] for q in rows]
    oos = np.array([g == OOS for g in gold])
    understood = assistant.intent.understand(texts)
    by_intent = {t.intent: t for t in assistant.templates() if t.intent}
    decided = [decide(u, assistant.rule, t, [], assistant.templates_by_intent()) for u, t in zip(understood, texts)]
    answered = np.array([reason is None for reason, _ in decided])
    right = np.array([tpl is not None and tpl.intent == g for (_, tpl), g in zip(decided, gold)])
    top_right = np.array([u["intent"] == g for u, g in zip(understood, gold)])
    metrics: dict[str, Any] = {
        "questions": len(rows),
        "in_scope": int((~oos).sum()),
        "out_of_scope": int(oos.sum()),
        "intent_accuracy": _mean(top_right[~oos]),
        "answered_precision": _mean(right[answered]),
        "in_scope_answered": _mean(answered[~oos]),
        "oos_handoff": _mean(~answered[oos]) if oos.any() else None,
        "handoff_rate": _mean(~answered),
        "reasons": _count([reason for reason, _ in decided if reason]),
        "rule": assistant.rule.as_dict(),
    }
    metrics["retrieval"] = _retrieval(assistant, texts, gold, by_intent)
    metrics["curve"] = _curve(understood, gold, assistant.rule.max_distance)
    metrics["latency_ms"] = _latency(assistant, texts[:latency_questions])
    if output is not None:
        _write(output, metrics)
    return metrics


def _mean(values: np.ndarray) -> float | None:
    return round(float(np.mean(values)), 4) if len(values) else None


def _count(reasons: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in reasons:
        key = "no answer template" if r.startswith("no answer template") else r
        out[key] = out.get(key, 0) + 1
    return out


def _retrieval(assistant: Assistant, texts: list[str], gold: list[str], by_intent: dict) -> dict[str, Any]:
    """Rank of the first template of the gold intent among the top 10, per mode (in-scope questions with a template)."""
    pairs = [(t, g) for t, g in zip(texts, gold) if g in by_intent]
    out: dict[str, Any] = {"questions": len(pairs)}
    for mode in MODES:
        ranks = []
        for hits, (_, g) in zip(assistant.retriever.search_many([t for t, _ in pairs], k=10, mode=mode), pairs):
            intents = [assistant.template_intent(h.id) for h in hits]
            ranks.append(intents.index(g) + 1 if g in intents else None)
        found = [r for r in ranks if r is not None]
        out[mode] = {
            "recall@1": _mean(np.array([r == 1 for r in ranks])),
            "recall@5": _mean(np.array([r is not None and r <= 5 for r in ranks])),
            "mrr": round(sum(1 / r for r in found) / len(ranks), 4) if ranks else None,
        }
    return out


def _curve(understood: list[dict], gold: list[str], max_distance: float) -> list[dict[str, float]]:
    """Answered precision vs in-scope coverage as the confidence minimum moves from 0 to 0.99."""
    conf = np.array([u["confidence"] for u in understood])
    dist = np.array([u["distance"] for u in understood])
    right = np.array([u["intent"] == g for u, g in zip(understood, gold)])
    oos = np.array([g == OOS for g in gold])
    points = []
    for t in np.linspace(0.0, 0.99, 34):
        answered = (dist <= max_distance) & (conf >= t)
        if answered.any():
            points.append(
                {
                    "min_confidence": round(float(t), 3),
                    "precision": round(float(right[answered].mean()), 4),
                    "coverage": round(float(answered[~oos].mean()), 4) if (~oos).any() else 0.0,
                }
            )
    return points


def _latency(assistant: Assistant, texts: list[str]) -> dict[str, float]:
    times = []
    for text in texts:
        start = time.perf_counter()
        assistant.ask(text)
        times.append((time.perf_counter() - start) * 1000)
    return {"p50": round(float(np.percentile(times, 50)), 1), "p95": round(float(np.percentile(times, 95)), 1)}


def _write(output: Path, metrics: dict[str, Any]) -> None:
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output / "metrics.json", json.dumps(metrics, indent=2))
    _plot(metrics, output / "answer_coverage.png")
    atomic_write_text(output / "report.md", report(metrics))


def _plot(metrics: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - plotting only when a report is written

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    curve = metrics["curve"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([p["coverage"] for p in curve], [p["precision"] for p in curve], marker=".", label="confidence minimum")
    ax.scatter(
        [metrics["in_scope_answered"]], [metrics["answered_precision"]], color="red", zorder=3, label="built rule"
    )
    ax.set_xlabel("in-scope questions answered")
    ax.set_ylabel("answered with the right template")
    ax.set_title("answer or hand off: precision vs coverage")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(m: dict[str, Any]) -> str:
    """``report.md`` of an evaluation."""
    r = m["retrieval"]
    lines = [
        "# Assistant evaluation",
        "",
        f"{m['questions']} questions: {m['in_scope']} in scope, {m['out_of_scope']} out of scope.",
        "",
        "| metric | value |",
        "|---|---:|",
        f"| intent accuracy (in scope) | {m['intent_accuracy']} |",
        f"| answered with the right template (of answered) | {m['answered_precision']} |",
        f"| in-scope questions answered | {m['in_scope_answered']} |",
        f"| out-of-scope questions handed off | {m['oos_handoff']} |",
        f"| handoff rate | {m['handoff_rate']} |",
        f"| latency of one ask, p50 / p95 ms | {m['latency_ms']['p50']} / {m['latency_ms']['p95']} |",
        "",
        "Handoff reasons: " + ", ".join(f"{k} {v}" for k, v in m["reasons"].items()),
        "",
        f"Retrieval of the gold intent's template ({r['questions']} questions):",
        "",
        "| mode | recall@1 | recall@5 | MRR |",
        "|---|---:|---:|---:|",
        *(f"| {mode} | {r[mode]['recall@1']} | {r[mode]['recall@5']} | {r[mode]['mrr']} |" for mode in MODES),
        "",
        "![precision vs coverage](answer_coverage.png)",
        "",
    ]
    return "\n".join(lines)

"""``report.md``: the run in one page — data, method, headline metrics vs baseline, per class."""

from __future__ import annotations

from typing import Any


def render_report(summary: dict[str, Any]) -> str:
    """Markdown summary of a run from the dict written to ``metrics.json`` plus run info."""
    cfg, metrics = summary["config"], summary["metrics"]
    lines = [
        f"# fieldtune run: {cfg['task']} with `{cfg['model']}` ({cfg['method']})",
        "",
        f"- data: train {summary['sizes']['train']}, dev {summary['sizes']['dev']}, "
        f"test {summary['sizes'].get('test', 0)} examples",
        f"- labels: {len(summary['labels'])}",
        f"- trainable parameters: {summary['params']['trainable']:,} of {summary['params']['total']:,} "
        f"({100 * summary['params']['trainable'] / summary['params']['total']:.1f}%)",
        f"- best dev {summary['metric']}: {metrics['dev'].get(summary['metric'])} at epoch "
        f"{metrics['train']['best_epoch']} (step {metrics['train']['best_step']})",
        f"- training time: {metrics['train']['wall_s']:.1f} s, {metrics['train']['tokens_per_s']:.0f} real tokens/s",
        *[f"- note: {n}" for n in summary.get("notes", [])],
        "",
        "## Headline metrics",
        "",
        "| split | " + " | ".join(_headline_keys(metrics)) + " |",
        "|---|" + "---|" * len(_headline_keys(metrics)),
    ]
    for split in ("dev", "test", "baseline"):
        if split in metrics:
            row = metrics[split]
            name = f"baseline: {row.get('name', '')}" if split == "baseline" else split
            lines.append(f"| {name} | " + " | ".join(_fmt(row.get(k)) for k in _headline_keys(metrics)) + " |")
    detail = metrics.get("test") or metrics["dev"]
    per = detail.get("per_type") or detail.get("per_class") or {}
    if per:
        lines += [
            "",
            "## Per "
            + ("type" if "per_type" in detail else "class")
            + " ("
            + ("test" if "test" in metrics else "dev")
            + ")",
            "",
            "| label | precision | recall | f1 | support |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {k} | {_fmt(v['precision'])} | {_fmt(v['recall'])} | {_fmt(v['f1'])} | {v['support']} |"
            for k, v in per.items()
        ]
    if summary.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in summary["plots"]]
    return "\n".join(lines) + "\n"


def _headline_keys(metrics: dict[str, Any]) -> list[str]:
    row = metrics["dev"]
    keys = ("f1", "precision", "recall", "accuracy", "macro_f1", "micro_f1", "subset_accuracy")
    return [k for k in (*keys, "perplexity", "rouge_l", "exact_match") if k in row]


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else ("" if x is None else str(x))

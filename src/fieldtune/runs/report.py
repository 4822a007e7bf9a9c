"""``report.md``: the run in one page — data, method, headline metrics vs baseline, per class."""

from __future__ import annotations

from typing import Any

from .record import RunRecord

HEADLINE = ("f1", "precision", "recall", "accuracy", "macro_f1", "micro_f1", "subset_accuracy")
GENERATION = ("perplexity", "rouge_l", "exact_match")


def render_report(record: RunRecord, advice: list[str] = ()) -> str:
    """Markdown summary of a run, from its record (the same numbers as metrics.json), with the advice
    :func:`~fieldtune.runs.advice.advise` gives."""
    cfg, ev, stats = record.cfg, record.evaluation, record.train
    params = record.params
    lines = [
        f"# fieldtune run: {cfg.task} with `{cfg.model}` ({cfg.method})",
        "",
        f"- data: train {len(record.splits.train)}, dev {len(record.splits.dev)}, "
        f"test {len(record.splits.test or [])} examples",
        f"- labels: {len(record.labels)}",
        f"- trainable parameters: {params['trainable']:,} of {params['total']:,} "
        f"({100 * params['trainable'] / max(params['total'], 1):.1f}%)",
        f"- best dev {record.metric}: {ev.dev.get(record.metric)} at epoch {stats.best_epoch} (step {stats.best_step})",
        f"- training time: {stats.wall_s:.1f} s, {stats.tokens_per_s:.0f} real tokens/s",
        *_budget(stats),
        *_trust(ev),
        *[f"- note: {n}" for n in record.splits.notes],
        *([""] + ["## Advice", ""] + [f"- {a}" for a in advice] if advice else []),
        "",
        *_headline(ev.as_dict()),
        *_per_label(ev.test or ev.dev, "test" if ev.test is not None else "dev"),
    ]
    if record.plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in record.plots]
    return "\n".join(lines) + "\n"


def _budget(stats: Any) -> list[str]:
    """What the training ran: its settings (chosen or given), how far it went and why it stopped."""
    b = stats.budget
    if not b:
        return []
    ended = stats.stop_reason or "planned end"
    return [
        f"- training: lr {b['lr']:g}, batch {b['batch_size']}, {stats.steps} of {b['total_steps']} planned steps, "
        f"{stats.epochs} of {b['epochs']} epochs ({'automatic budget' if b['automatic'] else 'as configured'}; "
        f"ended by {ended})",
        *[f"  - {why}" for why in b.get("why", [])],
    ]


def _trust(ev: Any) -> list[str]:
    """One line on calibration (ECE before -> after temperature scaling) and one on abstention."""
    split = "test" if ev.test is not None else "dev"
    row = ev.test if ev.test is not None else ev.dev
    lines = []
    if "ece" in row:
        lines.append(
            f"- calibration ({split}): ECE {row['ece_uncalibrated']:.4f} uncalibrated, {row['ece']:.4f} as saved"
        )
    if ev.abstain:
        a = ev.abstain
        target = (
            f"precision >= {a['target_precision']}"
            if a["target_precision"] is not None
            else f"coverage {a['target_coverage']}"
        )
        lines.append(
            f"- abstention: threshold {a['threshold']:.4f} chosen on dev for {target}"
            f"{'' if a['met'] else ' (not reachable: abstains on everything)'}: dev coverage {a['dev_coverage']:.3f}, "
            f"precision {a['dev_precision']:.3f}; {split} coverage {row.get('abstain_coverage')}, "
            f"precision {row.get('abstain_precision')}"
        )
    if "conformal_coverage" in row:
        lines.append(
            f"- conformal sets: {split} coverage {row['conformal_coverage']:.3f}, mean set size {row['mean_set_size']}"
        )
    return lines


def _headline(scores: dict[str, dict[str, Any]]) -> list[str]:
    keys = [k for k in (*HEADLINE, *GENERATION) if k in scores["dev"]]
    lines = ["## Headline metrics", "", "| split | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for split, row in scores.items():
        name = f"baseline: {row.get('name', '')}" if split == "baseline" else split
        lines.append(f"| {name} | " + " | ".join(_fmt(row.get(k)) for k in keys) + " |")
    return lines


def _per_label(detail: dict[str, Any], split: str) -> list[str]:
    per = detail.get("per_type") or detail.get("per_class") or {}
    if not per:
        return []
    kind = "type" if "per_type" in detail else "class"
    lines = [
        "",
        f"## Per {kind} ({split})",
        "",
        "| label | precision | recall | f1 | support |",
        "|---|---|---|---|---|",
    ]
    return lines + [
        f"| {k} | {_fmt(v['precision'])} | {_fmt(v['recall'])} | {_fmt(v['f1'])} | {v['support']} |"
        for k, v in per.items()
    ]


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else ("" if x is None else str(x))

"""``fieldtune compare``: several runs side by side — quality and what it cost (training time,
trainable parameters, size on disk, inference time) — as a terminal table, compare.md, compare.json
and one plot.

Any kind of run works (fine-tuning, peft, zero-shot, SetFit, LLM prompting): everything is read from
its metrics.json, run.yaml and model/fieldtune.json. A number a run didn't record (``ms_per_example``
in runs from before it existed) shows as "-": compare reads, it never re-measures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .utils.files import folder_bytes

COLUMNS = (
    ("run", "run"),
    ("task", "task"),
    ("model", "model"),
    ("method", "method"),
    ("shots", "shots"),
    ("metric", "{metric}"),
    ("split", "split (n)"),
    ("train_s", "train s"),
    ("trainable_params", "trainable params"),
    ("model_mb", "model MB"),
    ("ms_per_example", "ms / example"),
)


def load_row(run_dir: str | Path, metric: str = "accuracy") -> dict[str, Any]:
    """One run's numbers. The metric is the test set's (dev's when the run had no test set)."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise UserError(
            "not a finished run: no metrics.json", path=run_dir, hint="pass run folders written by `fieldtune train`"
        )
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise UserError(f"metrics.json is not valid JSON: {e}", path=path) from None
    config = _config(run_dir)
    split = "test" if "test" in metrics else "dev"
    scores = metrics.get(split) or {}
    train = metrics.get("train") or {}
    model_dir = run_dir / "model"
    return {
        "run": run_dir.name,
        "path": str(run_dir),
        "task": config.get("task"),
        "model": config.get("model"),
        "method": config.get("method"),
        "shots": (config.get("data") or {}).get("shots"),
        "metric": scores.get(metric),
        "split": f"{split} ({scores.get('examples', '?')})",
        "examples": scores.get("examples"),
        "train_s": train.get("train_s"),
        "trainable_params": train.get("trainable_params"),
        "model_bytes": folder_bytes(model_dir) if model_dir.is_dir() else None,
        "model_mb": round(folder_bytes(model_dir) / 1e6, 2) if model_dir.is_dir() else None,
        "ms_per_example": train.get("ms_per_example"),
        "baseline": (metrics.get("baseline") or {}).get(metric),
    }


def _config(run_dir: Path) -> dict[str, Any]:
    """run.yaml, else the config recorded in model/fieldtune.json."""
    for path, read in ((run_dir / "run.yaml", yaml.safe_load), (run_dir / "model" / "fieldtune.json", json.loads)):
        if path.is_file():
            raw = read(path.read_text(encoding="utf-8")) or {}
            return raw.get("config", raw) if path.suffix == ".json" else raw
    return {}


def compare_runs(
    run_dirs: list[str | Path],
    metric: str = "accuracy",
    output: str | Path | None = None,
    failed: dict[str, str] | None = None,
    notes: list[str] = (),
) -> tuple[list[dict[str, Any]], Path]:
    """Rows for ``run_dirs`` and compare.md / compare.json / compare.png in ``output`` (default: a
    ``compare`` folder beside the first run).

    Args:
        failed: Rows that have no run to read (name -> error), listed in the table with their error.
        notes: Lines printed under the table in compare.md (e.g. how a benchmark limited a row).
    """
    if not run_dirs and not failed:
        raise UserError("nothing to compare", hint="fieldtune compare RUN_DIR [RUN_DIR ...]")
    rows = [load_row(d, metric) for d in run_dirs]
    rows += [{"run": name, "error": error} for name, error in (failed or {}).items()]
    out = Path(output) if output else Path(run_dirs[0]).parent / "compare"
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps({"metric": metric, "rows": rows}, indent=2), encoding="utf-8")
    (out / "compare.md").write_text(render_markdown(rows, metric, notes), encoding="utf-8")
    if any(r.get("metric") is not None for r in rows):
        compare_png(rows, metric, out / "compare.png")
    return rows, out


def headers(metric: str) -> list[str]:
    return [title.format(metric=metric) for _, title in COLUMNS]


def cells(row: dict[str, Any]) -> list[str]:
    """A row's values as table text ("-" for what the run didn't record)."""
    if "error" in row:
        return [row["run"], *["-"] * (len(COLUMNS) - 2), f"failed: {row['error']}"[:200]]
    return [_fmt(key, row.get(key)) for key, _ in COLUMNS]


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "metric":
        return f"{value:.4f}"
    if key == "trainable_params":
        return f"{value:,}"
    if key in ("train_s", "model_mb", "ms_per_example"):
        return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"
    return str(value)


def render_markdown(rows: list[dict[str, Any]], metric: str, notes: list[str] = ()) -> str:
    lines = [
        f"# Comparison: {metric}",
        "",
        "| " + " | ".join(headers(metric)) + " |",
        "|" + "---|" * len(COLUMNS),
        *["| " + " | ".join(c.replace("|", "\\|") for c in cells(r)) + " |" for r in rows],
        "",
        f"{metric}: on the test set (dev where a run had none); n = examples scored. train s: training time "
        "(zero-shot: choosing the label template and temperature on dev; prompting: 0). model MB: the model/ "
        "folder on disk (an adapter or zero-shot artifact references its base model, which is not counted). "
        "ms / example: test-set inference, batched, as measured during the run; '-' where the run did not "
        "record it (runs from before fieldtune recorded it).",
        *([""] + [f"- {n}" for n in notes] if notes else []),
    ]
    return "\n".join(lines) + "\n"


def compare_png(rows: list[dict[str, Any]], metric: str, path: Path) -> str:
    """A horizontal bar per run (its metric), annotated with training time, size and inference time:
    with zero-shot runs at 0 s of training, bars read better than a scatter on a time axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r.get("metric") is not None]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(shown) + 1.4))
    y = list(range(len(shown)))[::-1]
    values = [r["metric"] for r in shown]
    ax.barh(y, values, color="lightsteelblue")
    for yi, r in zip(y, shown):
        train_s, mb = _fmt("train_s", r.get("train_s")), _fmt("model_mb", r.get("model_mb"))
        ms, n = _fmt("ms_per_example", r.get("ms_per_example")), r.get("examples") or "?"
        cost = f"{r['metric']:.3f} (n={n})   train {train_s} s · {mb} MB · {ms} ms/ex"
        ax.text(0.01 * max(1.0, *values), yi, cost, va="center", ha="left", fontsize=8)
    ax.set_yticks(y, [f"{r['run']}\n({r.get('method')}, {r.get('model')})" for r in shown], fontsize=8)
    ax.set_xlim(0, max(1.0, *values))
    ax.set_xlabel(metric)
    ax.set_title(f"{metric} and what it cost")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name

"""Report of bench/defaults.py: the table, the plot and the checks against issue 12's targets.

Reads every ``<dataset>.json`` of the results folder, so the report covers all datasets run so far.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tables import markdown, show

CONTENDERS = ("defaults", "grid", "hf_trainer")
HEADERS = ["dataset", "size", "train", "dev", "contender", "test", "dev score", "wall s", "steps", "epochs", "settings"]
MAX_GAP_PTS = 2.0  # defaults within 2 points of the grid's best
MAX_WALL_RATIO = 1.5  # defaults' wall time <= 1.5x the grid-best run's


def load_all(out: Path) -> list[dict[str, Any]]:
    """Every dataset's results file in the folder, in a fixed order."""
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


def grid_best(point: dict[str, Any]) -> dict[str, Any] | None:
    """The grid run with the best dev metric (ties: the faster one), or None when none finished."""
    runs = [r for r in point.get("grid", {}).get("runs", {}).values() if "error" not in r]
    if not runs:
        return None
    return max(runs, key=lambda r: (r["dev_metric"], -r["wall_s"]))


def contender(point: dict[str, Any], name: str) -> dict[str, Any] | None:
    """One contender's record at a point (the grid: its dev-selected best run)."""
    return grid_best(point) if name == "grid" else point.get(name)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def _settings(r: dict[str, Any]) -> str:
    s = r.get("settings") or {}
    return ", ".join(f"{k} {s[k]}" for k in ("lr", "epochs", "batch_size") if k in s)


def rows(results: list[dict[str, Any]]) -> list[list[str]]:
    """One row per dataset x size x contender."""
    out = []
    for res in results:
        for size, point in res["points"].items():
            for name in CONTENDERS:
                r = contender(point, name)
                if r is None:
                    continue
                head = [res["dataset"], size, str(point["n_train"]), str(point["n_dev"]), name]
                if "error" in r:
                    out.append(head + [r["error"][:60]] + [""] * 5)
                    continue
                epochs = r.get("epochs_run")
                out.append(
                    head
                    + [
                        _pct(r["test_metric"]),
                        _pct(r["dev_metric"]),
                        f"{r['wall_s']:.1f}",
                        str(r.get("steps", "-")),
                        "-" if epochs is None else f"{epochs:g}",
                        _settings(r),
                    ]
                )
    return out


def check_point(point: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """(target, passed or None when a contender is missing, numbers) for one point."""
    d, g, h = (contender(point, n) for n in CONTENDERS)
    ok = lambda r: r is not None and "error" not in r  # noqa: E731
    out: list[tuple[str, bool | None, str]] = []
    if ok(d) and ok(g):
        gap = 100 * (d["test_metric"] - g["test_metric"])
        out.append((f"within {MAX_GAP_PTS:g} pts of grid best", gap >= -MAX_GAP_PTS, f"{gap:+.2f} pts"))
        ratio = d["wall_s"] / max(g["wall_s"], 1e-9)
        out.append((f"wall <= {MAX_WALL_RATIO:g}x grid best", ratio <= MAX_WALL_RATIO, f"{ratio:.2f}x"))
    else:
        out += [("within 2 pts of grid best", None, "missing"), ("wall <= 1.5x grid best", None, "missing")]
    if ok(d) and ok(h):
        gap = 100 * (d["test_metric"] - h["test_metric"])
        out.append(("at least the Trainer", gap >= 0, f"{gap:+.2f} pts"))
    else:
        out.append(("at least the Trainer", None, "missing"))
    return out


def check_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    """One row per dataset x size x target."""
    verdict = {True: "PASS", False: "FAIL", None: "n/a"}
    return [
        [res["dataset"], size, target, verdict[passed], numbers]
        for res in results
        for size, point in res["points"].items()
        for target, passed, numbers in check_point(point)
    ]


def plot(results: list[dict[str, Any]], path: Path) -> Path:
    """One panel per dataset: test metric vs training size (log x), a line per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        for name, style in zip(CONTENDERS, ("o-", "s--", "^:"), strict=True):
            pts = sorted(
                (p["n_train"], r["test_metric"])
                for p in res["points"].values()
                if (r := contender(p, name)) is not None and "error" not in r
            )
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=name)
        ax.set_xscale("log")  # ticks at the measured sizes: log-axis minor labels overlap on a short range
        sizes = sorted({p["n_train"] for p in res["points"].values()})
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{res['dataset']} ({res['task']})")
        ax.set_xlabel("training examples" if res["task"] != "ner" else "training sentences")
        ax.set_ylabel(f"test {res['metric']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def report(out: Path, figure: Path, notes: list[str]) -> None:
    """Print the table and the checks, write ``table.md`` beside the results and the plot."""
    results = load_all(out)
    if not results:
        print(f"no results in {out}")
        return
    body, checks = rows(results), check_rows(results)
    check_headers = ["dataset", "size", "target", "result", "numbers"]
    show(HEADERS, body, "fieldtune defaults vs grid best (dev-selected) vs HF Trainer defaults")
    show(check_headers, checks, "issue 12 targets")
    md = "\n\n".join([markdown(HEADERS, body), markdown(check_headers, checks), "\n".join(f"- {n}" for n in notes)])
    (out / "table.md").write_text(md + "\n", encoding="utf-8")
    failed = sum(c[3] == "FAIL" for c in checks)
    missing = sum(c[3] == "n/a" for c in checks)
    print(f"\nchecks: {len(checks) - failed - missing} pass, {failed} fail, {missing} n/a")
    print(f"table: {out / 'table.md'}\nplot: {plot(results, figure)}")

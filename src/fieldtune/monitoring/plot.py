"""``drift.png``: each drift statistic over the windows of the history, threshold dashed, drift in red."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .checks import Check
from .stats import PERMUTATIONS
from .thresholds import Thresholds

PANELS = (  # (check, title, threshold field, log scale)
    ("label_shift", "predicted-label PSI", "psi", False),
    ("confidence_drop", "confidence drop (reference - window)", "confidence_drop", False),
    ("embedding_shift", "embedding MMD p-value (lower = more shift)", "mmd_p", True),
    ("unseen_vocabulary", "unseen-word rate increase", "oov_increase", False),
)


def drift_png(history: list[dict[str, Any]], t: Thresholds, checks: dict[str, Check], path: Path) -> str:
    """One panel per statistic over the windows of the history; the threshold dashed, drift in red.
    Returns the file's name."""
    # imported here: choosing the headless backend at import time would change it for every
    # program that merely imports fieldtune.monitoring (a notebook's inline plots, say)
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(PANELS), 1, figsize=(8, 2.3 * len(PANELS)), sharex=True)
    xs = np.arange(len(history))
    for ax, panel in zip(axes, PANELS):
        _panel(ax, panel, history, xs, t, checks)
    labels = [h["to"][5:16].replace("T", " ") for h in history]
    axes[-1].set_xticks(
        xs, labels, rotation=30 if len(xs) > 6 else 0, fontsize=7, ha="right" if len(xs) > 6 else "center"
    )
    axes[-1].set_xlabel(f"windows of up to {history[-1]['predictions']} predictions, by last prediction (UTC)")
    fig.suptitle("Drift over time (last window = this report)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _panel(ax: Any, panel: tuple, history: list[dict[str, Any]], xs: np.ndarray, t: Thresholds, checks: dict) -> None:
    """One statistic's panel, or why it is unavailable."""
    name, title, key, log = panel
    points = [h.get(name) for h in history]
    ys = np.array([p["value"] if p and p["value"] is not None else np.nan for p in points], dtype=float)
    ax.set_title(title, fontsize=9)
    if np.isnan(ys).all():
        reason = checks[name].reason or "not computed"
        ax.text(0.5, 0.5, f"unavailable: {reason}", ha="center", va="center", fontsize=8, wrap=True)
        ax.set_yticks([])
        return
    ax.plot(xs, ys, "o-", color="tab:blue", lw=1.2, ms=4)
    red = [i for i, p in enumerate(points) if p and p["drifted"]]
    ax.plot(xs[red], ys[red], "o", color="tab:red", ms=6, label="drift")
    ax.axhline(getattr(t, key), color="gray", ls="--", lw=1, label=f"threshold {getattr(t, key)}")
    if log:
        ax.set_yscale("log")
        ax.set_ylim(1 / (PERMUTATIONS + 1) / 2, 1.05)
    ax.legend(fontsize=7, loc="best")

"""Plots of calibrated confidence: reliability diagrams (before / after temperature scaling) and the
precision-coverage curve of abstention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .calibration import ece, precision_coverage, reliability  # noqa: E402


def calibration_png(pairs: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], path: Path) -> str:
    """Reliability diagrams, one panel per split (``{"dev": {"before": (conf, correct), "after": ...}}``),
    the uncalibrated and calibrated scores side by side, ECE in the legend."""
    splits = list(pairs)
    fig, axes = plt.subplots(1, len(splits), figsize=(4.5 * len(splits), 4.2), squeeze=False)
    for ax, split in zip(axes[0], splits):
        ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1)
        for when, color, shift in (("before", "tab:red", -0.25), ("after", "tab:blue", 0.25)):
            conf, correct = pairs[split][when]
            r = reliability(conf, correct)
            width = np.array(r["upper"]) - np.array(r["lower"])
            centres = (np.array(r["upper"]) + np.array(r["lower"])) / 2 + shift * width / 2
            shown = np.array(r["count"]) > 0
            ax.bar(
                centres[shown],
                np.array(r["accuracy"])[shown],
                width=width[shown] / 2,
                color=color,
                alpha=0.75,
                label=f"{when}: ECE {ece(conf, correct):.3f}",
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_title(f"Reliability ({split})")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def precision_coverage_png(conf: np.ndarray, correct: np.ndarray, chosen: dict[str, Any], path: Path) -> str:
    """Dev precision of the kept predictions against coverage, with the chosen abstention point."""
    curve = precision_coverage(conf, correct)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(curve["coverage"], curve["precision"], "-", color="tab:blue", label="dev")
    ax.plot(
        [chosen["coverage"]],
        [chosen["precision"]],
        "o",
        color="tab:red",
        label=f"threshold {chosen['threshold']:.3f}",
    )
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("coverage (share of inputs answered)")
    ax.set_ylabel("precision of the answers")
    ax.set_title("Abstention: precision vs coverage (dev)")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name

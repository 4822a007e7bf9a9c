"""PNG plots a person would rather look at than read: learning curves, confusion matrices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402


def learning_curve_png(history: list[dict[str, Any]], metric: str, path: Path) -> str:
    """Training loss and the dev metric against optimizer steps."""
    evals = [h for h in history if h.get("event") == "eval"]
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [h["step"] for h in evals]
    ax.plot(steps, [h["train_loss"] for h in evals], "o-", color="tab:red", label="train loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("train loss", color="tab:red")
    ax2 = ax.twinx()
    ax2.plot(steps, [h["dev"].get(metric, np.nan) for h in evals], "s-", color="tab:blue", label=f"dev {metric}")
    ax2.set_ylabel(f"dev {metric}", color="tab:blue")
    best = [h for h in evals if h.get("best")]
    if best:
        ax2.axvline(best[-1]["step"], color="gray", ls="--", lw=1)
        ax2.annotate("best", (best[-1]["step"], best[-1]["dev"].get(metric, 0)), color="gray")
    ax.set_title("Learning curve")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def label_font(labels: list[str]) -> tuple[Any, bool]:
    """A font for tick labels in any script: (None, True) when the default covers them; (a FontProperties
    of an installed font that covers every character, True); or (None, False) when no installed font does
    (Chinese labels on a machine without a CJK font: they would draw as empty boxes)."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    wanted = {ord(c) for label in labels for c in label}

    def covers(path: str) -> bool:
        try:
            return wanted <= set(FT2Font(path).get_charmap())
        except (OSError, RuntimeError):
            return False

    if covers(font_manager.findfont(font_manager.FontProperties())):
        return None, True
    found = next((f for f in font_manager.findSystemFonts() if covers(f)), None)
    return (font_manager.FontProperties(fname=found), True) if found else (None, False)


def confusion_matrix_png(gold: list[str], pred: list[str], labels: list[str], path: Path) -> str:
    """Row-normalised confusion matrix (rows: gold, columns: predicted). Labels no installed font can draw
    become their numbers in the label list (1 = the first), said in the title."""
    cm = confusion_matrix(gold, pred, labels=labels).astype(float)
    cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.32 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    font, drawable = label_font(labels)
    ticks = labels if drawable else [str(i + 1) for i in range(len(labels))]
    ax.set_xticks(range(len(labels)), ticks, rotation=90, fontsize=7, fontproperties=font)
    ax.set_yticks(range(len(labels)), ticks, fontsize=7, fontproperties=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if cm[i, j] >= 0.005:
                    ax.text(
                        j,
                        i,
                        f"{cm[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if cm[i, j] > 0.5 else "black",
                    )
    numbered = "" if drawable else "\nlabels numbered in order: no font here draws them"
    ax.set_title("Confusion matrix (test, row-normalised)" + numbered, fontsize=12 if drawable else 9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name

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


def confusion_matrix_png(gold: list[str], pred: list[str], labels: list[str], path: Path) -> str:
    """Row-normalised confusion matrix (rows: gold, columns: predicted)."""
    cm = confusion_matrix(gold, pred, labels=labels).astype(float)
    cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.32 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
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
    ax.set_title("Confusion matrix (test, row-normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name

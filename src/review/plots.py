"""The report's PNGs (matplotlib, Agg backend: offline): training curves, confusion matrices, reliability diagrams.

Each function takes plain data and a path, so the plots are drawn and tested without git or DVC.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path


def _figure(ncols: int, width: float = 5.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(1, ncols, figsize=(width * ncols, 4), squeeze=False)


def plot_curves(model: str, base: list[dict] | None, new: list[dict] | None, path: Path, base_name: str) -> None:
    """Loss and validation scores per epoch: base dashed with crosses, workspace solid with dots."""
    plt, fig, axes = _figure(2)
    panels = (
        (axes[0][0], "loss", ("train_loss", "val_loss")),
        (axes[0][1], "validation", ("val_macro_recall", "val_accuracy", "val_macro_f1")),
    )
    for ax, title, series in panels:
        for color, name in zip(("tab:blue", "tab:orange", "tab:green"), series):
            for rows, style, marker, label in ((base, "--", "x", base_name), (new, "-", "o", "workspace")):
                if rows:  # markers tell base from workspace when a run has a single epoch
                    ax.plot(
                        [r["epoch"] for r in rows],
                        [r[name] for r in rows],
                        style,
                        color=color,
                        marker=marker,
                        markersize=4,
                        label=f"{name} ({label})",
                    )
        ax.set_title(f"{model}: {title}")
        ax.set_xlabel("epoch")
        last = max(r["epoch"] for rows in (base, new) if rows for r in rows)
        ax.set_xlim(0.5, last + 0.5)
        ax.set_xticks(range(1, last + 1, max(1, last // 10)))  # whole epochs
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion_counts(text: str, labels: list[str]) -> list[list[int]]:
    counts = [[0] * len(labels) for _ in labels]
    for row in csv.DictReader(io.StringIO(text)):
        counts[labels.index(row["actual"])][labels.index(row["predicted"])] += 1
    return counts


def plot_confusion(
    model: str, base: str | None, new: str | None, path: Path, labels: list[str], base_name: str
) -> None:
    """Test confusion matrices, base on the left, workspace on the right (colour: share of the actual class)."""
    panels = [(f"{base_name}", base), ("workspace", new)]
    panels = [(title, text) for title, text in panels if text is not None]
    plt, fig, axes = _figure(len(panels), width=4.2)
    for ax, (title, text) in zip(axes[0], panels):
        counts = confusion_counts(text, labels)
        shares = [[c / max(1, sum(row)) for c in row] for row in counts]
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for i, row in enumerate(counts):
            for j, count in enumerate(row):
                ax.text(j, i, str(count), ha="center", va="center", color="white" if shares[i][j] > 0.5 else "black")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        ax.set_title(f"{model}: {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reliability(model: str, curves: dict, path: Path) -> None:
    """Accuracy against confidence per bin for base and new, the diagonal being perfect calibration."""
    plt, fig, axes = _figure(1, width=5.0)
    ax = axes[0][0]
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    for name, (bins, ece, style, marker) in curves.items():
        points = [(row["confidence"], row["accuracy"]) for row in bins if row["count"]]
        ax.plot(
            [c for c, _ in points],
            [a for _, a in points],
            style,
            marker=marker,
            markersize=4,
            label=f"{name} (ECE {ece:.4f})",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top probability), mean per bin")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title(f"{model}: reliability on test (15 bins)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

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


REVISION_COLOURS = ("tab:blue", "tab:orange")  # base, workspace: one colour per revision on every plot


def plot_curves(
    model: str, base: dict | None, new: dict | None, path: Path, base_name: str, new_name: str = "workspace"
) -> None:
    """DVCLive's curves per optimizer step, one colour per revision: the loss (train every step, val every
    epoch) and the validation macro-recall. ``base``/``new``: ``{series: [{"step": .., <figure>: ..}]}``."""
    plt, fig, axes = _figure(2)
    panels = (
        (axes[0][0], "loss", (("train/loss", "loss", "-", None), ("val/loss", "loss", "--", "o"))),
        (axes[0][1], "validation macro-recall", (("val/macro_recall", "macro_recall", "-", "o"),)),
    )
    for ax, title, series in panels:
        for colour, (curves, name) in zip(REVISION_COLOURS, ((base, base_name), (new, new_name))):
            for key, figure, style, marker in series:
                rows = (curves or {}).get(key)
                if rows:
                    ax.plot(
                        [r["step"] for r in rows],
                        [r[figure] for r in rows],
                        style,
                        color=colour,
                        marker=marker,
                        markersize=5,
                        linewidth=1.2 if marker is None else 1.5,
                        label=f"{key} ({name})",
                    )
        ax.set_title(f"{model}: {title}")
        ax.set_xlabel("optimizer step")
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion_counts(text: str, labels: list[str]) -> list[list[int]]:
    """Counts per (actual, predicted) of a plots/confusion/<model>.csv; ValueError for a class not in ``labels``."""
    counts = [[0] * len(labels) for _ in labels]
    index = {name: i for i, name in enumerate(labels)}
    for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        actual, predicted = row.get("actual"), row.get("predicted")
        if actual not in index or predicted not in index:
            raise ValueError(f"line {line}: class {actual!r} / {predicted!r} is not one of {labels}")
        counts[index[actual]][index[predicted]] += 1
    return counts


def plot_confusion(
    model: str,
    base: str | None,
    new: str | None,
    path: Path,
    labels: list[str],
    base_name: str,
    new_name: str = "workspace",
) -> None:
    """Test confusion matrices, base on the left, new on the right (colour: share of the actual class); every
    class of ``labels`` on both axes. A row naming another class is a ValueError."""
    panels = [(f"{base_name}", base), (new_name, new)]
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
        colour = REVISION_COLOURS[1] if name == "workspace" else REVISION_COLOURS[0]
        points = [(row["confidence"], row["accuracy"]) for row in bins if row["count"]]
        ax.plot(
            [c for c, _ in points],
            [a for _, a in points],
            style,
            color=colour,
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

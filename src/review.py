"""The review report of a change: params, per-model test metrics and plots, base revision against the workspace.

    python -m src.review [--base main] [--out review]

writes ``OUT/report.md`` (what the CI job posts on the pull request with ``cml comment create``)
and, beside it, ``curves_<model>.png`` and ``confusion_<model>.png`` for every model whose plot
data changed: base dashed or on the left, workspace solid or on the right. The diffs come from
DVC itself (``Repo.params.diff`` and ``Repo.metrics.diff``, what ``dvc params diff`` and ``dvc
metrics diff --all`` print); the base revision's plot data is read through DVC's filesystem at that
revision, so it works whether git or DVC tracks the file. Rendering is matplotlib's Agg backend:
offline, no browser.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

from src.cli import pipeline_errors_exit
from src.errors import PipelineError

MODELS = ("bert", "lstm", "tune_best", "majority")   # the evaluate stages (metrics/<model>/test.json)
CURVES = {"bert": "plots/train_bert.json", "lstm": "plots/train_lstm.json"}   # per-epoch rows of the train stages
CONFUSION = "plots/confusion/{model}.csv"
# (file, key, row label) per model; the four test figures TweetEval and SemEval report, then the
# validation figure the model was selected on
QUALITY = (("test", "macro_recall", "test macro-recall"), ("test", "f1_pn", "test F1^PN"),
           ("test", "accuracy", "test accuracy"), ("test", "macro_f1", "test macro-F1"),
           ("train", "val.macro_recall", "val macro-recall (best epoch)"))
GENERATED = ("report.md", "curves_*.png", "confusion_*.png")


def resolve_rev(rev: str) -> str:
    result = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise PipelineError(f"--base {rev}: not a git revision here (fetch it first, e.g. `git fetch origin main`)")
    return result.stdout.strip()


def dvc_diffs(rev: str) -> tuple[dict, dict]:
    """(params diff, metrics diff with unchanged rows) of the workspace against ``rev``, as DVC computes them."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        params = repo.params.diff(a_rev=rev)
        metrics = repo.metrics.diff(a_rev=rev, all=True)
    failed = [f"{r}: {e}" for result in (params, metrics) for r, e in result.get("errors", {}).items() if e]
    if failed:
        print(f"warning: DVC could not read some params or metrics ({'; '.join(failed)})", file=sys.stderr)
    return params.get("diff", {}), metrics.get("diff", {})


class Revision:
    """Files as they are at a git revision (git- or DVC-tracked), or in the workspace when ``rev`` is None."""

    def __init__(self, rev: str | None):
        self.rev, self._repo = rev, None

    def read(self, path: str) -> str | None:
        if self.rev is None:
            return Path(path).read_text(encoding="utf-8") if Path(path).is_file() else None
        if self._repo is None:
            from dvc.repo import Repo

            self._repo = Repo.open(".", rev=self.rev, subrepos=True, uninitialized=True)
        try:
            with self._repo.dvcfs.open(path, mode="r", encoding="utf-8") as handle:
                return handle.read()
        except OSError:   # not at that revision (FileNotFoundError), or its DVC cache is not here
            return None

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()


def _number(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}"


def _change(old, new) -> str:
    if old is None or new is None:
        return "–"
    difference = new - old
    return "0" if difference == 0 else f"{difference:+.4f}"


def metrics_table(model: str, metrics_diff: dict) -> tuple[str, bool]:
    """The markdown table of one model's quality figures, and whether any moved."""
    rows, changed = [], False
    for file, key, label in QUALITY:
        entry = metrics_diff.get(f"metrics/{model}/{file}.json", {}).get(key)
        if entry is None:
            continue
        old, new = entry.get("old"), entry.get("new")
        changed |= old != new
        rows.append(f"| {label} | {_number(old)} | {_number(new)} | {_change(old, new)} |")
    if not rows:
        return "", False
    return "| metric | base | new | change |\n| --- | ---: | ---: | ---: |\n" + "\n".join(rows) + "\n", changed


def params_table(params_diff: dict) -> str:
    rows = [f"| `{name}` | {entry.get('old', '–')} | {entry.get('new', '–')} |"
            for path, entries in sorted(params_diff.items()) for name, entry in sorted(entries.items())]
    if not rows:
        return "No params changed.\n"
    return "| param | base | new |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n"


def _figure(ncols: int, width: float = 5.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(1, ncols, figsize=(width * ncols, 4), squeeze=False)


def plot_curves(model: str, base: list[dict] | None, new: list[dict] | None, path: Path, base_name: str) -> None:
    """Loss and validation scores per epoch: base dashed with crosses, workspace solid with dots."""
    plt, fig, axes = _figure(2)
    panels = ((axes[0][0], "loss", ("train_loss", "val_loss")),
              (axes[0][1], "validation", ("val_macro_recall", "val_accuracy", "val_macro_f1")))
    for ax, title, series in panels:
        for color, name in zip(("tab:blue", "tab:orange", "tab:green"), series):
            for rows, style, marker, label in ((base, "--", "x", base_name), (new, "-", "o", "workspace")):
                if rows:   # markers tell base from workspace when a run has a single epoch
                    ax.plot([r["epoch"] for r in rows], [r[name] for r in rows], style, color=color, marker=marker,
                            markersize=4, label=f"{name} ({label})")
        ax.set_title(f"{model}: {title}")
        ax.set_xlabel("epoch")
        last = max(r["epoch"] for rows in (base, new) if rows for r in rows)
        ax.set_xlim(0.5, last + 0.5)
        ax.set_xticks(range(1, last + 1, max(1, last // 10)))   # whole epochs
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


def plot_confusion(model: str, base: str | None, new: str | None, path: Path, labels: list[str],
                   base_name: str) -> None:
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


def label_names() -> list[str]:
    from src.params import load_params

    return load_params()["data"]["label_names"]


def write_report(base: str, out: Path) -> Path:
    commit = resolve_rev(base)
    params_diff, metrics_diff = dvc_diffs(commit)
    out.mkdir(parents=True, exist_ok=True)
    for pattern in GENERATED:  # nothing from an earlier report may pass for this one's
        for stale in out.glob(pattern):
            stale.unlink()
    labels = label_names()

    lines = [f"# Review: `{base}` ({commit[:7]}) against the workspace", "",
             "## Params changed", "", params_table(params_diff)]
    unchanged = []
    old_files, new_files = Revision(commit), Revision(None)
    for model in MODELS:
        table, changed = metrics_table(model, metrics_diff)
        images = []
        curves = CURVES.get(model)
        if curves:
            old, new = old_files.read(curves), new_files.read(curves)
            if new is not None and old != new:
                plot_curves(model, json.loads(old) if old else None, json.loads(new), out / f"curves_{model}.png", base)
                images.append(f"![{model}: training curves, {base} dashed with crosses, workspace solid with dots]"
                              f"(curves_{model}.png)")
        confusion = CONFUSION.format(model=model)
        old, new = old_files.read(confusion), new_files.read(confusion)
        if new is not None and old != new:
            plot_confusion(model, old, new, out / f"confusion_{model}.png", labels, base)
            images.append(f"![{model}: test confusion matrix, {base} left, workspace right](confusion_{model}.png)")
        if not table and not images:
            continue
        if not changed and not images:
            unchanged.append(model)
        lines += [f"## {model}: {'changed' if changed or images else 'unchanged'}", "", table, *images]
        if images:
            lines.append("")
    old_files.close()
    if unchanged:
        lines.append(f"Not re-trained or re-scored (same figures as `{base}`): {', '.join(unchanged)}.")
    report = out / "report.md"
    report.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.review", description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git revision to compare against (default: main)")
    parser.add_argument("--out", default="review", type=Path, help="directory for report.md and its PNGs")
    args = parser.parse_args(argv)
    with pipeline_errors_exit():
        print(write_report(args.base, args.out))


if __name__ == "__main__":
    main()

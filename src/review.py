"""The review report of a change: is it real? Base revision against the workspace, per model.

    python -m src.review [--base main] [--out review]

writes ``OUT/report.md`` (what the CI job posts on the pull request with ``cml comment create``),
``OUT/report.json`` (the same figures, for a CI job to gate on) and PNGs beside them. For every
model of dvc.yaml's ``evaluate`` foreach that changed (its metrics, curves, predictions or
probabilities differ in value beyond a relative 1e-6, not merely in text), the report holds:

- its test metrics, base against new, and for test macro-recall, F1^PN and accuracy a 95% paired
  bootstrap interval of the change, McNemar's exact p-value and a verdict (better, worse, within
  noise) (src/scoring/significance.py);
- the flipped tweets: counts per gold class each way, and the most confident ones as a table;
- calibration: expected calibration error before and after, and ``reliability_<model>.png``;
- ``curves_<model>.png`` and ``confusion_<model>.png`` (base dashed or left, workspace solid or right).

A summary of the verdicts opens report.md, so it is the first thing the pull-request comment shows.
The diffs of params and metrics come from DVC itself (``dvc params diff``, ``dvc metrics diff
--all``); the base revision's files (plots, predictions, probabilities) are read through DVC's
filesystem at that revision, so they come from git or the DVC cache (``dvc pull`` them in CI).

OUT holds only what a review wrote: the files go to a temporary directory first, then replace the
previous review's files, which ``OUT/.review-files.json`` lists. A file in OUT that no review wrote is
never deleted or overwritten: a name the new report needs that is taken by such a file is an error.
Rendering is matplotlib's Agg backend: offline, no browser.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from src.core.atomic import write_json
from src.core.cli import pipeline_errors_exit
from src.core.errors import PipelineError

CURVES = "plots/train_{model}.json"  # per-epoch rows of a train stage (bert, lstm)
CONFUSION = "plots/confusion/{model}.csv"
PREDICTIONS = "predictions/{model}/test.txt"
PROBABILITIES = "predictions/{model}/probs_test.csv"
TEST_SPLIT = "data/processed/test.jsonl"
# (file, key, row label) per model; the four test figures TweetEval and SemEval report, then the
# validation figure the model was selected on
QUALITY = (
    ("test", "macro_recall", "test macro-recall"),
    ("test", "f1_pn", "test F1^PN"),
    ("test", "accuracy", "test accuracy"),
    ("test", "macro_f1", "test macro-F1"),
    ("train", "val.macro_recall", "val macro-recall (best epoch)"),
)
METRIC_LABELS = {"macro_recall": "macro-recall", "f1_pn": "F1^PN", "accuracy": "accuracy"}
RELATIVE_TOLERANCE = 1e-6  # values closer than this are the same figure (a re-run's last-digit noise)
PROBABILITY_TOLERANCE = 2e-6  # probabilities are written with 6 decimals
MANIFEST = ".review-files.json"  # the files the last review wrote in OUT: the only ones a review replaces
TOP_FLIPS = 5  # flipped tweets shown per direction
SIGNIFICANCE = 0.05


def resolve_rev(rev: str) -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise PipelineError(f"--base {rev}: not a git revision here (fetch it first, e.g. `git fetch origin main`)")
    return result.stdout.strip()


def dvc_diffs(rev: str, with_params: bool = True) -> tuple[dict, dict]:
    """(params diff, metrics diff with unchanged rows) of the workspace against ``rev``, as DVC computes them.

    ``with_params`` False (the base's params.yaml does not parse): no params diff, which would show
    every base param as None."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        params = repo.params.diff(a_rev=rev) if with_params else {}
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
        from dvc.exceptions import DvcException
        from dvc_data.index.index import DataIndexError

        try:
            with self._repo.dvcfs.open(path, mode="r", encoding="utf-8") as handle:
                return handle.read()
        # not at that revision (FileNotFoundError), its DVC cache is not here (DataIndexError: a directory
        # output's listing was never pulled), or its dvc.yaml cannot be resolved (params.yaml broken)
        except (OSError, DvcException, DataIndexError):
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


def format_change(old, new) -> str:
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
        rows.append(f"| {label} | {_number(old)} | {_number(new)} | {format_change(old, new)} |")
    if not rows:
        return "", False
    return "| metric | base | new | change |\n| --- | ---: | ---: | ---: |\n" + "\n".join(rows) + "\n", changed


def params_table(params_diff: dict) -> str:
    rows = [
        f"| `{name}` | {entry.get('old', '–')} | {entry.get('new', '–')} |"
        for path, entries in sorted(params_diff.items())
        for name, entry in sorted(entries.items())
    ]
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


def label_names() -> list[str]:
    from src.core.params import load_params

    return load_params()["data"]["label_names"]


def evaluate_models(dvc_yaml: str | os.PathLike = "dvc.yaml") -> list[str]:
    """The models of dvc.yaml's ``evaluate`` foreach (evaluate@bert, ...), in its order."""
    from ruamel.yaml import YAML

    try:
        foreach = YAML(typ="safe", pure=True).load(Path(dvc_yaml).read_text(encoding="utf-8"))["stages"]["evaluate"][
            "foreach"
        ]
    except Exception as exc:  # noqa: BLE001 - unreadable, not YAML, or no such stage: one line either way
        raise PipelineError(
            f"{dvc_yaml}: no stages.evaluate.foreach to take the models from ({type(exc).__name__})"
        ) from None
    models = [str(key) for key in foreach] if isinstance(foreach, (dict, list)) else []
    # a model's name becomes part of file names (predictions/<model>/, reliability_<model>.png)
    if not models or not all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", model) for model in models):
        raise PipelineError(
            f"{dvc_yaml}: stages.evaluate.foreach = {foreach!r:.200}: expected model names (letters, digits, _ and -)"
        )
    return models


def same_values(a, b, rel_tol: float = RELATIVE_TOLERANCE) -> bool:
    """Equal as data, numbers within ``rel_tol`` of each other (JSON trees: dicts, lists, numbers, text)."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_values(a[k], b[k], rel_tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_values(x, y, rel_tol) for x, y in zip(a, b))
    return a == b


def base_params_problem(text: str | None) -> str | None:
    """Why the base's params.yaml cannot be compared (not YAML, not a mapping), or None when it can."""
    from ruamel.yaml import YAML

    if text is None:
        return None
    try:
        params = YAML(typ="safe", pure=True).load(text)
    except Exception as exc:  # noqa: BLE001 - ruamel raises many error types for broken YAML
        return " ".join(str(exc).split())[:200] or type(exc).__name__
    return None if isinstance(params, dict) else f"expected a mapping of params, found {type(params).__name__}"


def parse_labels(text: str | None) -> list[int] | None:
    """The label ids of a predictions/<model>/test.txt, or None when absent or not label ids."""
    if text is None:
        return None
    try:
        return [int(line) for line in text.splitlines()]
    except ValueError:
        return None


def parse_test_split(text: str | None) -> tuple[list[str], list[int]] | None:
    """(texts, labels) of a data/processed/test.jsonl, or None when absent or damaged."""
    if text is None:
        return None
    try:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [row["text"] for row in rows], [int(row["label"]) for row in rows]
    except (ValueError, KeyError, TypeError):
        return None


def read_probabilities(files, model: str, labels: list[str], n: int | None) -> np.ndarray | None:
    """A model's test probabilities at a revision, or None (absent, e.g. written before evaluate kept them)."""
    from src.scoring.probabilities import parse_probabilities

    text = files.read(PROBABILITIES.format(model=model))
    if text is None:
        return None
    try:
        probabilities = parse_probabilities(text, labels, PROBABILITIES.format(model=model))
    except PipelineError:
        return None
    return probabilities if n is None or len(probabilities) == n else None


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def _interval(interval) -> str:
    return f"[{_signed(interval[0])}, {_signed(interval[1])}]"


def _p(value: float) -> str:
    return f"{value:.3g}" if value >= 0.001 else f"{value:.1e}"


def _cell(text: str, limit: int = 120) -> str:
    """A tweet as one markdown table cell."""
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|")


def statistics_section(model: str, stats: dict, test: dict) -> list[str]:
    """The interval table and what it says, in words."""
    rows = [
        "| metric | base | new | change | 95% interval | McNemar p | verdict |",
        "| --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    words = []
    for metric, entry in stats["metrics"].items():
        name = METRIC_LABELS[metric]
        rows.append(
            f"| test {name} | {entry['base']:.4f} | {entry['new']:.4f} | {_signed(entry['change'])} | "
            f"{_interval(entry['interval'])} | {_p(entry['p_value'])} | {entry['verdict']} |"
        )
        moved = "rose" if entry["change"] > 0 else "fell" if entry["change"] < 0 else "did not move"
        amount = f" by {abs(entry['change']):.4f}" if entry["change"] else ""
        if entry["verdict"] == "within noise":
            words.append(
                f"Test {name} {moved}{amount}, but the 95% interval {_interval(entry['interval'])} holds "
                "zero: **within noise**."
            )
        else:
            words.append(
                f"Test {name} {moved}{amount} and the whole 95% interval {_interval(entry['interval'])} is "
                f"{'above' if entry['verdict'] == 'better' else 'below'} zero: **{entry['verdict']}**."
            )
    mc = stats["mcnemar"]
    significant = mc["p_value"] < SIGNIFICANCE
    words.append(
        f"McNemar's exact test on the {mc['base_right_new_wrong'] + mc['base_wrong_new_right']} tweets exactly "
        f"one model gets right ({mc['base_right_new_wrong']} lost, {mc['base_wrong_new_right']} gained): "
        f"p = {_p(mc['p_value'])}, {'' if significant else 'not '}significant at 5%."
    )
    accuracy = stats["metrics"].get("accuracy")
    if accuracy and significant == (accuracy["verdict"] == "within noise"):
        words.append("The two tests disagree on accuracy: treat the change as borderline.")
    return [
        f"**Is the change real?** Paired bootstrap over {test['resamples']:,} resamples of the {test['n']:,} "
        "test tweets (seeded), McNemar's exact test on the same tweets.",
        "",
        *rows,
        "",
        " ".join(words),
        "",
    ]


def flipped_section(
    model: str, gold, base, new, texts, new_probs, base_probs, labels: list[str]
) -> tuple[list[str], dict]:
    """Counts of flipped tweets per gold class each way, and the most confident flips as tables."""
    gold, base, new = np.asarray(gold), np.asarray(base), np.asarray(new)
    lost, gained = (base == gold) & (new != gold), (base != gold) & (new == gold)
    counts = {
        name: {
            "base_right_new_wrong": int(np.sum(lost & (gold == i))),
            "base_wrong_new_right": int(np.sum(gained & (gold == i))),
        }
        for i, name in enumerate(labels)
    }
    lines = [
        f"**Flipped tweets** ({int(np.sum(base != new))} predicted differently, "
        f"{int(lost.sum())} now wrong, {int(gained.sum())} now right):",
        "",
        "| gold | base right, new wrong | base wrong, new right |",
        "| --- | ---: | ---: |",
        *(f"| {name} | {c['base_right_new_wrong']} | {c['base_wrong_new_right']} |" for name, c in counts.items()),
        "",
    ]
    confidence = new_probs.max(axis=1) if new_probs is not None else None
    for title, members in (("now wrong", lost), ("now right", gained)):
        index = np.flatnonzero(members)
        if not len(index):
            continue
        if confidence is not None:  # the new model's surest flips first
            index = index[np.argsort(-confidence[index], kind="stable")]
        lines += [
            f"Most confident flips, {title}:",
            "",
            "| tweet | gold | base → new | confidence (new) | confidence (base) |",
            "| --- | --- | --- | ---: | ---: |",
        ]
        for i in index[:TOP_FLIPS]:
            new_conf = f"{new_probs[i].max():.2f}" if new_probs is not None else "–"
            base_conf = f"{base_probs[i].max():.2f}" if base_probs is not None else "–"
            lines.append(
                f"| {_cell(texts[i])} | {labels[gold[i]]} | {labels[base[i]]} → {labels[new[i]]} | "
                f"{new_conf} | {base_conf} |"
            )
        lines.append("")
    return lines, counts


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


def calibration_section(model: str, gold, base_probs, new_probs, base: str, out: Path) -> tuple[list[str], dict]:
    from src.scoring.significance import ECE_BINS, expected_calibration_error, reliability_bins

    result = {"bins": ECE_BINS, "ece_base": None, "ece_new": None}
    curves = {}
    for side, name, probabilities, style, marker in (
        ("base", base, base_probs, "--", "x"),
        ("new", "workspace", new_probs, "-", "o"),
    ):
        if probabilities is not None:
            result[f"ece_{side}"] = expected_calibration_error(probabilities, gold)
            curves[name] = (reliability_bins(probabilities, gold), result[f"ece_{side}"], style, marker)
    if not curves:
        return [], result
    plot_reliability(model, curves, out / f"reliability_{model}.png")
    ece = " → ".join(f"{result[f'ece_{side}']:.4f}" for side in ("base", "new") if result[f"ece_{side}"] is not None)
    lines = [
        f"**Calibration**: expected calibration error (15 equal-width bins of the top probability) {ece}"
        f"{'' if base_probs is not None else ' (new only: the base has no probabilities)'}.",
        "",
        f"![{model}: reliability diagram, {base} dashed, workspace solid](reliability_{model}.png)",
        "",
    ]
    return lines, result


def model_status(model: str, metrics_diff: dict, old_files, new_files, labels: list[str]) -> tuple[str, dict]:
    """ "changed" / "unchanged" / "new" / "missing", and the files read for it."""
    files = {}
    for key, pattern in (("curves", CURVES), ("confusion", CONFUSION), ("predictions", PREDICTIONS)):
        files[key] = (old_files.read(pattern.format(model=model)), new_files.read(pattern.format(model=model)))
    entries = [
        entry for path, rows in metrics_diff.items() if path.startswith(f"metrics/{model}/") for entry in rows.values()
    ]
    if not entries and files["predictions"][1] is None:
        return "missing", files
    if entries and all(entry.get("old") is None for entry in entries) and files["predictions"][0] is None:
        return "new", files
    changed = any(
        entry.get("old") is not None and entry.get("new") is not None and not same_values(entry["old"], entry["new"])
        for entry in entries
    )
    old, new = files["curves"]
    if old is not None and new is not None:
        try:
            changed |= not same_values(json.loads(old), json.loads(new))
        except ValueError:
            changed |= old != new
    for key in ("confusion", "predictions"):  # categories: the text is the value
        old, new = files[key]
        changed |= old is not None and new is not None and old.split() != new.split()
    if not changed:  # the same labels, but maybe other probabilities (compared where both sides have them)
        old, new = (read_probabilities(f, model, labels, None) for f in (old_files, new_files))
        changed = (
            old is not None
            and new is not None
            and (old.shape != new.shape or not np.allclose(old, new, rtol=0, atol=PROBABILITY_TOLERANCE))
        )
    return ("changed" if changed else "unchanged"), files


def compare_model(
    model: str, files: dict, metrics_diff: dict, old_files, new_files, labels: list[str], base: str, out: Path
) -> tuple[list[str], dict]:
    """The markdown section and report.json entry of one changed model."""
    from src.scoring.significance import RESAMPLES, mcnemar, paired_bootstrap, verdict

    table, _ = metrics_table(model, metrics_diff)
    lines = [f"## {model}: changed", "", table]
    entry = {"status": "changed", "metrics": {}, "notes": []}
    notes = entry["notes"]
    test = parse_test_split(new_files.read(TEST_SPLIT))
    base_test = parse_test_split(old_files.read(TEST_SPLIT))
    base_labels, new_labels = (parse_labels(text) for text in files["predictions"])
    if test is None or new_labels is None or len(new_labels) != len(test[1]):
        notes.append(
            f"The workspace has no test predictions of {model} that match {TEST_SPLIT}: "
            "run `dvc repro` first; no intervals."
        )
    elif base_labels is None:
        notes.append(
            f"The base's {PREDICTIONS.format(model=model)} could not be read at `{base}` "
            "(`dvc pull` at that revision fetches it): no intervals."
        )
    elif base_test is not None and base_test != test or len(base_labels) != len(new_labels):
        notes.append(f"The test set differs at `{base}` ({TEST_SPLIT}): the predictions are not paired, no intervals.")
    else:
        texts, gold = test
        if base_test is None:
            notes.append(
                f"{TEST_SPLIT} could not be read at `{base}`: paired on the assumption that the test set "
                "did not change (the same number of tweets)."
            )
        n = len(gold)
        bootstrap = paired_bootstrap(gold, base_labels, new_labels, labels, RESAMPLES)
        test_mcnemar = mcnemar(gold, base_labels, new_labels)
        for metric, figures in bootstrap.items():
            entry["metrics"][metric] = {
                **figures,
                "p_value": test_mcnemar["p_value"],
                "verdict": verdict(figures["interval"]),
            }
        entry.update(n=n, resamples=RESAMPLES, mcnemar=test_mcnemar)
        lines += statistics_section(model, entry, {"resamples": RESAMPLES, "n": n})
        base_probs, new_probs = (read_probabilities(f, model, labels, n) for f in (old_files, new_files))
        flips, entry["flipped"] = flipped_section(
            model, gold, base_labels, new_labels, texts, new_probs, base_probs, labels
        )
        lines += flips
        if base_probs is None:
            notes.append(
                f"The base has no {PROBABILITIES.format(model=model)} (made before the evaluate stage wrote "
                "probabilities): the intervals come from the predicted labels; calibration is shown for "
                "the new model only."
            )
        calibration, entry["calibration"] = calibration_section(model, gold, base_probs, new_probs, base, out)
        lines += calibration
    lines += [f"Note: {note}" for note in notes] + ([""] if notes else [])
    images = []
    old, new = files["curves"]
    if new is not None and old != new:
        plot_curves(model, json.loads(old) if old else None, json.loads(new), out / f"curves_{model}.png", base)
        images.append(
            f"![{model}: training curves, {base} dashed with crosses, workspace solid with dots](curves_{model}.png)"
        )
    old, new = files["confusion"]
    if new is not None and old != new:
        plot_confusion(model, old, new, out / f"confusion_{model}.png", labels, base)
        images.append(f"![{model}: test confusion matrix, {base} left, workspace right](confusion_{model}.png)")
    return lines + images + ([""] if images else []), entry


def summary_lines(models: dict) -> list[str]:
    """The verdicts, one line per model: the first lines of the pull-request comment."""
    lines = ["## Summary", ""]
    for model, entry in models.items():
        if entry["status"] != "changed":
            lines.append(f"- {model}: {entry['status']}")
        elif not entry["metrics"]:
            lines.append(f"- **{model}**: changed; no intervals (see its section)")
        else:
            verdicts = "; ".join(
                f"{METRIC_LABELS[m]} {_signed(e['change'])} {_interval(e['interval'])} **{e['verdict']}**"
                for m, e in entry["metrics"].items()
            )
            lines.append(f"- **{model}**: {verdicts}; McNemar p = {_p(entry['mcnemar']['p_value'])}")
    if any(entry.get("metrics") for entry in models.values()):
        lines += [
            "",
            "Changes are new - base on the test set with their 95% paired-bootstrap interval; a verdict is "
            "better or worse only when the whole interval is on one side of zero.",
        ]
    return lines + [""]


def read_manifest(out: Path) -> set[str]:
    """The file names the previous review wrote in ``out``: plain names directly inside it only."""
    try:
        names = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(names, list):
        return set()
    return {
        name
        for name in names
        if isinstance(name, str) and name not in {"", ".", "..", MANIFEST} and "/" not in name and "\\" not in name
    }


def publish(staging: Path, out: Path) -> None:
    """Move the new report's files from ``staging`` into ``out``, replacing only what a review wrote there."""
    previous = read_manifest(out)
    names = sorted(path.name for path in staging.iterdir())
    for name in names:
        target = out / name
        if (target.exists() or target.is_symlink()) and name not in previous:
            raise PipelineError(
                f"{target}: exists and was not written by src.review (not in {out / MANIFEST}); "
                "move it or choose another --out"
            )
    for name in sorted(previous - set(names)):  # the previous report's files this one does not have
        stale = out / name
        if stale.is_file() and not stale.is_symlink():
            stale.unlink()
    for name in names:
        os.replace(staging / name, out / name)
    write_json(out / MANIFEST, names)


def write_report(base: str, out: Path) -> Path:
    commit = resolve_rev(base)
    models_to_review = evaluate_models()
    labels = label_names()
    old_files, new_files = Revision(commit), Revision(None)
    params_problem = base_params_problem(old_files.read("params.yaml"))
    params_diff, metrics_diff = dvc_diffs(commit, with_params=params_problem is None)

    if out.exists() and not out.is_dir():
        raise PipelineError(f"--out {out}: a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".review-"))
    try:
        if params_problem is None:
            params_lines = ["## Params changed", "", params_table(params_diff)]
        else:
            print(f"warning: params.yaml at {base}: could not be parsed; params not compared", file=sys.stderr)
            params_lines = [
                "## Params changed",
                "",
                f"The base's params.yaml (at `{base}`, {commit[:7]}) could not "
                f"be parsed ({params_problem}); params are not compared.",
                "",
            ]
        sections, models = [], {}
        for model in models_to_review:
            status, files = model_status(model, metrics_diff, old_files, new_files, labels)
            if status != "changed":
                models[model] = {"status": status}
                continue
            lines, models[model] = compare_model(
                model, files, metrics_diff, old_files, new_files, labels, base, staging
            )
            sections += lines
        others = [f"{model}: {entry['status']}" for model, entry in models.items() if entry["status"] != "changed"]
        lines = [
            f"# Review: `{base}` ({commit[:7]}) against the workspace",
            "",
            *summary_lines(models),
            *params_lines,
            *sections,
        ]
        if others:
            lines += ["## Not changed", "", *(f"- {line}" for line in others), ""]
        (staging / "report.md").write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
        from src.scoring.significance import CONFIDENCE, RESAMPLES

        write_json(
            staging / "report.json",
            {
                "base": base,
                "base_commit": commit,
                "params": {
                    "base_parsed": params_problem is None,
                    "problem": params_problem,
                    "changed": params_diff if params_problem is None else None,
                },
                "bootstrap": {"resamples": RESAMPLES, "confidence": CONFIDENCE, "seed": 0},
                "models": models,
            },
        )
        publish(staging, out)
    finally:
        old_files.close()
        shutil.rmtree(staging, ignore_errors=True)
    return out / "report.md"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.review", description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git revision to compare against (default: main)")
    parser.add_argument(
        "--out",
        default="review",
        type=Path,
        help="directory for report.md, report.json and their PNGs (only files a review wrote are replaced)",
    )
    args = parser.parse_args(argv)
    with pipeline_errors_exit():
        print(write_report(args.base, args.out))


if __name__ == "__main__":
    main()

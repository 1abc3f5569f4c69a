"""The report's markdown: metric and params tables, the statistics in words, flipped tweets, calibration, summary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from src.review.plots import plot_reliability

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


TOP_FLIPS = 5  # flipped tweets shown per direction


SIGNIFICANCE = 0.05
# what every interval in the report means, said where the verdicts are
INTERVALS_COVER = (
    "Changes are new - base on the test set with their 95% paired-bootstrap interval; a verdict is better or "
    "worse only when the whole interval is on one side of zero. The intervals cover test-set sampling only, "
    "not training-seed variance: the same change retrained with another seed can move a figure further."
)


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


MAX_CELL_CHARS = 200


def md_code(value: object) -> str:
    """``value`` as an inline code span that Markdown (and a pull-request comment) shows as plain text:
    no link, image, heading, table cell break or ``@`` mention; newlines shown as ``\\n``, long values cut."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n").replace("|", "\\|")
    text = text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 3] + "..."
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}" if fence != "`" or text.startswith(("`", " ")) else f"`{text}`"


def _param_cell(entry: dict, side: str) -> str:
    """A number as DVC gives it; text, lists and mappings (anything a user can put markdown in) as code."""
    if side not in entry:
        return "–"
    value = entry[side]
    return str(value) if isinstance(value, (int, float)) or value is None else md_code(value)


def params_table(params_diff: dict) -> str:
    rows = [
        f"| {md_code(name)} | {_param_cell(entry, 'old')} | {_param_cell(entry, 'new')} |"
        for path, entries in sorted(params_diff.items())
        for name, entry in sorted(entries.items())
    ]
    if not rows:
        return "No params changed.\n"
    return "| param | base | new |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n"


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def _interval(interval) -> str:
    return f"[{_signed(interval[0])}, {_signed(interval[1])}]"


def _verdict(entry: dict) -> str:
    """One metric's change, its interval and the verdict, as the summary and the experiments table show it."""
    return f"{_signed(entry['change'])} {_interval(entry['interval'])} **{entry['verdict']}**"


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
        "| metric | base | new | change | 95% interval | verdict |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    words = []
    for metric, entry in stats["metrics"].items():
        name = METRIC_LABELS[metric]
        rows.append(
            f"| test {name} | {entry['base']:.4f} | {entry['new']:.4f} | {_signed(entry['change'])} | "
            f"{_interval(entry['interval'])} | {entry['verdict']} |"
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
        f"For accuracy, McNemar's exact test on the {mc['base_right_new_wrong'] + mc['base_wrong_new_right']} "
        f"tweets exactly one model gets right ({mc['base_right_new_wrong']} lost, {mc['base_wrong_new_right']} "
        f"gained): p = {_p(mc['p_value'])}, {'' if significant else 'not '}significant at 5%."
    )
    accuracy = stats["metrics"].get("accuracy")
    if accuracy and significant == (accuracy["verdict"] == "within noise"):
        words.append("The two tests disagree on accuracy: treat the change as borderline.")
    return [
        f"**Is the change real?** Paired bootstrap over {test['resamples']:,} resamples of the {test['n']:,} "
        "test tweets (seeded); for accuracy also McNemar's exact test on the same tweets.",
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


def calibration_section(
    model: str, gold, base_probs, new_probs, base: str, out: Path, new_name: str = "workspace"
) -> tuple[list[str], dict]:
    """Expected calibration error before and after, and the reliability diagram's PNG."""
    from src.scoring.significance import ECE_BINS, expected_calibration_error, reliability_bins

    result = {"bins": ECE_BINS, "ece_base": None, "ece_new": None}
    curves = {}
    for side, name, probabilities, style, marker in (
        ("base", base, base_probs, "--", "x"),
        ("new", new_name, new_probs, "-", "o"),
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
        f"![{model}: reliability diagram, {base} dashed, {new_name} solid](reliability_{model}.png)",
        "",
    ]
    return lines, result


def summary_lines(models: dict) -> list[str]:
    """The verdicts, one line per model: the first lines of the pull-request comment."""
    lines = ["## Summary", ""]
    for model, entry in models.items():
        if entry["status"] != "changed":
            lines.append(f"- {model}: {entry['status']}")
        elif not entry["metrics"]:
            lines.append(f"- **{model}**: changed; no intervals (see its section)")
        else:
            verdicts = "; ".join(f"{METRIC_LABELS[m]} {_verdict(e)}" for m, e in entry["metrics"].items())
            lines.append(f"- **{model}**: {verdicts}; accuracy's McNemar p = {_p(entry['mcnemar']['p_value'])}")
    if any(entry.get("metrics") for entry in models.values()):
        lines += ["", INTERVALS_COVER]
    return lines + [""]


def verdict_cells(rows: list[tuple[str, dict]]) -> list[str]:
    """One model's verdicts across experiments: a table, a row per experiment."""
    lines = [
        "| experiment | macro-recall | F1^PN | accuracy | accuracy's McNemar p |",
        "| --- | --- | --- | --- | ---: |",
    ]
    for name, entry in rows:
        if entry["status"] != "changed":
            lines.append(f"| {name} | {entry['status']} | | | |")
            continue
        if not entry.get("metrics"):
            lines.append(f"| {name} | changed; no intervals (see its section) | | | |")
            continue
        cells = [_verdict(e) for e in (entry["metrics"][m] for m in ("macro_recall", "f1_pn", "accuracy"))]
        lines.append(f"| {name} | {' | '.join(cells)} | {_p(entry['mcnemar']['p_value'])} |")
    return lines + ["", INTERVALS_COVER]

"""Writing the report: one changed model's section, then the whole report.md and report.json; the command line."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from src.core.atomic import write_json
from src.core.cli import path_error_message, run_command
from src.core.errors import PipelineError
from src.review.changes import model_status
from src.review.plots import plot_confusion, plot_curves
from src.review.publish import publish
from src.review.revisions import (
    PREDICTIONS,
    PROBABILITIES,
    TEST_SPLIT,
    Revision,
    base_params_problem,
    evaluate_models,
    figures_diff,
    label_names,
    params_diff,
    parse_labels,
    parse_test_split,
    probabilities_of_both,
    resolve_experiment,
    resolve_rev,
)
from src.review.sections import (
    calibration_section,
    flipped_section,
    metrics_table,
    params_table,
    statistics_section,
    summary_lines,
    verdict_cells,
)


def compare_model(
    model: str,
    files: dict,
    figures: dict,
    old_files,
    new_files,
    labels: list[str],
    base: str,
    out: Path,
    new_name: str = "workspace",
) -> tuple[list[str], dict]:
    """The markdown section and report.json entry of one changed model (``new_name``: what is compared to base)."""
    from src.scoring.significance import RESAMPLES, mcnemar, paired_bootstrap, verdict

    table, _ = metrics_table(model, figures)
    lines = [f"## {model}: changed", "", table]
    entry = {"status": "changed", "metrics": {}, "notes": []}
    notes = entry["notes"]
    test = parse_test_split(new_files.read(TEST_SPLIT))
    base_test = parse_test_split(old_files.read(TEST_SPLIT))
    base_labels, new_labels = (parse_labels(text, len(labels)) for text in files["predictions"])
    if test is None or new_labels is None or len(new_labels) != len(test[1]):
        notes.append(
            f"The {new_name} has no test predictions of {model} that match {TEST_SPLIT}: "
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
        probability_notes: list[str] = []
        bootstrap = paired_bootstrap(gold, base_labels, new_labels, labels, RESAMPLES)
        test_mcnemar = mcnemar(gold, base_labels, new_labels)
        for metric, interval in bootstrap.items():
            entry["metrics"][metric] = {**interval, "verdict": verdict(interval["interval"])}
        # McNemar's test is a test of accuracy: reported once, beside it
        entry["metrics"]["accuracy"]["p_value"] = test_mcnemar["p_value"]
        entry.update(n=n, resamples=RESAMPLES, mcnemar=test_mcnemar)
        lines += statistics_section(model, entry, {"resamples": RESAMPLES, "n": n})
        base_probs, new_probs = probabilities_of_both(old_files, new_files, model, labels, n, probability_notes)
        flips, entry["flipped"] = flipped_section(
            model, gold, base_labels, new_labels, texts, new_probs, base_probs, labels
        )
        lines += flips
        notes += probability_notes
        if base_probs is None and not probability_notes:
            notes.append(
                f"The base has no {PROBABILITIES.format(model=model)} (made before the evaluate stage wrote "
                "probabilities): the intervals come from the predicted labels; calibration is shown for "
                f"the {new_name} only."
            )
        calibration, entry["calibration"] = calibration_section(model, gold, base_probs, new_probs, base, out, new_name)
        lines += calibration
    images = []
    old, new = files["curves"]
    if new is not None and old != new:
        plot_curves(model, old, new, out / f"curves_{model}.png", base, new_name)
        images.append(f"![{model}: training curves, {base} blue, {new_name} orange](curves_{model}.png)")
    old, new = files["confusion"]
    if new is not None and old != new:
        try:
            plot_confusion(model, old, new, out / f"confusion_{model}.png", labels, base, new_name)
            images.append(f"![{model}: test confusion matrix, {base} left, {new_name} right](confusion_{model}.png)")
        except ValueError as exc:  # a class outside data.label_names, or a damaged row
            notes.append(f"plots/confusion/{model}.csv: {exc}; no confusion matrix")
    lines += [f"Note: {note}" for note in notes] + ([""] if notes else [])
    return lines + images + ([""] if images else []), entry


def review_models(old_files, new_files, labels: list[str], base: str, staging: Path, new_name: str):
    """Every model of the evaluate foreach, base against ``new_files``: (markdown sections, report.json entries)."""
    sections, models = [], {}
    for model in evaluate_models():
        notes: list[str] = []
        figures = figures_diff(model, old_files, new_files, notes)
        status, files = model_status(model, figures, old_files, new_files, labels, notes)
        if status != "changed":
            models[model] = {"status": status, **({"notes": notes} if notes else {})}
            continue
        lines, models[model] = compare_model(
            model, files, figures, old_files, new_files, labels, base, staging, new_name
        )
        models[model]["notes"] = notes + models[model]["notes"]
        if notes:
            lines += [f"Note: {note}" for note in notes] + [""]
        sections += lines
    return sections, models


def params_section(base: str, commit: str, problem: str | None, diff: dict) -> list[str]:
    if problem is None:
        return ["## Params changed", "", params_table(diff)]
    print(f"warning: params.yaml at {base}: could not be parsed; params not compared", file=sys.stderr)
    return [
        "## Params changed",
        "",
        f"The base's params.yaml (at `{base}`, {commit[:7]}) could not be parsed ({problem}); params are not compared.",
        "",
    ]


def write_report(base: str, out: Path, experiments: list[str] | None = None) -> Path:
    """report.md, report.json and the PNGs in ``out``: the workspace (or each experiment) against ``base``."""
    from src.scoring.significance import CONFIDENCE, RESAMPLES

    commit = resolve_rev(base)
    evaluate_models()  # dvc.yaml names the models: refused before anything is written
    labels = label_names()
    targets = [(name, resolve_experiment(name)) for name in experiments or []] or [("workspace", None)]
    if out.exists() and not out.is_dir():
        raise PipelineError(f"--out {out}: a file, not a directory")
    inside = Path(os.path.abspath(out)).is_relative_to(Path.cwd())
    if inside and not out.resolve().is_relative_to(Path.cwd().resolve()):  # a committed link: review -> /elsewhere
        raise PipelineError(
            f"--out {out}: a symbolic link to {out.resolve()}, outside the repository; refusing to write there"
        )
    try:  # the folder for the report, and a staging folder in it
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out, prefix=".review-"))
    except OSError as exc:  # a file where a folder belongs, no permission, a read-only file system
        reason = path_error_message(exc) or f"{exc.strerror or exc}"
        raise PipelineError(f"--out {out}: cannot write the report there ({reason})") from None
    old_files = Revision(commit)
    try:
        params_problem = base_params_problem(old_files.read("params.yaml"))
        results = {}
        for name, rev in targets:
            new_files = Revision(rev)
            # one directory of PNGs per experiment; the workspace's sit beside report.md
            pngs = staging if rev is None else staging / name
            pngs.mkdir(exist_ok=True)
            try:
                sections, models = review_models(old_files, new_files, labels, base, pngs, name)
            finally:
                new_files.close()
            diff = params_diff(commit, rev) if params_problem is None else None
            results[name] = {"commit": rev, "sections": sections, "models": models, "params": diff}
        if experiments:
            lines = experiments_report(base, commit, results, params_problem)
        else:
            result = results["workspace"]
            models = result["models"]
            # a model that did not change still shows what could not be read for it (a damaged base file)
            others = [
                f"{model}: {entry['status']}" + "".join(f"\n  - Note: {note}" for note in entry.get("notes", []))
                for model, entry in models.items()
                if entry["status"] != "changed"
            ]
            lines = [
                f"# Review: `{base}` ({commit[:7]}) against the workspace",
                "",
                *summary_lines(models),
                *params_section(base, commit, params_problem, result["params"]),
                *result["sections"],
            ]
            if others:
                lines += ["## Not changed", "", *(f"- {line}" for line in others), ""]
        (staging / "report.md").write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
        report = {
            "base": base,
            "base_commit": commit,
            "params": {
                "base_parsed": params_problem is None,
                "problem": params_problem,
                "changed": results[targets[0][0]]["params"] if not experiments else None,
            },
            "bootstrap": {"resamples": RESAMPLES, "confidence": CONFIDENCE, "seed": 0},
        }
        if experiments:
            report["experiments"] = {
                name: {"commit": r["commit"], "params": r["params"], "models": r["models"]}
                for name, r in results.items()
            }
        else:
            report["models"] = results["workspace"]["models"]
        write_json(staging / "report.json", report)
        for name in experiments or []:  # an experiment's PNGs, named by it, beside report.md
            for png in sorted((staging / name).iterdir()):
                os.replace(png, staging / f"{name}_{png.name}")
            (staging / name).rmdir()
        publish(staging, out)
    finally:
        old_files.close()
        shutil.rmtree(staging, ignore_errors=True)
    return out / "report.md"


def experiments_report(base: str, commit: str, results: dict, params_problem: str | None) -> list[str]:
    """Several experiments against one base: per model, one table of verdicts (a row per experiment)."""
    names = list(results)
    lines = [f"# Review: {len(names)} experiments against `{base}` ({commit[:7]})", ""]
    lines += ["## Verdicts per model", ""]
    for model in evaluate_models():
        rows = [(name, results[name]["models"][model]) for name in names]
        if all(entry["status"] != "changed" for _, entry in rows):
            lines.append(f"- {model}: not changed by any experiment")
            continue
        lines += ["", f"### {model}", "", *verdict_cells(rows), ""]
    lines += [""]
    for name in names:
        result = results[name]
        params = params_section(base, commit, params_problem, result["params"])
        params[0] = f"## {name}: params changed"
        sections = [
            line.replace("](", f"]({name}_", 1) if line.startswith("![") else line for line in result["sections"]
        ]
        lines += [*params, *(f"#{line}" if line.startswith("## ") else line for line in sections)]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.review", description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git revision to compare against (default: main)")
    parser.add_argument(
        "--exp",
        nargs="+",
        metavar="EXPERIMENT",
        help="compare these DVC experiments (names from `dvc exp show`) against --base instead of the workspace: "
        "one table of verdicts per model, a row per experiment",
    )
    parser.add_argument(
        "--out",
        default="review",
        type=Path,
        help="directory for report.md, report.json and their PNGs (only files a review wrote are replaced)",
    )
    args = parser.parse_args(argv)
    # as the stages: one error line, Ctrl-C exit 130 and SIGTERM 143 with one line (no traceback)
    run_command(lambda: print(write_report(args.base, args.out, args.exp)))

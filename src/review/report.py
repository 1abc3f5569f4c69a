"""Writing the report: one changed model's section, then the whole report.md and report.json; the command line."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from src.core.atomic import write_json
from src.core.cli import pipeline_errors_exit
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
    dvc_diffs,
    evaluate_models,
    label_names,
    parse_labels,
    parse_test_split,
    read_probabilities,
    resolve_rev,
)
from src.review.sections import (
    calibration_section,
    flipped_section,
    metrics_table,
    params_table,
    statistics_section,
    summary_lines,
)


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

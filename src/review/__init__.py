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

The package, one reason to change per module: ``revisions`` (git and DVC reading), ``changes``
(change detection), ``sections`` (the markdown and the statistics in words), ``plots`` (the PNGs,
drawn from plain data), ``publish`` (replacing a previous report), ``report`` (the whole report and
the command line).
"""

from src.review.changes import same_values
from src.review.report import main, write_report
from src.review.revisions import evaluate_models
from src.review.sections import format_change, metrics_table, params_table

__all__ = ["evaluate_models", "format_change", "main", "metrics_table", "params_table", "same_values", "write_report"]

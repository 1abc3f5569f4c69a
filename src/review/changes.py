"""Change detection: figures compared within a tolerance, and whether a model changed between two revisions."""

from __future__ import annotations

import math

import numpy as np

from src.review.revisions import CONFUSION, PREDICTIONS, probabilities_of_both, read_curves

RELATIVE_TOLERANCE = 1e-6  # values closer than this are the same figure (a re-run's last-digit noise)
PROBABILITY_TOLERANCE = 2e-6  # probabilities are written with 6 decimals


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


def model_status(
    model: str, figures: dict, old_files, new_files, labels: list[str], notes: list[str] | None = None
) -> tuple[str, dict]:
    """ "changed" / "unchanged" / "new" / "missing", and the files read for it.

    ``figures``: the model's figures at both revisions (src.review.revisions.figures_diff); ``notes``
    gets a line for each damaged file."""
    files = {"curves": (read_curves(old_files, model, notes, "base"), read_curves(new_files, model, notes, "new"))}
    for key, pattern in (("confusion", CONFUSION), ("predictions", PREDICTIONS)):
        files[key] = (old_files.read(pattern.format(model=model)), new_files.read(pattern.format(model=model)))
    entries = [entry for rows in figures.values() for entry in rows.values()]
    if not entries and files["predictions"][1] is None:
        return "missing", files
    if entries and all(entry.get("old") is None for entry in entries) and files["predictions"][0] is None:
        return "new", files
    changed = any(
        entry.get("old") is not None and entry.get("new") is not None and not same_values(entry["old"], entry["new"])
        for entry in entries
    )
    old, new = files["curves"]
    changed |= old is not None and new is not None and not same_values(old, new)
    for key in ("confusion", "predictions"):  # categories: the text is the value
        old, new = files[key]
        changed |= old is not None and new is not None and old.split() != new.split()
    if not changed:  # the same labels, but maybe other probabilities (compared where both sides have them)
        old, new = probabilities_of_both(old_files, new_files, model, labels, None, notes)
        changed = (
            old is not None
            and new is not None
            and (old.shape != new.shape or not np.allclose(old, new, rtol=0, atol=PROBABILITY_TOLERANCE))
        )
    return ("changed" if changed else "unchanged"), files

"""The ensemble: a weighted geometric mean of the trained models' class probabilities, weights fitted on validation.

Each member's per-tweet probabilities come from its evaluate stage (``predictions/<model>/probs_val.csv``
and ``probs_test.csv``). The weights are the point of a simplex grid (step ``grid_step``) with the
highest validation macro recall, TweetEval's metric; ties go to the weights nearest to equal, the
choice that assumes least. Only validation is read to choose: the test probabilities are combined
with the chosen weights afterwards. A 5-fold cross-validated estimate on validation (weights fitted
on four folds, scored on the fifth) says how much of the in-sample figure is the fit itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import recall_score
from sklearn.model_selection import StratifiedKFold

EPS = 1e-12  # probabilities of exactly 0 stay finite in the log


def combine(probabilities: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted geometric mean of the members' probabilities, renormalised per tweet."""
    log_mix = sum(w * np.log(np.clip(p, EPS, 1.0)) for p, w in zip(probabilities, weights))
    log_mix -= log_mix.max(axis=1, keepdims=True)
    mix = np.exp(log_mix)
    return mix / mix.sum(axis=1, keepdims=True)


def macro_recall(labels: Sequence[int], probabilities: np.ndarray) -> float:
    return float(recall_score(labels, probabilities.argmax(axis=1), average="macro", zero_division=0))


def simplex_grid(n_members: int, step: float) -> list[tuple[float, ...]]:
    """Every weight vector of ``n_members`` non-negative multiples of ``step`` that sums to 1."""
    units = round(1 / step)
    points = [c for c in itertools.product(range(units + 1), repeat=n_members) if sum(c) == units]
    return [tuple(c_i / units for c_i in c) for c in points]


def fit_weights(labels: Sequence[int], probabilities: Sequence[np.ndarray], step: float) -> tuple[float, ...]:
    """The grid point with the best macro recall on ``labels``; ties: nearest to equal weights, then the
    first in grid order (deterministic)."""
    equal = np.full(len(probabilities), 1 / len(probabilities))
    best, best_key = None, None
    for weights in simplex_grid(len(probabilities), step):
        key = (
            round(macro_recall(labels, combine(probabilities, weights)), 10),
            -round(float(np.abs(np.asarray(weights) - equal).sum()), 10),
        )
        if best_key is None or key > best_key:
            best, best_key = weights, key
    return best


def cross_validated_macro_recall(
    labels: Sequence[int], probabilities: Sequence[np.ndarray], step: float, seed: int, folds: int = 5
) -> float | None:
    """Macro recall of out-of-fold predictions: each fold combined with weights fitted on the others.
    Fewer folds when a class has fewer than ``folds`` tweets; None when one has fewer than two."""
    labels = np.asarray(labels)
    folds = min(folds, int(np.bincount(labels).min()))
    if folds < 2:
        return None
    predicted = np.empty(len(labels), dtype=int)
    for fit_idx, score_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels):
        weights = fit_weights(labels[fit_idx], [p[fit_idx] for p in probabilities], step)
        predicted[score_idx] = combine([p[score_idx] for p in probabilities], weights).argmax(axis=1)
    return float(recall_score(labels, predicted, average="macro", zero_division=0))

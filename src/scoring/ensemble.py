"""The ensemble: a weighted geometric mean of the trained models' class probabilities, weights fitted on validation.

Each member's per-tweet probabilities come from its evaluate stage (``predictions/<model>/probs_val.csv``
and ``probs_test.csv``). The weights are the point of a simplex grid (step ``grid_step``) with the
highest validation macro recall, TweetEval's metric; ties go to the weights nearest to equal, the
choice that assumes least. Only validation is read to choose: the test probabilities are combined
with the chosen weights afterwards. A 5-fold cross-validated estimate on validation (weights fitted
on four folds, scored on the fifth) says how much of the in-sample figure is the fit itself.

Class-bias offsets (``ensemble.class_bias``): after the weights, one additive offset per class on the
combination's log-probabilities, fitted on validation for macro recall. Macro recall weighs each
class equally whatever its share, so a combination that under-predicts a rare class gains from a
shift towards it that no weighting of the members can give. The offsets are fitted by coordinate
ascent over a grid (``BIAS_GRID``), the first class fixed at 0 (only differences matter to the
argmax); ties go to the smaller offset, so without a gain they stay 0. The cross-validated estimate
refits weights and offsets on each fold's remainder, the same folds with and without offsets.

A member may be several models joined by ``+`` (``bert+bert_seed43``): their probabilities are
averaged with equal weights first (``member_models``, ``average``) and the group gets one weight.
Seeds of one recipe differ by noise, so fitting a weight to each lets the grid follow validation's
noise; a fixed equal average keeps what the extra seeds add without the extra weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import recall_score
from sklearn.model_selection import StratifiedKFold
from tqdm import tqdm

from src.core.errors import ParamsError
from src.scoring.probabilities import read_probabilities

EPS = 1e-12  # probabilities of exactly 0 stay finite in the log
BIAS_GRID = np.round(np.arange(-1.5, 1.5001, 0.05), 2)  # log-probability offsets tried per class
BIAS_ROUNDS = 5  # coordinate-ascent passes over the classes (it settles in two or three)
# seven members at step 0.05 (230,230 points) is the largest grid allowed; eight (888,030) took minutes
MAX_GRID_POINTS = 250_000
CHUNK = 256  # grid points scored at once by fit_weights (256 x 2,000 tweets x 3 classes: 12 MB)
GROUP = "+"  # joins the models of one member: "bert+bert_seed43"


def member_models(member: str) -> list[str]:
    """The evaluated models a member is made of: ``"bert+bert_seed43"`` -> ``["bert", "bert_seed43"]``."""
    return member.split(GROUP)


def models_of(members: Sequence[str]) -> list[str]:
    """Every evaluated model the members name, in order: ``["bert+bert_seed43", "tfidf"]`` -> three."""
    return [model for member in members for model in member_models(member)]


def read_member(member: str, file_name: str, label_names: list[str], n: int, directory: Path) -> np.ndarray:
    """A member's probabilities: its models' ``directory/<model>/<file_name>`` (evaluate's), averaged."""
    return average(
        [read_probabilities(directory / model / file_name, label_names, n) for model in member_models(member)]
    )


def average(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """One group member's probabilities: its models combined with equal weights (a model alone: itself)."""
    if len(probabilities) == 1:
        return probabilities[0]
    return combine(probabilities, [1 / len(probabilities)] * len(probabilities))


def combine(probabilities: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted geometric mean of the members' probabilities, renormalised per tweet."""
    log_mix = sum(w * np.log(np.clip(p, EPS, 1.0)) for p, w in zip(probabilities, weights))
    log_mix -= log_mix.max(axis=1, keepdims=True)
    mix = np.exp(log_mix)
    return mix / mix.sum(axis=1, keepdims=True)


def macro_recall(labels: Sequence[int], probabilities: np.ndarray) -> float:
    return float(recall_score(labels, probabilities.argmax(axis=1), average="macro", zero_division=0))


def _macro_recall_of(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """recall_score(labels, predicted, average="macro", zero_division=0) without its overhead (the
    searches call it thousands of times): the mean over classes in either, 0 for one never in ``labels``."""
    support = np.bincount(labels, minlength=n_classes)
    hits = np.bincount(labels[predicted == labels], minlength=n_classes)
    present = (support > 0) | (np.bincount(predicted, minlength=n_classes) > 0)
    return float((hits[present] / np.maximum(support[present], 1)).mean())


def apply_bias(probabilities: np.ndarray, offsets: Sequence[float]) -> np.ndarray:
    """Probabilities shifted by per-class log offsets, renormalised per tweet (still probabilities)."""
    log_p = np.log(np.clip(probabilities, EPS, 1.0)) + np.asarray(offsets, dtype=float)
    log_p -= log_p.max(axis=1, keepdims=True)
    shifted = np.exp(log_p)
    return shifted / shifted.sum(axis=1, keepdims=True)


def fit_class_bias(labels: Sequence[int], probabilities: np.ndarray) -> tuple[float, ...]:
    """Per-class log offsets (first class 0) that maximise macro recall of ``probabilities`` on ``labels``.

    Coordinate ascent: each class's offset in turn takes the BIAS_GRID value with the best macro
    recall given the others, ties to the smallest absolute offset; passes repeat until none moves."""
    labels = np.asarray(labels)
    log_p = np.log(np.clip(probabilities, EPS, 1.0))
    n_classes = log_p.shape[1]
    offsets = np.zeros(n_classes)
    by_size = BIAS_GRID[np.argsort(np.abs(BIAS_GRID), kind="stable")]  # 0, -0.05, 0.05, ...: ties to the smaller
    for _ in range(BIAS_ROUNDS):
        moved = False
        for k in range(1, n_classes):
            scores = []
            for value in by_size:
                offsets_k = offsets.copy()
                offsets_k[k] = value
                scores.append(_macro_recall_of(labels, (log_p + offsets_k).argmax(axis=1), n_classes))
            best = by_size[int(np.argmax(np.round(scores, 10)))]
            current = _macro_recall_of(labels, (log_p + offsets).argmax(axis=1), n_classes)
            if round(max(scores), 10) > round(current, 10) and best != offsets[k]:
                offsets[k], moved = best, True
        if not moved:
            break
    return tuple(float(o) for o in offsets)


def check_grid(n_members: int, step: float) -> None:
    """A ParamsError naming ensemble.members and ensemble.grid_step unless their weight grid has at most
    MAX_GRID_POINTS points: its size grows as C(1/step + members - 1, members - 1), the cost of fitting."""
    points = math.comb(round(1 / step) + n_members - 1, n_members - 1)
    if points > MAX_GRID_POINTS:
        raise ParamsError(
            f"params.yaml: ensemble.members ({n_members} members) with ensemble.grid_step = {step}: a weight grid "
            f"of {points:,} points; expected at most {MAX_GRID_POINTS:,} (fewer members, or a larger grid_step)"
        )


def simplex_grid(n_members: int, step: float) -> list[tuple[float, ...]]:
    """Every weight vector of ``n_members`` non-negative multiples of ``step`` that sums to 1, in
    lexicographic order (53,130 points for six members at step 0.05)."""
    check_grid(n_members, step)
    units = round(1 / step)

    def compositions(parts: int, total: int):
        if parts == 1:
            yield (total,)
            return
        for first in range(total + 1):
            for rest in compositions(parts - 1, total - first):
                yield (first, *rest)

    return [tuple(c_i / units for c_i in c) for c in compositions(n_members, units)]


def fit_weights(labels: Sequence[int], probabilities: Sequence[np.ndarray], step: float) -> tuple[float, ...]:
    """The grid point with the best macro recall on ``labels``; ties: nearest to equal weights, then the
    first in grid order (deterministic)."""
    grid = np.asarray(simplex_grid(len(probabilities), step))
    labels = np.asarray(labels)
    log_p = np.stack([np.log(np.clip(p, EPS, 1.0)) for p in probabilities])  # member, tweet, class
    n_classes = log_p.shape[2]
    is_class = labels[:, None] == np.arange(n_classes)  # tweet, class
    support = is_class.sum(axis=0)
    recalls = []
    # grid points in chunks, each scored at once (argmax of the weighted log mix = argmax of the renormalised
    # mix); a bar on a terminal only (disable=None): logs and `dvc repro` output piped to a file stay quiet
    for start in tqdm(range(0, len(grid), CHUNK), desc="ensemble weights", leave=False, disable=None):
        predicted = np.einsum("gm,mnc->gnc", grid[start : start + CHUNK], log_p).argmax(axis=2)
        predicted_as = predicted[:, :, None] == np.arange(n_classes)  # point, tweet, class
        hits = (predicted_as & is_class).sum(axis=1)
        present = (support > 0) | predicted_as.any(axis=1)  # as _macro_recall_of: classes in either
        recalls.append((hits / np.maximum(support, 1) * present).sum(axis=1) / present.sum(axis=1))
    recall = np.round(np.concatenate(recalls), 10)
    nearness = -np.round(np.abs(grid - 1 / len(probabilities)).sum(axis=1), 10)
    best = np.flatnonzero(recall == recall.max())
    best = best[nearness[best] == nearness[best].max()]
    return tuple(float(w) for w in grid[best[0]])


def cross_validated_macro_recall(
    labels: Sequence[int],
    probabilities: Sequence[np.ndarray],
    step: float,
    seed: int,
    folds: int = 5,
    class_bias: bool = False,
) -> float | None:
    """Macro recall of out-of-fold predictions: each fold combined with weights (and, with
    ``class_bias``, offsets) fitted on the others. The folds depend on ``labels`` and ``seed`` only.
    Fewer folds when a class has fewer than ``folds`` tweets; None when one has fewer than two."""
    labels = np.asarray(labels)
    folds = min(folds, int(np.bincount(labels).min()))
    if folds < 2:
        return None
    predicted = np.empty(len(labels), dtype=int)
    for fit_idx, score_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels):
        weights = fit_weights(labels[fit_idx], [p[fit_idx] for p in probabilities], step)
        combined = combine([p[score_idx] for p in probabilities], weights)
        if class_bias:
            offsets = fit_class_bias(labels[fit_idx], combine([p[fit_idx] for p in probabilities], weights))
            combined = apply_bias(combined, offsets)
        predicted[score_idx] = combined.argmax(axis=1)
    return float(recall_score(labels, predicted, average="macro", zero_division=0))

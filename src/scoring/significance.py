"""Whether a change in test scores is real: paired bootstrap intervals, McNemar's exact test, calibration.

Two models' predictions on the same test tweets are paired: each tweet is one draw, scored by both.

- ``paired_bootstrap``: resample the test tweets with replacement, score both models on each resample,
  and take the 2.5th and 97.5th percentiles of the change (new - base) as the 95% interval. A resample
  only changes how many tweets of each (gold, base prediction, new prediction) combination it holds,
  so each one is drawn directly as those K^3 counts (a multinomial draw with the observed shares):
  the same distribution as drawing n tweet indices, at 27 numbers per resample instead of n.
- ``mcnemar``: the exact two-sided binomial test on the discordant tweets (one model right, the other
  wrong); it tests accuracy only.
- ``verdict``: better or worse when the interval is all above or all below zero, else within noise.
- ``expected_calibration_error``: the gap between confidence (the top probability) and accuracy,
  averaged over 15 equal-width confidence bins weighted by their tweets (Guo et al., 2017).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import binomtest

METRICS = ("macro_recall", "f1_pn", "accuracy")  # what the intervals are for, as src/scoring/metrics.py computes them
RESAMPLES = 2000
CONFIDENCE = 0.95
ECE_BINS = 15


def scores_from_confusion(confusion: np.ndarray, label_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Accuracy, macro recall and F1^PN of confusion matrices (..., K, K; rows gold, columns predicted).

    Vectorised over leading axes; a class without tweets or predictions scores 0 (scikit-learn's
    zero_division=0), every class counted in the macro average."""
    confusion = np.asarray(confusion, dtype=np.float64)
    correct = np.diagonal(confusion, axis1=-2, axis2=-1)
    gold, predicted = confusion.sum(axis=-1), confusion.sum(axis=-2)
    total = gold.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(gold > 0, correct / gold, 0.0)
        f1 = np.where(gold + predicted > 0, 2 * correct / (gold + predicted), 0.0)
        scores = {
            "macro_recall": recall.mean(axis=-1),
            "accuracy": np.where(total > 0, correct.sum(axis=-1) / total, 0.0),
        }
    if "positive" in label_names and "negative" in label_names:
        scores["f1_pn"] = (
            f1[..., list(label_names).index("positive")] + f1[..., list(label_names).index("negative")]
        ) / 2
    return scores


def _confusions(counts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Base and new confusion matrices from counts over (gold, base, new) combinations (..., K^3)."""
    cube = counts.reshape(*counts.shape[:-1], k, k, k)
    return cube.sum(axis=-1), cube.sum(axis=-2)


def paired_bootstrap(
    gold: Sequence[int],
    base: Sequence[int],
    new: Sequence[int],
    label_names: Sequence[str],
    resamples: int = RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> dict:
    """Per metric: base, new, change (new - base) and the percentile interval of the change, [low, high]."""
    gold, base, new = (np.asarray(a, dtype=np.int64) for a in (gold, base, new))
    if not len(gold) == len(base) == len(new) or len(gold) == 0:
        raise ValueError(f"paired predictions of unequal or zero length: {len(gold)}, {len(base)}, {len(new)}")
    k = len(label_names)
    observed = np.bincount((gold * k + base) * k + new, minlength=k**3)
    draws = np.random.default_rng(seed).multinomial(len(gold), observed / len(gold), size=resamples)
    point = {
        side: scores_from_confusion(matrix, label_names)
        for side, matrix in zip(("base", "new"), _confusions(observed, k))
    }
    sampled = [scores_from_confusion(matrix, label_names) for matrix in _confusions(draws, k)]
    tail = (1 - confidence) / 2 * 100
    result = {}
    for metric in METRICS:
        if metric not in point["new"]:
            continue
        changes = sampled[1][metric] - sampled[0][metric]
        low, high = np.percentile(changes, [tail, 100 - tail])
        result[metric] = {
            "base": float(point["base"][metric]),
            "new": float(point["new"][metric]),
            "change": float(point["new"][metric] - point["base"][metric]),
            "interval": [float(low), float(high)],
        }
    return result


def mcnemar(gold: Sequence[int], base: Sequence[int], new: Sequence[int]) -> dict:
    """McNemar's exact test: among tweets exactly one model gets right, is each equally likely to be it?"""
    gold, base, new = (np.asarray(a) for a in (gold, base, new))
    base_right, new_right = base == gold, new == gold
    lost, gained = int(np.sum(base_right & ~new_right)), int(np.sum(~base_right & new_right))
    p_value = 1.0 if lost + gained == 0 else float(binomtest(gained, lost + gained, 0.5).pvalue)
    return {"base_right_new_wrong": lost, "base_wrong_new_right": gained, "p_value": p_value}


def verdict(interval: Sequence[float]) -> str:
    """better / worse when the whole interval is above / below zero; within noise when it holds zero."""
    low, high = interval
    return "better" if low > 0 else "worse" if high < 0 else "within noise"


def reliability_bins(probabilities: np.ndarray, gold: Sequence[int], bins: int = ECE_BINS) -> list[dict]:
    """Per equal-width bin of the top probability (lower < confidence <= upper; the first bin includes
    0): its tweets, mean confidence and accuracy. Empty bins have count 0 and None figures."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence, predicted = probabilities.max(axis=1), probabilities.argmax(axis=1)
    right = predicted == np.asarray(gold)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        rows.append(
            {
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "count": count,
                "confidence": float(confidence[members].mean()) if count else None,
                "accuracy": float(right[members].mean()) if count else None,
            }
        )
    return rows


def expected_calibration_error(probabilities: np.ndarray, gold: Sequence[int], bins: int = ECE_BINS) -> float:
    """Sum over bins of (share of tweets) x |accuracy - mean confidence|."""
    rows = reliability_bins(probabilities, gold, bins)
    total = sum(row["count"] for row in rows)
    return float(sum(row["count"] / total * abs(row["accuracy"] - row["confidence"]) for row in rows if row["count"]))

"""The ensemble: weights fitted on validation, the weighted geometric mean, and the stage on files."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from src.core.params import load_params
from src.scoring.ensemble import (
    apply_bias,
    average,
    combine,
    cross_validated_macro_recall,
    fit_class_bias,
    fit_weights,
    macro_recall,
    member_models,
    simplex_grid,
)
from src.scoring.probabilities import write_probabilities

REPO = Path(__file__).resolve().parents[1]
LABELS = ["negative", "neutral", "positive"]


# the models params.yaml's ensemble.members may name, each with the accuracy of its made-up probabilities
MODEL_ACCURACY = {"bert": 0.8, "bert_seed43": 0.78, "tune_best": 0.7, "lstm": 0.5, "tfidf": 0.6}


def _member(labels: np.ndarray, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities that put 0.6 on the gold class for a share ``accuracy`` of tweets, else on another."""
    n = len(labels)
    right = rng.random(n) < accuracy
    predicted = np.where(right, labels, (labels + rng.integers(1, 3, n)) % 3)
    probabilities = np.full((n, 3), 0.2)
    probabilities[np.arange(n), predicted] = 0.6
    return probabilities


def test_simplex_grid_and_geometric_mean():
    assert len(simplex_grid(3, 0.05)) == 231 and all(sum(w) == pytest.approx(1) for w in simplex_grid(3, 0.05))
    # every point once, in lexicographic order (ties in fit_weights go to the first): as a brute force gives them
    brute = [c for c in itertools.product(range(5), repeat=4) if sum(c) == 4]
    assert simplex_grid(4, 0.25) == [tuple(c_i / 4 for c_i in c) for c in brute]
    assert len(simplex_grid(6, 0.05)) == 53130  # six members: four plus two seed members (docs/decisions.md)
    a, b = np.array([[0.7, 0.2, 0.1]]), np.array([[0.1, 0.2, 0.7]])
    mixed = combine([a, b], [0.5, 0.5])
    expected = np.sqrt(a * b) / np.sqrt(a * b).sum()
    np.testing.assert_allclose(mixed, expected)
    np.testing.assert_allclose(combine([a, b], [1.0, 0.0]), a)


def test_weights_follow_the_informative_member():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    good, noise = _member(labels, 0.9, rng), _member(labels, 0.34, rng)
    weights = fit_weights(labels, [good, noise], 0.1)
    assert weights[0] > weights[1]
    assert macro_recall(labels, combine([good, noise], weights)) >= macro_recall(labels, good)
    # out-of-fold weights cannot beat the in-sample fit by construction of the fit, and stay close to it
    in_sample = macro_recall(labels, combine([good, noise], weights))
    assert cross_validated_macro_recall(labels, [good, noise], 0.1, seed=0) == pytest.approx(in_sample, abs=0.05)


def test_tied_weights_go_to_equal():
    labels = np.array([0, 1, 2])
    same = np.eye(3)
    assert fit_weights(labels, [same, same.copy()], 0.25) == (0.5, 0.5)


def _write_split(path: Path, labels) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": f"tweet {i}", "label": int(y)}) + "\n" for i, y in enumerate(labels)))


def _run(module_args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *module_args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def test_stage_fits_on_val_and_evaluate_scores_the_combination(tmp_path):
    rng = np.random.default_rng(1)
    labels = {"val": rng.integers(0, 3, 90), "test": rng.integers(0, 3, 60)}
    for split, y in labels.items():
        _write_split(tmp_path / f"data/processed/{split}.jsonl", y)
    for model, acc in MODEL_ACCURACY.items():
        for split, y in labels.items():
            write_probabilities(tmp_path / f"predictions/{model}/probs_{split}.csv", _member(y, acc, rng), LABELS)
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())

    done = _run(["stages.ensemble"], tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "models/ensemble/ensemble.json").read_text())
    assert summary["members"] == load_params(REPO / "params.yaml")["ensemble"]["members"]
    assert sum(summary["weights"].values()) == pytest.approx(1)
    assert summary["class_bias"] == {name: 0.0 for name in LABELS}  # off in the shipped params
    assert summary["val_macro_recall_cross_validated"] == summary["val_macro_recall_cross_validated_without_class_bias"]
    assert summary["val_macro_recall"] >= max(summary["members_val_macro_recall"].values())

    done = _run(["stages.evaluate", "ensemble"], tmp_path)
    assert done.returncode == 0, done.stderr
    combined = np.loadtxt(tmp_path / "models/ensemble/probs_test.csv", delimiter=",", skiprows=1)
    predictions = [int(line) for line in (tmp_path / "predictions/ensemble/test.txt").read_text().split()]
    assert predictions == combined.argmax(axis=1).tolist()
    report = json.loads((tmp_path / "metrics/ensemble/test.json").read_text())
    assert report["macro_recall"] == pytest.approx(macro_recall(labels["test"], combined))


def _with_members(members: list[str]) -> str:
    """params.yaml's text with another ensemble.members list."""
    text = (REPO / "params.yaml").read_text()
    start = text.index("  members:")
    end = text.index("  grid_step:", start)
    return text[:start] + "  members:\n" + "".join(f"  - {m}\n" for m in members) + text[end:]


def test_a_group_member_is_its_models_averaged_with_one_weight(tmp_path):
    rng = np.random.default_rng(2)
    labels = {"val": rng.integers(0, 3, 120), "test": rng.integers(0, 3, 60)}
    for split, y in labels.items():
        _write_split(tmp_path / f"data/processed/{split}.jsonl", y)
        seeds = [_member(y, 0.7, rng), _member(y, 0.7, rng)]
        for model, p in zip(("bert", "bert_seed43"), seeds):
            write_probabilities(tmp_path / f"predictions/{model}/probs_{split}.csv", p, LABELS)
        write_probabilities(tmp_path / f"predictions/tfidf/probs_{split}.csv", _member(y, 0.6, rng), LABELS)
        # the pair's equal-weight average, written as if it were one model
        write_probabilities(tmp_path / f"predictions/lstm/probs_{split}.csv", combine(seeds, [0.5, 0.5]), LABELS)
    assert member_models("bert+bert_seed43") == ["bert", "bert_seed43"] and member_models("lstm") == ["lstm"]

    results = {}
    for members in (["bert+bert_seed43", "tfidf"], ["lstm", "tfidf"]):
        (tmp_path / "params.yaml").write_text(_with_members(members))
        done = _run(["stages.ensemble"], tmp_path)
        assert done.returncode == 0, done.stderr
        results[members[0]] = (
            json.loads((tmp_path / "models/ensemble/ensemble.json").read_text()),
            (tmp_path / "models/ensemble/probs_test.csv").read_text(),
        )
    (group, group_test), (single, single_test) = results["bert+bert_seed43"], results["lstm"]
    assert list(group["weights"]) == ["bert+bert_seed43", "tfidf"]  # one weight for the pair
    assert list(group["weights"].values()) == list(single["weights"].values())
    assert group["val_macro_recall_cross_validated"] == single["val_macro_recall_cross_validated"]
    assert group_test == single_test

    # one member alone (ensemble.members minItems 1): a group is then its models' average, weight 1
    alone = {}
    for members in (["bert+bert_seed43"], ["lstm"]):
        (tmp_path / "params.yaml").write_text(_with_members(members))
        done = _run(["stages.ensemble"], tmp_path)
        assert done.returncode == 0, done.stderr
        summary = json.loads((tmp_path / "models/ensemble/ensemble.json").read_text())
        assert list(summary["weights"].values()) == [1.0]
        alone[members[0]] = (tmp_path / "models/ensemble/probs_test.csv").read_text()
    assert alone["bert+bert_seed43"] == alone["lstm"] == (tmp_path / "predictions/lstm/probs_test.csv").read_text()

    # a model in two members, and a malformed group: an error naming the key, no traceback
    for members, expected in (
        (["bert+bert_seed43", "bert"], "params.yaml: ensemble.members: bert in more than one member"),
        (["bert+", "tfidf"], "ensemble.members"),
    ):
        (tmp_path / "params.yaml").write_text(_with_members(members))
        done = _run(["stages.ensemble"], tmp_path)
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert done.stderr.startswith("error: ") and expected in done.stderr, done.stderr


def test_average_of_one_model_is_itself():
    p = np.array([[0.2, 0.3, 0.5]])
    assert average([p]) is p
    np.testing.assert_allclose(average([p, p]), p)


def test_missing_member_is_one_error_line(tmp_path):
    _write_split(tmp_path / "data/processed/val.jsonl", [0, 1, 2])
    _write_split(tmp_path / "data/processed/test.jsonl", [0, 1, 2])
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    done = _run(["stages.ensemble"], tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: predictions/bert/probs_val.csv: not found (run the model's evaluate stage first: dvc repro)"
    ]


def test_cross_validation_needs_two_tweets_per_class():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    member = np.eye(3)[labels]
    assert cross_validated_macro_recall(labels, [member, member], 0.5, seed=0) == pytest.approx(1.0)  # 2 folds
    assert cross_validated_macro_recall(labels[1:], [member[1:], member[1:]], 0.5, seed=0) is None


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def test_class_bias_recovers_a_known_shift():
    """Log-probabilities 1 for the gold class, then class 2 pushed down by 1.52: class 2's tweets
    read (0, 0, -0.52) and are never predicted. Every offset b2 in (0.52, 2.52) (b0 = b1 = 0) restores
    all of them; the smallest on the grid, 0.55, is the fit."""
    labels = np.repeat([0, 1, 2], 20)
    logits = np.eye(3)[labels] - np.array([0.0, 0.0, 1.52])
    probabilities = _softmax(logits)
    assert macro_recall(labels, probabilities) == pytest.approx(2 / 3)
    offsets = fit_class_bias(labels, probabilities)
    assert offsets == pytest.approx((0.0, 0.0, 0.55))
    shifted = apply_bias(probabilities, offsets)
    np.testing.assert_allclose(shifted.sum(axis=1), 1.0)  # still probabilities
    assert macro_recall(labels, shifted) == 1.0


def test_class_bias_stays_zero_without_a_gain():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 300)
    perfect = _softmax(3 * np.eye(3)[labels])
    assert fit_class_bias(labels, perfect) == (0.0, 0.0, 0.0)
    np.testing.assert_allclose(apply_bias(perfect, (0.0, 0.0, 0.0)), perfect, atol=1e-12)


def test_cross_validated_class_bias_gains_on_a_biased_combination():
    """Members that both under-predict class 2 by a shift the weights cannot undo: offsets fitted on
    four folds raise the macro recall of the fifth; the folds are the same with and without."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 600)
    members = [
        _softmax(2 * np.eye(3)[labels] + rng.normal(0, 1.0, (600, 3)) - np.array([0.0, 0.0, 1.5])) for _ in range(2)
    ]
    without = cross_validated_macro_recall(labels, members, 0.25, seed=0)
    with_bias = cross_validated_macro_recall(labels, members, 0.25, seed=0, class_bias=True)
    assert with_bias > without + 0.05
    weights = fit_weights(labels, members, 0.25)
    offsets = fit_class_bias(labels, combine(members, weights))
    assert offsets[0] == 0.0 and 0.5 < offsets[2] - offsets[1] < 2.5


def _members(root: Path, rng: np.random.Generator, labels: dict) -> None:
    for split, y in labels.items():
        _write_split(root / f"data/processed/{split}.jsonl", y)
    for member, accuracy in MODEL_ACCURACY.items():
        for split, y in labels.items():
            write_probabilities(root / f"predictions/{member}/probs_{split}.csv", _member(y, accuracy, rng), LABELS)
    # a coarse grid: these tests are about reading and writing, not the fit
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text().replace("grid_step: 0.05", "grid_step: 0.5"))


@pytest.mark.parametrize(
    "row, expected",
    [
        ("0,0,0", "probabilities sum to 0; expected 1 (within 0.0001)"),
        ("1,1,1", "probabilities sum to 3; expected 1 (within 0.0001)"),
        ("0.5,0.5,0.5", "probabilities sum to 1.5; expected 1 (within 0.0001)"),
        ("nan,0.5,0.5", "expected 3 probabilities between 0 and 1"),
        ("inf,0,0", "expected 3 probabilities between 0 and 1"),
        ("-0.5,1.0,0.5", "expected 3 probabilities between 0 and 1"),
    ],
)
def test_rows_that_are_not_probabilities_are_refused(tmp_path, row, expected):
    labels = {"val": np.array([0, 1, 2] * 10), "test": np.array([0, 1, 2] * 10)}
    _members(tmp_path, np.random.default_rng(2), labels)
    path = tmp_path / "predictions/lstm/probs_val.csv"
    lines = path.read_text().splitlines()
    lines[5] = row
    path.write_text("\n".join(lines) + "\n")
    done = _run(["stages.ensemble"], tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == [f"error: predictions/lstm/probs_val.csv:6: {expected}"]
    assert not (tmp_path / "models").exists()


def test_a_probabilities_file_linked_out_of_the_repository_is_refused(tmp_path):
    repo = tmp_path / "repo"
    labels = {"val": np.array([0, 1, 2] * 10), "test": np.array([0, 1, 2] * 10)}
    _members(repo, np.random.default_rng(3), labels)
    inside = repo / "predictions/bert/probs_test.csv"
    outside = tmp_path / "elsewhere.csv"
    inside.rename(outside)
    inside.symlink_to(outside)
    done = _run(["stages.ensemble"], repo)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: predictions/bert/probs_test.csv: a symbolic link to {outside}, outside {repo}; "
        "refusing to read probabilities from there"
    ]
    # a link inside the repository (DVC's cache.type: symlink) is read
    inside.unlink()
    (repo / ".dvc/cache").mkdir(parents=True)
    outside.rename(repo / ".dvc/cache/probs")
    inside.symlink_to(repo / ".dvc/cache/probs")
    assert _run(["stages.ensemble"], repo).returncode == 0


@pytest.mark.parametrize("failing_write", [1, 2, 3])
def test_a_full_disk_leaves_the_previous_ensemble_whole(tmp_path, monkeypatch, capsys, failing_write):
    import errno
    import os

    from src.core.cli import run_stage
    from stages import ensemble

    labels = {"val": np.array([0, 1, 2] * 10), "test": np.array([0, 1, 2] * 10)}
    _members(tmp_path, np.random.default_rng(4), labels)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["stages.ensemble"])
    run_stage(ensemble.main)
    previous = {p.name: p.read_bytes() for p in (tmp_path / "models/ensemble").iterdir()}
    assert set(previous) == {"ensemble.json", "probs_val.csv", "probs_test.csv"}
    _members(tmp_path, np.random.default_rng(5), labels)  # new members' probabilities: another ensemble
    fsyncs, real_fsync = {"n": 0}, os.fsync

    def fsync_until_full(fd):
        fsyncs["n"] += 1
        if fsyncs["n"] == failing_write:  # the Nth of the three files finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_until_full)
    with pytest.raises(SystemExit) as exit_info:
        run_stage(ensemble.main)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: models/ensemble: no space left on device while writing the new set; the previous outputs are "
        "intact. Free space and run again"
    ]
    assert {p.name: p.read_bytes() for p in (tmp_path / "models/ensemble").iterdir()} == previous
    assert os.listdir(tmp_path / "models") == ["ensemble"]  # no staged directory left

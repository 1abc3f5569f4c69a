"""End to end: `dvc repro` in a temporary git repo, fed by a mirror the test writes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures import REPO, run_checked, set_params


def test_missing_glove_dimension_fails_clearly(project):
    work, env = project
    params = (work / "params.yaml").read_text().replace("dimension: 25d", "dimension: 50d")
    (work / "params.yaml").write_text(params)
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "download_glove"], cwd=work, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "no member glove.twitter.27B.50d.txt" in result.stdout + result.stderr
    assert not (work / "data/glove/glove.twitter.27B.50d.txt").exists()


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


STAGES = (
    "download_data",
    "download_glove",
    "preprocess",
    "build_vocab",
    "train_bert",
    "train_lstm",
    "tune",
    "train_tfidf",
    "ensemble",
    "evaluate@bert",
    "evaluate@lstm",
    "evaluate@tune_best",
    "evaluate@tfidf",
    "evaluate@ensemble",
    "evaluate@majority",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _stages_run(output: str) -> set[str]:
    return {stage for stage in STAGES if f"Running stage '{stage}'" in output}


def _stages_restored(output: str) -> set[str]:
    return {stage for stage in STAGES if f"Stage '{stage}' is cached - skipping run" in output}


def test_review_round_trip(project, tmp_path):
    """The README's review flow on tiny data: the author reproduces everything and pushes git, the DVC
    outputs and the run-cache (to the remote .dvc/config declares, ../dvc-remote); a fresh clone pulls,
    is up to date, runs `dvc exp run -S learning_rate=3e-5` (BERT alone re-trains and is re-scored)
    and writes the review report; an experiment the author pushed comes back from the run-cache."""
    from matplotlib.image import imread

    from tests.fixtures import write_tiny_bert

    work, env = project
    dvc = [sys.executable, "-m", "dvc"]
    env = {**env, "OMP_NUM_THREADS": "1"}
    shutil.copy(REPO / ".dvc/config", work / ".dvc/config")  # the shipped default remote: ../dvc-remote
    set_params(
        work / "params.yaml",
        {
            "model_name": str(write_tiny_bert(tmp_path / "tiny-bert")),
            "num_epochs": 6,
            "learning_rate": 3e-3,
            "batch_size": 4,
            "max_length": 32,
            "bert.eval_batch_size": 16,
            "lstm.hidden_dim": 8,
            "lstm.epochs": 2,
            "lstm.batch_size": 8,
            "tune.n_trials": 1,
            "tune.train_fraction": 1.0,
            "evaluate.batch_size": 16,
        },
    )
    out = run_checked(dvc + ["repro"], work, env)
    assert _stages_run(out) == set(STAGES), out

    # the data half: TweetEval layout from the mirror -> processed splits -> vocabulary + GloVe rows
    data = json.loads((work / "metrics/data.json").read_text())
    assert (data["train"]["rows"], data["val"]["rows"], data["test"]["rows"]) == (48, 12, 12)
    assert data["train"]["class_counts"] == {"negative": 16, "neutral": 16, "positive": 16}
    assert data["train_dropped"]["in_val_or_test"] == 0
    rows = [json.loads(line) for line in (work / "data/processed/train.jsonl").read_text().splitlines()]
    assert rows[0] == {"text": "i hate this !", "label": 0}
    vocab = json.loads((work / "data/vocab/vocab.json").read_text())["tokens"]
    assert vocab[:2] == ["<pad>", "<unk>"]
    assert np.load(work / "data/vocab/embeddings.npy").shape == (len(vocab), 25)
    coverage = json.loads((work / "metrics/vocab.json").read_text())
    assert coverage["glove"] == "twitter.27B.25d" and coverage["vocab_coverage"] > 0.9

    # one key layout for every model, so their rows line up in `dvc metrics diff`
    tests = {
        m: json.loads((work / f"metrics/{m}/test.json").read_text())
        for m in ("bert", "lstm", "tune_best", "tfidf", "ensemble", "majority")
    }
    assert all(_flat(t).keys() == _flat(tests["bert"]).keys() for t in tests.values())
    assert {"accuracy", "macro_recall", "macro_f1", "f1_pn", "n"} <= set(tests["bert"])
    assert tests["majority"]["macro_recall"] == pytest.approx(1 / 3)
    trains = [_flat(json.loads((work / f"metrics/{m}/train.json").read_text())) for m in ("bert", "lstm")]
    assert trains[0].keys() == trains[1].keys() and "val.macro_recall" in trains[0]
    for metrics in [*tests.values(), *trains]:  # timing is noise in a review: not in the metrics
        assert not [key for key in _flat(metrics) if "time" in key or "per_s" in key or "seconds" in key]
    for name in ("bert", "lstm", "tune_best", "tfidf"):
        assert json.loads((work / f"predictions/{name}/inference.json").read_text())["tweets_per_s"] > 0
        predictions = (work / f"predictions/{name}/test.txt").read_text().splitlines()
        assert len(predictions) == 12 and set(predictions) <= {"0", "1", "2"}
    ensemble = json.loads((work / "models/ensemble/ensemble.json").read_text())
    assert ensemble["members"] == ["bert", "tune_best", "lstm", "tfidf"]
    assert sum(ensemble["weights"].values()) == pytest.approx(1.0)
    for name in ("bert", "lstm", "tune_best", "tfidf", "ensemble", "majority"):  # class probabilities, test and val
        for split in ("test", "val"):
            rows = (work / f"predictions/{name}/probs_{split}.csv").read_text().splitlines()
            assert rows[0] == "negative,neutral,positive" and len(rows) == 13, (name, split)

    # the author publishes: git to a bare origin, outputs and run-cache to the DVC remote
    origin = tmp_path / "origin.git"
    run_checked(["git", "init", "-q", "--bare", str(origin)], tmp_path, env)
    for cmd in (
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "baseline"],
        ["git", "branch", "-M", "main"],
        ["git", "remote", "add", "origin", str(origin)],
        ["git", "push", "-q", "origin", "main"],
    ):
        run_checked(cmd, work, env)
    run_checked(dvc + ["push", "--run-cache"], work, env)
    assert (tmp_path / "dvc-remote/runs").is_dir() and (tmp_path / "dvc-remote/files/md5").is_dir()

    # the reviewer's fresh clone: pull, nothing to reproduce
    clone = tmp_path / "clone"
    run_checked(["git", "clone", "-q", "-b", "main", str(origin), str(clone)], tmp_path, env)
    env = {**env, "PYTHONPATH": str(clone)}
    run_checked(dvc + ["pull"], clone, env)
    status = run_checked(dvc + ["status"], clone, env)  # what `dvc repro` would do: nothing
    assert "Data and pipelines are up to date" in status, status

    # a new experiment: BERT alone re-trains and is re-scored
    out = run_checked(dvc + ["exp", "run", "-n", "lr-3e-5", "-S", "learning_rate=3e-5"], clone, env)
    # the ensemble re-fits on BERT's new probabilities; it is re-scored when its combination changed
    assert (
        {"train_bert", "evaluate@bert", "ensemble"}
        <= _stages_run(out)
        <= {"train_bert", "evaluate@bert", "ensemble", "evaluate@ensemble"}
    ), out
    changed = json.loads(run_checked(dvc + ["metrics", "diff", "--json"], clone, env))
    assert "metrics/bert/test.json" in changed and "metrics/bert/train.json" in changed
    assert not {
        path for path in changed if not path.startswith(("metrics/bert/", "metrics/ensemble/", "dvclive/train_bert/"))
    }, changed
    assert "Data and pipelines are up to date" in run_checked(dvc + ["status"], clone, env)  # a second repro: nothing
    # readable: headline metrics only, so the experiment table fits a screen
    table = run_checked(dvc + ["exp", "show", "--only-changed", "--md"], clone, env)
    columns = [
        cell.strip() for cell in next(line for line in table.splitlines() if line.startswith("|")).split("|")[1:-1]
    ]
    assert len(columns) <= 20 and "learning_rate" in columns, table
    assert not [column for column in columns if "per_class" in column or "confusion" in column], columns
    assert {
        "metrics/bert/test.json:macro_recall",
        "metrics/bert/train.json:val.macro_recall",
        "dvclive/train_bert/metrics.json:train.loss",
    } <= set(columns), columns  # test, train, DVCLive

    run_checked([sys.executable, "-m", "src.review"], clone, env)
    report = (clone / "review/report.md").read_text()
    assert "| `learning_rate` | 0.003 | 3e-05 |" in report, report
    sections = {block.split("\n", 1)[0]: block for block in report.split("## ")[1:]}
    assert "bert: changed" in sections and "- lstm: unchanged" in sections["Not changed"], report
    assert report.split("## ")[1].startswith("Summary") and "- **bert**: macro-recall " in sections["Summary"]
    assert any(
        row.startswith("| test macro-recall") and not row.endswith("| 0 |")
        for row in sections["bert: changed"].splitlines()
    ), report
    # the same figures for a CI job: an interval per metric, a verdict consistent with it
    review = json.loads((clone / "review/report.json").read_text())
    statuses = {m: e["status"] for m, e in review["models"].items()}
    # the ensemble combines BERT's probabilities: it changes with them (unless its weights leave BERT out)
    assert statuses.pop("ensemble") in ("changed", "unchanged")
    assert statuses == {
        "bert": "changed",
        "lstm": "unchanged",
        "tune_best": "unchanged",
        "tfidf": "unchanged",
        "majority": "unchanged",
    }
    bert = review["models"]["bert"]
    for metric in ("macro_recall", "f1_pn", "accuracy"):
        entry = bert["metrics"][metric]
        low, high = entry["interval"]
        assert low <= entry["change"] <= high and 0 <= entry["p_value"] <= 1
        assert entry["verdict"] == ("better" if low > 0 else "worse" if high < 0 else "within noise")
        assert f"| test {metric.replace('macro_recall', 'macro-recall').replace('f1_pn', 'F1^PN')} |" in report
    assert (
        sum(sum(c.values()) for c in bert["flipped"].values())
        == bert["mcnemar"]["base_right_new_wrong"] + bert["mcnemar"]["base_wrong_new_right"]
    )
    assert bert["calibration"]["ece_base"] is not None and bert["calibration"]["ece_new"] is not None
    images = sorted((clone / "review").glob("*.png"))
    names = [p.name for p in images]
    assert {"confusion_bert.png", "curves_bert.png", "reliability_bert.png"} <= set(names), images
    # nothing for the models that did not change; the ensemble follows BERT
    assert set(names) <= {
        "confusion_bert.png",
        "curves_bert.png",
        "reliability_bert.png",
        "confusion_ensemble.png",
        "reliability_ensemble.png",
    }, images
    for image in images:
        assert f"]({image.name})" in report
        assert image.read_bytes()[:8] == PNG_SIGNATURE
        assert imread(image).shape[:2] >= (300, 600)  # matplotlib decodes it: a real, whole image

    # the experiment reaches someone else without training: exp push (git ref + outputs), exp pull, apply.
    # `dvc exp push/pull` read the remote's URL from the experiment's commit and resolve a relative one
    # against that revision's root, not the clone (DVC issue 10054): each side names it absolutely,
    # in .dvc/config.local, as the README says
    remote = str(tmp_path / "dvc-remote")
    before = {p for p in Path(remote).rglob("*") if p.is_file()}
    run_checked(dvc + ["remote", "modify", "--local", "storage", "url", remote], clone, env)
    run_checked(dvc + ["exp", "push", "origin", "lr-3e-5"], clone, env)
    assert {p for p in Path(remote).rglob("*") if p.is_file()} - before  # the new model went to ../dvc-remote
    env = {**env, "PYTHONPATH": str(work)}
    run_checked(dvc + ["remote", "modify", "--local", "storage", "url", remote], work, env)
    run_checked(dvc + ["exp", "pull", "origin", "lr-3e-5"], work, env)
    run_checked(dvc + ["exp", "apply", "lr-3e-5"], work, env)
    status = run_checked(dvc + ["status"], work, env)
    assert "Data and pipelines are up to date" in status, status
    for path in ("metrics/bert/test.json", "metrics/bert/train.json", "predictions/bert/test.txt"):
        assert (work / path).read_bytes() == (clone / path).read_bytes(), path

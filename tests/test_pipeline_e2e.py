"""End to end: `dvc repro` in a temporary git repo, fed by a mirror the test writes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from src.core.params import load_params
from tests.fixtures import PIPELINE_STAGES, REPO, run_checked, set_params, stages_run


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


STAGES = PIPELINE_STAGES
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODELS = ("bert", "lstm", "tune_best", "tfidf", "ensemble", "majority")


def yaml_value(path: Path, dotted: str):
    from ruamel.yaml import YAML

    value = YAML(typ="safe").load(path)
    for key in dotted.split("."):
        value = value[key]
    return value


HUB_TEXTS = ["@bob what a great day :) 😂 &amp; http://t.co/x", "worst   service\tever 😡", "meh. #monday ♥"]


def _check_hub_export(work: Path, env: dict, test_figures: dict) -> None:
    """models/bert_hub, the README's model path: transformers.pipeline() gives src.predict's probabilities (to
    1e-4) on normalised test tweets, with the normalize.py shipped beside the weights; the model card reads
    with huggingface_hub and its model-index holds evaluate@bert's test figures; `dvc artifacts get` of a
    registered version (a GTO tag) downloads the same directory."""
    import importlib.util

    from huggingface_hub import ModelCard
    from transformers import pipeline

    from src.data.preprocess import normalize_tweet
    from tests.fixtures import tiny_splits

    export = work / "models/bert_hub"
    texts = [text for text, _ in tiny_splits()["test"]] + HUB_TEXTS
    spec = importlib.util.spec_from_file_location("exported_normalize", export / "normalize.py")
    shipped = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shipped)
    assert [shipped.normalize_tweet(t) for t in texts] == [normalize_tweet(t) for t in texts]

    out = run_checked([sys.executable, "-m", "src.predict", "--model", "models/bert_hub", *texts], work, env)
    ours = [json.loads(line)["probabilities"] for line in out.splitlines() if line.startswith("{")]
    classify = pipeline("text-classification", model=str(export), top_k=None, device="cpu")
    theirs = classify([shipped.normalize_tweet(t) for t in texts], truncation=True)
    assert len(ours) == len(theirs) == len(texts)
    for mine, scores in zip(ours, theirs):
        assert {s["label"] for s in scores} == set(mine) == {"negative", "neutral", "positive"}
        for score in scores:
            assert score["score"] == pytest.approx(mine[score["label"]], abs=1e-4)

    card = ModelCard.load(export / "README.md")
    results = {(r.metric_type, r.metric_name): r for r in card.data.eval_results}
    assert {r.dataset_type for r in results.values()} == {"cardiffnlp/tweet_eval"}
    assert {r.dataset_split for r in results.values()} == {"test"}
    assert (
        results[("recall", "Macro recall (TweetEval's sentiment score)")].metric_value == test_figures["macro_recall"]
    )
    assert results[("f1", "Macro F1")].metric_value == test_figures["macro_f1"]
    assert results[("accuracy", "Accuracy")].metric_value == test_figures["accuracy"]
    assert card.data.pipeline_tag == "text-classification" and card.data.license
    assert "normalize_tweet" in card.text

    # a registered version of the artifact (GTO's tag, as `gto register bert` writes it), then DVC's download
    run_checked(["git", "add", "-A"], work, env)
    run_checked(["git", "commit", "-qm", "model"], work, env)
    run_checked(["git", "tag", "-a", "bert@v0.1.0", "-m", "Registering artifact bert version v0.1.0"], work, env)
    got = work.parent / "artifact-bert"
    run_checked(
        [sys.executable, "-m", "dvc", "artifacts", "get", ".", "bert", "--rev", "v0.1.0", "-o", str(got)], work, env
    )
    assert sorted(p.name for p in got.iterdir()) == sorted(p.name for p in export.iterdir())
    assert (got / "model.safetensors").read_bytes() == (export / "model.safetensors").read_bytes()


def test_review_round_trip(project, tmp_path):
    """The reviewer's flow on tiny data, as the README gives it: the author reproduces everything, adds the
    team's remote (`dvc remote add -d`) and pushes git, the DVC outputs and the run-cache; a fresh clone
    pulls and is up to date; `dvc exp run -S learning_rate=3e-5` changes one line of params.yaml and
    re-trains BERT alone; `COLUMNS=120 dvc exp show --only-changed` shows the experiment, the param and
    the changed models' test macro-recall, no header cut; the review report; `dvc exp push`, and a
    second clone pulls the experiment. Nothing is written outside the test's directories."""
    from matplotlib.image import imread

    from tests.fixtures import write_tiny_bert

    work, env = project
    dvc = [sys.executable, "-m", "dvc"]
    env = {**env, "OMP_NUM_THREADS": "1"}
    outside = {directory: set(os.listdir(directory)) for directory in ("/", tmp_path.parent, REPO)}
    # a fresh clone has no remote: `python -m src.pull` says what to do in one line, not DVC's hash list
    result = subprocess.run(
        [sys.executable, "-m", "src.pull"],
        cwd=work,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: no DVC remote to pull from") and "dvc remote add -d" in result.stderr
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
    assert stages_run(out) == set(STAGES), out

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
    assert ensemble["members"] == load_params(work / "params.yaml")["ensemble"]["members"]
    assert sum(ensemble["weights"].values()) == pytest.approx(1.0)
    for name in ("bert", "lstm", "tune_best", "tfidf", "ensemble", "majority"):  # class probabilities, test and val
        for split in ("test", "val"):
            rows = (work / f"predictions/{name}/probs_{split}.csv").read_text().splitlines()
            assert rows[0] == "negative,neutral,positive" and len(rows) == 13, (name, split)

    _check_hub_export(work, env, tests["bert"])

    # the author publishes: the team's remote (the README's one command), git to a bare origin, outputs and
    # run-cache to the DVC remote
    remote = tmp_path / "dvc-remote"
    remote.mkdir()
    run_checked(dvc + ["remote", "add", "-d", "storage", str(remote)], work, env)
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
    run_checked([sys.executable, "-m", "src.pull"], clone, env)  # the README's `make pull`
    status = run_checked(dvc + ["status"], clone, env)  # what `dvc repro` would do: nothing
    assert "Data and pipelines are up to date" in status, status

    # a new experiment: BERT alone re-trains and is re-scored
    out = run_checked(dvc + ["exp", "run", "-n", "lr-3e-5", "-S", "learning_rate=3e-5"], clone, env)
    # the ensemble re-fits on BERT's new probabilities; it is re-scored when its combination changed
    assert (
        {"train_bert", "evaluate@bert", "export_bert", "ensemble"}
        <= stages_run(out)
        <= {"train_bert", "evaluate@bert", "export_bert", "ensemble", "evaluate@ensemble"}
    ), out
    # -S changed exactly one line of params.yaml: the pull request shows the change, nothing else
    numstat = run_checked(["git", "diff", "--numstat", "params.yaml"], clone, env).split()
    assert numstat[:2] == ["1", "1"], numstat
    changed = json.loads(run_checked(dvc + ["metrics", "diff", "--json"], clone, env))
    assert "metrics/bert/macro_recall.json" in changed
    assert set(changed) <= {"metrics/bert/macro_recall.json", "metrics/ensemble/macro_recall.json"}, changed
    assert "Data and pipelines are up to date" in run_checked(dvc + ["status"], clone, env)  # a second repro: nothing
    # readable in a 120-column terminal: the experiment, the param, each changed model's test macro-recall
    # (the changed models' dependency hashes, 32 hex digits each, come last and fold into one "…" column;
    # --drop removes them, as the README shows)
    for drop in ([], ["--drop", "^(models|predictions|metrics)/"]):
        table = run_checked(
            dvc + ["exp", "show", "--only-changed", "--no-pager", *drop], clone, {**env, "COLUMNS": "120"}
        )
        assert max(len(line) for line in table.splitlines()) <= 120, table
        header = next(line for line in table.splitlines() if "Experiment" in line).split()
        assert header[:2] == ["Experiment", "Created"] and "lr-3e-5" in table, table
        names = [name for name in header if name != "…"]
        assert {"learning_rate", "bert.test", "bert.val"} <= set(names), table  # whole names, none cut
        models = {f"{m}.{s}" for m in MODELS for s in ("test", "val")}
        dependencies = {name for name in names if name.startswith(("models/", "predictions/", "metrics/"))}
        assert not (dependencies and drop), table
        assert set(names) - dependencies <= {"Experiment", "Created", "learning_rate", *models}, table
        assert "…" not in header if drop else header.count("…") <= 1, table

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
    assert 0 <= bert["metrics"]["accuracy"]["p_value"] <= 1  # McNemar's: a test of accuracy
    for metric in ("macro_recall", "f1_pn", "accuracy"):
        entry = bert["metrics"][metric]
        low, high = entry["interval"]
        assert low <= entry["change"] <= high
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

    # the experiment reaches someone else without training: exp push (git ref + outputs), a second fresh
    # clone pulls and applies it, and is up to date
    before = {p for p in remote.rglob("*") if p.is_file()}
    run_checked(dvc + ["exp", "push", "origin", "lr-3e-5"], clone, env)
    assert {p for p in remote.rglob("*") if p.is_file()} - before  # the new model went to the team's remote
    second = tmp_path / "second-clone"
    run_checked(["git", "clone", "-q", "-b", "main", str(origin), str(second)], tmp_path, env)
    env = {**env, "PYTHONPATH": str(second)}
    run_checked(dvc + ["exp", "pull", "origin", "lr-3e-5"], second, env)
    run_checked(dvc + ["exp", "apply", "lr-3e-5"], second, env)
    assert yaml_value(second / "params.yaml", "learning_rate") == pytest.approx(3e-5)
    status = run_checked(dvc + ["status"], second, env)
    assert "Data and pipelines are up to date" in status, status
    # nothing outside the test's directories (a relative remote once resolved to /dvc-remote for experiments)
    for directory, names in outside.items():
        assert set(os.listdir(directory)) - names <= ({tmp_path.name} if directory == tmp_path.parent else set())
    for path in ("metrics/bert/test.json", "metrics/bert/train.json", "predictions/bert/test.txt"):
        assert (second / path).read_bytes() == (clone / path).read_bytes(), path  # the experiment, byte for byte

"""train_tfidf and evaluate@tfidf on tiny data: the saved model, its probabilities, and bad params or files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from src.core.errors import PipelineError
from src.data.preprocess import Split, normalize_tweet, write_split
from src.models.loading import load_model
from src.models.tfidf import load
from tests.fixtures import tiny_splits

REPO = Path(__file__).resolve().parents[1]


def _run(module_args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *module_args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture
def project(tmp_path):
    """tmp_path with data/processed of tiny_splits() and the shipped params.yaml."""
    for name, rows in tiny_splits().items():
        split = Split([normalize_tweet(t) for t, _ in rows], [y for _, y in rows])
        write_split(tmp_path / f"data/processed/{name}.jsonl", split)
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    return tmp_path


def test_stage_trains_and_evaluate_writes_probabilities_like_the_other_models(project):
    done = _run(["stages.train_tfidf"], project)
    assert done.returncode == 0, done.stderr
    assert "val macro_recall" in done.stdout
    train_metrics = json.loads((project / "metrics/tfidf/train.json").read_text())
    assert train_metrics["features"] > 0 and 0 <= train_metrics["val"]["macro_recall"] <= 1

    pipeline, label_names = load(project / "models/tfidf")
    assert label_names == ["negative", "neutral", "positive"]
    val_texts = [json.loads(line)["text"] for line in (project / "data/processed/val.jsonl").read_text().splitlines()]

    done = _run(["stages.evaluate", "tfidf"], project)
    assert done.returncode == 0, done.stderr
    rows = (project / "predictions/tfidf/probs_val.csv").read_text().splitlines()
    assert rows[0] == "negative,neutral,positive"
    written = np.array([[float(v) for v in row.split(",")] for row in rows[1:]])
    # the loader's softmax of the pipeline's log-probabilities is the pipeline's probabilities
    np.testing.assert_allclose(written, pipeline.predict_proba(val_texts), atol=2e-6)
    test_predictions = (project / "predictions/tfidf/test.txt").read_text().split()
    assert len(test_predictions) == len(tiny_splits()["test"])
    report = json.loads((project / "metrics/tfidf/test.json").read_text())
    assert {"accuracy", "macro_recall", "macro_f1", "f1_pn", "n"} <= set(report)


def test_loader_gives_the_pipeline_probabilities_in_input_order(project):
    from src.evaluation import predict_proba

    assert _run(["stages.train_tfidf"], project).returncode == 0
    trained = load_model(project / "models/tfidf", "cpu")
    assert trained.kind == "tfidf"
    texts = ["i love this", "a", "the worst day ever , so sad", "meeting at noon"]
    pipeline, _ = load(project / "models/tfidf")
    probabilities = predict_proba(trained, texts, batch_size=2, device="cpu")  # length-sorted batches, reordered
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(texts), atol=1e-6)


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("  C: ", "  C: -", "tfidf.C = -"),  # the shipped C, negated
        ("  min_df: 2 ", "  min_df: 0 ", "tfidf.min_df = 0: expected a value >= 1"),
        ("  class_weight: balanced ", "  class_weight: sqrt ", "tfidf.class_weight = 'sqrt': expected one of"),
        ("  - 2\n  - 5\n", "  - 5\n  - 2\n", "tfidf.char_ngrams = [5, 2]: expected [low, high] with low <= high"),
    ],
)
def test_bad_tfidf_params_are_one_error_line_naming_the_key(project, old, new, expected):
    text = (project / "params.yaml").read_text()
    assert old in text
    (project / "params.yaml").write_text(text.replace(old, new, 1))
    done = _run(["stages.train_tfidf"], project)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    # one error: the schema's report is its one `error: params.yaml is invalid:` line and one line per key
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and all(line.startswith("  - ") for line in lines[1:]), done.stderr
    assert sum(expected in line for line in lines) == 1, done.stderr
    assert not (project / "models/tfidf").exists()


def test_saved_model_gives_the_fitted_pipelines_probabilities(tmp_path):
    from src.core.params import load_params
    from src.models.tfidf import fit, save

    cfg = load_params(REPO / "params.yaml")["tfidf"]
    rows = tiny_splits()["train"]
    fitted = fit([normalize_tweet(t) for t, _ in rows], [y for _, y in rows], cfg)
    save(fitted, tmp_path / "tfidf", ["negative", "neutral", "positive"], cfg)
    loaded, _ = load(tmp_path / "tfidf")
    texts = ["i love this", "worst day ever", "meeting at noon", "zzz unseen words"]
    np.testing.assert_allclose(loaded.predict_proba(texts), fitted.predict_proba(texts), rtol=1e-6)


def test_a_pickled_or_damaged_model_file_is_refused_unloaded(project):
    """The arrays are read without pickle: a file holding Python objects is refused, not executed."""
    assert _run(["stages.train_tfidf"], project).returncode == 0
    model_file = project / "models/tfidf/model.npz"
    with np.load(model_file) as arrays:
        contents = dict(arrays)
    np.savez(model_file.with_suffix(".tmp.npz"), **{**contents, "coef": np.array([object()], dtype=object)})
    model_file.with_suffix(".tmp.npz").replace(model_file)
    with pytest.raises(PipelineError, match="not a train_tfidf model"):
        load(project / "models/tfidf")
    done = _run(["stages.evaluate", "tfidf"], project)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: models/tfidf/model.npz: not a train_tfidf model")
    model_file.write_bytes(b"not a zip")
    with pytest.raises(PipelineError, match="not a train_tfidf model"):
        load(project / "models/tfidf")

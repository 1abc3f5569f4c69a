"""Fixtures shared by several test modules, and the `slow` marker.

Helpers that are not fixtures (tiny data, the test HTTP handler, params editing) live in tests/fixtures.py.
"""
from __future__ import annotations

import copy
import http.server
import os
import shutil
import sys
import threading

import numpy as np
import pytest
import torch

from tests.fixtures import REPO, TINY_LSTM, DownloadHandler, run_checked, synthetic_split, write_mirror, write_tiny_bert

# The slowest tests: whole `dvc repro` runs in temporary repositories, real SIGKILLs of training processes,
# torchrun with 2 processes, Optuna searches and the benchmarks. `pytest -m "not slow"` leaves them out for a
# quick loop; plain `pytest` (the README's command and CI's) runs them too. A module name marks all its tests;
# a node id marks one test (parametrized cases included).
SLOW_MODULES = {
    "test_distributed.py",
    "test_pipeline_e2e.py",
    "test_tune.py",
    "test_benchmarks.py",
}
SLOW_TESTS = {
    # real training processes killed, signalled or resumed
    "test_resume.py::test_killed_stage_resumes_and_ends_like_an_uninterrupted_run",
    "test_resume.py::test_sigterm_exits_143_naming_a_loadable_checkpoint",
    "test_resume.py::test_bert_train_model_resumes_to_the_same_result",
    "test_resume.py::test_killed_train_bert_resumes_and_ends_with_the_metrics_of_an_uninterrupted_run",
    "test_resume.py::test_a_bert_run_stopped_while_exporting_is_reported_incomplete_then_finished",
    "test_resume.py::test_dvc_repro_resumes_train_lstm_after_the_stage_was_killed",
    # stages run as real processes
    "test_bad_input.py::test_bad_data_stage_process_exits_1_without_traceback",
    "test_bad_input.py::test_predict_with_stdin_closed_in_a_real_process",
    "test_bad_input.py::test_predict_with_stdout_closed_or_broken_in_a_real_process",
    # many epochs of the tiny BERT
    "test_bert_training.py::test_train_model_learns_writes_every_file_and_keeps_the_best_epoch",
    "test_bert_training.py::test_tuning_scores_on_validation_only_and_writes_its_files",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
        test = item.nodeid.split("[", 1)[0].rsplit("/", 1)[-1]
        if module in SLOW_MODULES or test in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def server():
    """A local HTTP server (tests.fixtures.DownloadHandler) on a free port; yields its base URL."""
    DownloadHandler.requests_seen = []
    DownloadHandler.drops_left = 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DownloadHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """data/processed + data/vocab (with an 8-d embedding matrix) laid out as the pipeline writes them, in a
    temporary directory that is the working directory; returns params with ``lstm`` = TINY_LSTM."""
    from src.atomic import save_numpy
    from src.params import load_params
    from src.preprocess import Split, write_split
    from src.vocab import Vocabulary

    params = load_params(REPO / "params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    for name, (n, seed) in {"train": (200, 1), "val": (60, 2), "test": (60, 3)}.items():
        write_split(f"data/processed/{name}.jsonl", Split(*synthetic_split(n, seed)))
    vocab = Vocabulary.build(synthetic_split(200, 1)[0])
    vocab.save("data/vocab/vocab.json")
    save_numpy("data/vocab/embeddings.npy", np.random.default_rng(0).normal(size=(len(vocab), 8)).astype(np.float32))
    params = copy.deepcopy(params)
    params["lstm"] = dict(TINY_LSTM)
    return params


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A 2-layer BERT model directory (tests.fixtures.write_tiny_bert), built once per test module."""
    return str(write_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture
def project(tmp_path):
    """A copy of the pipeline (code, dvc.yaml, params.yaml) as a fresh git + DVC repository, fed by a mirror
    the test writes; returns (directory, environment)."""
    work = tmp_path / "project"
    work.mkdir()
    for name in ("src", "stages"):
        shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml", ".gitignore"):
        shutil.copy(REPO / name, work / name)
    env = {**os.environ, "SENTIMENT_MIRROR": str(write_mirror(tmp_path / "mirror")),
           "PYTHONPATH": str(work), "DVC_NO_ANALYTICS": "1"}
    env.pop("PYTHONSAFEPATH", None)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.com"],
                ["git", "config", "user.name", "test"], [sys.executable, "-m", "dvc", "init", "-q"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        run_checked(cmd, work, env)
    return work, env

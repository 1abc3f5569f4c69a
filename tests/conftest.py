"""Fixtures shared by several test modules, and the `slow` marker.

Helpers that are not fixtures (tiny data, the test HTTP handler, params editing) live in tests/fixtures.py.
"""

from __future__ import annotations

import copy
import http.server
import os
import shutil
import threading

import numpy as np
import pytest
import torch

from tests.fixtures import (
    REPO,
    TINY_LSTM,
    DownloadHandler,
    init_git_dvc_repo,
    run_checked,
    synthetic_split,
    write_mirror,
    write_tiny_bert,
)

# The slowest tests: whole `dvc repro` runs in temporary repositories, real SIGKILLs of training processes,
# torchrun with 2 processes, Optuna searches and the benchmarks. `pytest -m "not slow"` leaves them out for a
# quick loop; plain `pytest` (the README's command and CI's) runs them too. A module name marks all its tests;
# a node id marks one test (parametrized cases included).
SLOW_MODULES = {
    "test_distributed.py",  # torchrun with 2 processes: 14 to 30 s a test
    "test_pipeline_e2e.py",  # `dvc repro` in a temporary repository: 13 s to 4 min
    "test_benchmarks.py",  # the benchmark against the Trainer: 37 s
}
# Measured with `pytest --durations` on the shared 2-core CPU: every test above about 5 s.
SLOW_TESTS = {
    # tune on PostgreSQL with 2 worker processes (one SIGKILLed): 60 to 80 s each under load
    "test_tune_machines.py::test_two_machines_on_postgres_search_the_grid_of_one_machine",
    "test_tune_machines.py::test_a_killed_machines_trial_is_retried_elsewhere_and_the_search_ends_with_every_trial",
    "test_tune.py::test_two_queued_experiments_run_in_parallel_and_each_trains_from_scratch",
    "test_tune.py::test_a_killed_tune_continues_from_the_trials_it_completed",
    "test_tune.py::test_two_workers_split_the_trials_run_no_configuration_twice_and_match_one_worker",
    "test_tune.py::test_every_sampler_trains_n_distinct_configurations_reproducibly[random-rdb]",
    "test_resume.py::test_killed_train_bert_resumes_and_ends_with_the_metrics_of_an_uninterrupted_run",
    "test_resume.py::test_dvc_repro_resumes_train_lstm_after_the_stage_was_killed",
    "test_resume.py::test_killed_stage_resumes_and_ends_like_an_uninterrupted_run",
    "test_resume.py::test_sigterm_exits_143_naming_a_loadable_checkpoint",
    "test_resume.py::test_a_kill_between_a_checkpoint_and_staging_its_model_is_made_good",
    "test_generated_inputs.py::test_any_value_at_any_key_is_accepted_or_named",
    "test_generated_inputs.py::test_csv_rows_parse_or_name_the_line",
    "test_bad_input.py::test_model_name_not_cached_offline_says_how_to_fix",
    "test_ensemble.py::test_stage_fits_on_val_and_evaluate_scores_the_combination",
    "test_entry_points.py::test_a_two_class_model_from_the_command_line_scores_alike_in_training_predict_and_evaluation",
    "test_tfidf.py::test_stage_trains_and_evaluate_writes_probabilities_like_the_other_models",  # two stage runs
    "test_tfidf.py::test_a_pickled_or_damaged_model_file_is_refused_unloaded",
    # a `python -m stages.ensemble` process per case: 7 to 10 s each on the shared CPU (the hostile-input
    # table's probabilities rows cover the same through the same entry point)
    "test_ensemble.py::test_rows_that_are_not_probabilities_are_refused",
    "test_ensemble.py::test_a_probabilities_file_linked_out_of_the_repository_is_refused",  # two processes: 15 s
    # one process per row (the hostile-input table): 25 rows, 80 s together
    "test_hostile_inputs.py::test_hostile_input",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path, _, name = item.nodeid.partition("::")
        module = path.rsplit("/", 1)[-1]
        node = f"{module}::{name}"  # test_x.py::test_name[case]
        if module in SLOW_MODULES or node in SLOW_TESTS or node.split("[", 1)[0] in SLOW_TESTS:
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
    from src.core.atomic import save_numpy
    from src.core.params import load_params
    from src.data.preprocess import Split, write_split
    from src.data.vocab import Vocabulary

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
def postgres():
    """A PostgreSQL server of this module's tests (tests/postgres.py), stopped afterwards. Skipped with
    the reason when the server or its driver is missing; with CI=true that fails instead: CI runs them."""
    from tests.postgres import INSTALL_HINT, PostgresServer, server_binaries

    bindir = server_binaries()
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing = "the PostgreSQL driver psycopg (pip install -r requirements.txt)"
    else:
        missing = None if bindir else f"the PostgreSQL server (initdb, pg_ctl): {INSTALL_HINT}"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {missing} is missing: these tests must run in CI")
        pytest.skip(f"needs {missing}")
    server = PostgresServer(bindir)
    server.start()
    yield server
    server.stop()


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
    for name in ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(REPO / name, work / name)
    env = {
        **os.environ,
        "SENTIMENT_MIRROR": str(write_mirror(tmp_path / "mirror")),
        "PYTHONPATH": str(work),
        "DVC_NO_ANALYTICS": "1",
    }
    env.pop("PYTHONSAFEPATH", None)
    init_git_dvc_repo(work, env)
    shutil.copytree(REPO / ".dvc/plots", work / ".dvc/plots")  # the plot templates dvc.yaml names
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        run_checked(cmd, work, env)
    return work, env


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: tiny models gain nothing from threads, and threads thrash when the
    CPU is shared. Modules that train tiny models use it for every test (``pytestmark``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

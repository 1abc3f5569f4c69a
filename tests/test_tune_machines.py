"""tune across "machines" on a real PostgreSQL: worker processes with their own working directories
join one study; a SIGKILLed worker's trial is failed by its missing heartbeat and run again; the best
trial's model reaches the first machine through the artifact store.

The server comes from the ``postgres`` fixture (tests/conftest.py, tests/postgres.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from src import tuning
from src.core.errors import PipelineError
from src.tuning.storage import fetch_trial_dir
from tests.tune_machine import SPACE

REPO = Path(__file__).resolve().parents[1]
QUALITY = ("val_loss", "val_accuracy", "val_macro_recall", "val_macro_f1", "best_epoch", "epochs_run")


def by_config(results: dict) -> dict:
    return {json.dumps(t["params"], sort_keys=True): {k: t[k] for k in QUALITY} for t in results["trials"]}


@pytest.fixture(scope="module")
def one_machine(tiny_bert, tmp_path_factory):  # noqa: F811
    """The same grid searched on one machine (journal file, one process, one thread as the others):
    its tuning_results.json."""
    directory = tmp_path_factory.mktemp("one-machine")
    finish(start_machine(directory, "tune", tiny_bert, "-", "-", delay=0.3))  # SlowLoader: as the others
    return json.loads((directory / "models/tune/tuning_results.json").read_text())


def start_machine(directory: Path, role: str, tiny_bert: str, storage: str, store, delay: float = 0.0):
    directory.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "tests.tune_machine", role, tiny_bert, storage, str(store), str(delay)]
    return subprocess.Popen(args, cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_study(storage: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not optuna.get_all_study_summaries(storage, include_best_trial=False):
        assert time.monotonic() < deadline, "the first machine never created the study"
        time.sleep(0.5)


def load_study(storage: str) -> optuna.Study:
    (summary,) = optuna.get_all_study_summaries(storage, include_best_trial=False)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def finish(process, timeout_s: float = 600) -> str:
    output, _ = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, output
    return output


def test_two_machines_on_postgres_search_the_grid_of_one_machine(postgres, tiny_bert, one_machine, tmp_path):  # noqa: F811
    storage, store = postgres.create_database("two_machines"), tmp_path / "shared-artifacts"
    # host-a's trials are slowed down, so host-b starts (imports torch) before host-a has trained them all
    first = start_machine(tmp_path / "host-a", "tune", tiny_bert, storage, store, delay=3)
    wait_for_study(storage)
    second = start_machine(tmp_path / "host-b", "join", tiny_bert, storage, store, delay=0.3)
    finish(second)
    finish(first)

    results = json.loads((tmp_path / "host-a/models/tune/tuning_results.json").read_text())
    assert by_config(results) == by_config(one_machine)  # same trials, same figures
    assert results["best_hyperparameters"] == one_machine["best_hyperparameters"]
    study = load_study(storage)
    trained = tuning.trained_trials(study)
    pids = {t.user_attrs["worker"]["pid"] for t in trained}
    assert len(trained) == 4 and len(pids) == 2  # both machines trained trials

    # every completed trial is in the artifact store; the best one is in host-a's models/tune
    best = tmp_path / f"host-a/models/tune/config_{results['best_trial']}"
    assert (best / "model/config.json").is_file() and (best / "trial.json").is_file()
    on_b = [t for t in trained if (tmp_path / f"host-b/models/tune/config_{t.number}").is_dir()]
    assert on_b and all("artifact" in t.user_attrs for t in trained)
    fetched = tmp_path / "fetched"
    fetch_trial_dir(str(store), on_b[0], fetched)
    original = tmp_path / f"host-b/models/tune/config_{on_b[0].number}"
    files = sorted(p.relative_to(original) for p in original.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(fetched) for p in fetched.rglob("*") if p.is_file())
    assert all((original / f).read_bytes() == (fetched / f).read_bytes() for f in files)


def test_a_killed_machines_trial_is_retried_elsewhere_and_the_search_ends_with_every_trial(
    postgres, tiny_bert, one_machine, tmp_path
):  # noqa: F811
    storage, store = postgres.create_database("killed_machine"), tmp_path / "shared-artifacts"
    first = start_machine(tmp_path / "host-a", "tune", tiny_bert, storage, store, delay=4)
    wait_for_study(storage)
    second = start_machine(tmp_path / "host-b", "join", tiny_bert, storage, store, delay=10)  # killed mid-trial
    deadline = time.monotonic() + 120
    while True:
        running = [
            t
            for t in load_study(storage).get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get("worker", {}).get("pid") == second.pid
        ]
        if running:
            break
        assert second.poll() is None and time.monotonic() < deadline, "host-b never started a trial"
        time.sleep(0.2)
    second.send_signal(signal.SIGKILL)
    second.communicate()
    (killed,) = running
    finish(first)

    results = json.loads((tmp_path / "host-a/models/tune/tuning_results.json").read_text())
    assert by_config(results) == by_config(one_machine)  # every trial, the killed one's configuration too
    study = load_study(storage)
    assert study.trials[killed.number].state == TrialState.FAIL  # failed by its missing heartbeat
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert retry.user_attrs["worker"]["pid"] == first.pid  # run again on the machine still alive
    best = tmp_path / f"host-a/models/tune/config_{results['best_trial']}"
    assert (best / "model/config.json").is_file()


def test_a_worker_elsewhere_needs_the_database_and_the_artifact_store_and_a_trial_it_cannot_fetch_is_named(tmp_path):
    with pytest.raises(PipelineError, match=r"tune.storage = null: a worker on another machine"):
        tuning.join_search(None, None, tmp_path, SPACE, "cpu", storage=None, artifact_store=str(tmp_path))
    with pytest.raises(PipelineError, match=r"tune.artifact_store = null: a worker on another machine"):
        tuning.join_search(None, None, tmp_path, SPACE, "cpu", storage="postgresql://h/db", artifact_store=None)
    (tmp_path / "file").write_text("")
    with pytest.raises(PipelineError, match=r"tune.artifact_store = .*file/store.*: not a directory this machine"):
        tuning.check_artifact_store(str(tmp_path / "file/store"))
    trial = optuna.create_study().ask()
    trial.set_user_attr("worker", {"host": "gpu-7"})
    frozen = trial.study.trials[0]
    with pytest.raises(PipelineError, match=r"config_0: missing; trial 0 ran on gpu-7 and no artifact store holds"):
        fetch_trial_dir(None, frozen, tmp_path / "config_0")


def test_the_tune_stage_depends_on_every_tune_key_but_the_storage_url():
    """dvc.lock records a stage's params: tune.storage (a database URL, perhaps with a password) is left out,
    every other key of params.yaml's tune section is listed, so a changed search still re-runs the stage."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    listed = set(yaml.load((REPO / "dvc.yaml").read_text())["stages"]["tune"]["params"])
    keys = {f"tune.{key}" for key in yaml.load((REPO / "params.yaml").read_text())["tune"]}
    assert "tune" not in listed and "tune.storage" not in listed
    assert keys - {"tune.storage"} <= listed, keys - listed


@pytest.mark.slow
def test_a_password_in_tune_storage_reaches_no_file_and_no_output(project, tmp_path):
    """`dvc repro tune` against a real PostgreSQL that asks for a password (SCRAM): the search runs, and the
    password is in no file of the repository (dvc.lock, DVC's cache and run-cache, metrics, models) and in no
    line DVC or the stage printed; only params.yaml, where the user wrote it, holds it."""
    from tests.fixtures import run_checked, set_params, write_tiny_bert
    from tests.postgres import PostgresServer, server_binaries

    if server_binaries() is None:
        pytest.skip("needs the PostgreSQL server (tests/postgres.py)")
    password = "Pg-S3cret-4242"
    server = PostgresServer(server_binaries(), password=password)
    server.start()
    try:
        work, env = project
        set_params(
            work / "params.yaml",
            {
                "model_name": str(write_tiny_bert(tmp_path / "tiny-bert")),
                "num_epochs": 1,
                "batch_size": 4,
                "max_length": 32,
                "bert.eval_batch_size": 16,
                "tune.n_trials": 1,
                "tune.train_fraction": 1.0,
                "tune.storage": server.url("postgres"),
            },
        )
        out = run_checked([sys.executable, "-m", "dvc", "repro", "tune"], work, {**env, "OMP_NUM_THREADS": "1"})
        assert "Running stage 'tune'" in out and password not in out, out
        assert json.loads((work / "metrics/tune.json").read_text())["best_trial"] is not None
        leaked = [
            path.relative_to(work)
            for path in work.rglob("*")
            if path.is_file() and path.name != "params.yaml" and password.encode() in path.read_bytes()
        ]
        assert not leaked, leaked
        assert "tune.storage" not in (work / "dvc.lock").read_text()
    finally:
        server.stop()

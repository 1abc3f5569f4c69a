"""tune on Optuna: parallel workers sharing a journal, median pruning, resume after SIGKILL.

Trials train the 2-layer BERT that tests/fixtures.py builds on the fixture tweets.
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

from src import tuning
from src.core.params import load_params
from src.data.preprocess import Split, normalize_tweet, write_split
from src.models import training
from tests.fixtures import bert_loaders, tiny_splits

REPO = Path(__file__).resolve().parents[1]
QUALITY = ("val_loss", "val_accuracy", "val_macro_recall", "val_macro_f1", "best_epoch")


class SlowLoader:
    """A training loader that takes ``delay`` seconds longer per epoch, so that trials last long
    enough for two workers to overlap (picklable: spawned workers receive it)."""

    def __init__(self, loader, delay: float):
        self.loader, self.delay = loader, delay

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        time.sleep(self.delay)
        return iter(self.loader)


def load_study(directory: Path) -> optuna.Study:
    storage = tuning.open_storage(None, directory)
    (summary,) = optuna.get_all_study_summaries(storage, include_best_trial=False)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def by_config(results: dict) -> dict:
    return {json.dumps(t["params"], sort_keys=True): {k: t[k] for k in QUALITY} for t in results["trials"]}


def search(tiny_bert, directory, workers, **options):  # noqa: F811
    _, train_loader, val_loader = bert_loaders(tiny_bert)
    return training.hyperparameter_tuning(
        SlowLoader(train_loader, 0.5),
        val_loader,
        None,
        directory,
        {"learning_rate": [1e-4, 3e-4, 1e-3, 3e-3]},
        "cpu",
        base_hyperparameters={"num_epochs": 2},
        method="random",
        n_trials=4,
        seed=3,
        workers=workers,
        model_name=tiny_bert,
        **options,
    )


def test_two_workers_split_the_trials_run_no_configuration_twice_and_match_one_worker(tiny_bert, tmp_path):  # noqa: F811
    search(tiny_bert, tmp_path / "two", workers=2)
    results = json.loads((tmp_path / "two/tuning_results.json").read_text())
    study = load_study(tmp_path / "two")

    trained = tuning.trained_trials(study)
    assert len(trained) == len(results["trials"]) == 4
    workers = {t.user_attrs["worker"]["pid"] for t in trained}
    assert len(workers) == 2 and os.getpid() not in workers  # both spawned workers trained trials
    configs = [json.dumps(t.params, sort_keys=True) for t in trained]
    assert len(set(configs)) == 4  # every configuration of the space once
    # random draws with replacement: repeats were skipped, never trained
    skipped = [t for t in study.trials if "skipped" in t.user_attrs]
    assert results["skipped"] == len(skipped) and all(t.state == optuna.trial.TrialState.FAIL for t in skipped)

    assert study.best_trial.number == results["best_trial"]
    assert study.best_value == max(t["val_macro_recall"] for t in results["trials"])
    best_trial_record = next(t for t in results["trials"] if t["trial"] == results["best_trial"])
    assert results["best_hyperparameters"] == best_trial_record["hyperparameters"]
    assert json.loads((tmp_path / "two/best_hyperparameters.json").read_text()) == results["best_hyperparameters"]
    assert sorted(p.name for p in (tmp_path / "two").glob("config_*")) == sorted(f"config_{t.number}" for t in trained)
    assert (tmp_path / f"two/config_{results['best_trial']}/model/config.json").is_file()

    # trials are seeded from their number and configuration, not from the worker that ran them
    search(tiny_bert, tmp_path / "one", workers=1)
    one = json.loads((tmp_path / "one/tuning_results.json").read_text())
    assert by_config(one) == by_config(results)
    assert [t["trial"] for t in one["trials"]] == [t["trial"] for t in results["trials"]]
    assert one["best_trial"] == results["best_trial"]


def test_pruning_stops_a_trial_that_is_clearly_behind(tiny_bert, tmp_path):  # noqa: F811
    _, train_loader, val_loader = bert_loaders(tiny_bert)
    # grid, seed 1: trial 0 learns (3e-3), trial 1 cannot move (1e-9) and falls below the median
    space = {"learning_rate": [3e-3, 1e-9]}
    training.hyperparameter_tuning(
        train_loader,
        val_loader,
        None,
        tmp_path,
        space,
        "cpu",
        method="grid",
        seed=1,
        base_hyperparameters={"num_epochs": 8, "batch_size": 8},
        model_name=tiny_bert,
        pruning={"enabled": True, "startup_trials": 1, "warmup_epochs": 0},
    )
    results = json.loads((tmp_path / "tuning_results.json").read_text())
    good, bad = results["trials"]
    assert (good["params"], bad["params"]) == ({"learning_rate": 3e-3}, {"learning_rate": 1e-9})
    assert (good["state"], good["epochs_run"]) == ("complete", 8)
    assert bad["state"] == "pruned" and bad["epochs_run"] < 8 and results["pruned"] == 1
    assert bad["val_macro_recall"] < good["val_macro_recall"]
    assert results["best_trial"] == good["trial"]
    assert not list((tmp_path / f"config_{bad['trial']}").glob("*.pt"))  # a pruned trial keeps its record only
    assert json.loads((tmp_path / f"config_{bad['trial']}/trial.json").read_text())["state"] == "pruned"


def score_of(trial, config, device):
    """A stand-in for training: a deterministic score of the configuration."""
    return -abs(config["learning_rate"] - 3e-4) - config["warmup_ratio"]


@pytest.mark.parametrize(
    "method, rdb",
    [("grid", False), ("random", False), ("tpe", False), ("random", True)],
    ids=["grid", "random", "tpe", "random-rdb"],
)
def test_every_sampler_trains_n_distinct_configurations_reproducibly(tmp_path, method, rdb):
    space = {"learning_rate": [1e-4, 3e-4, 1e-3], "warmup_ratio": [0.0, 0.1]}

    def run(directory, n_trials):
        fingerprint = {"params": {"method": method, "dir": str(directory)}}
        storage = f"sqlite:///{tmp_path / 'optuna.db'}" if rdb else None  # RDB: one database, a study per search
        search = tuning.Search(
            directory, storage, tuning.study_name(fingerprint), space, method, 7, n_trials, "maximize", None
        )
        study, _ = tuning.prepare_study(search, fingerprint)
        tuning.run_search(search, score_of, "cpu", workers=1)
        return [(t.number, t.params) for t in tuning.trained_trials(study)]

    trials = run(tmp_path / "a", 5)
    assert len(trials) == 5 and len({json.dumps(p, sort_keys=True) for _, p in trials}) == 5
    assert run(tmp_path / "b", 5) == trials  # same seed, same trials
    every = run(tmp_path / "c", 50)  # more than the space holds: each combination once, then stop
    assert len(every) == 6 and len({json.dumps(p, sort_keys=True) for _, p in every}) == 6


@pytest.mark.parametrize("method", ["grid", "random"])
def test_a_trial_killed_before_its_first_suggestion_resumes_with_the_configuration_of_its_number(tmp_path, method):
    space = {"learning_rate": [1e-4, 3e-4, 1e-3], "warmup_ratio": [0.0, 0.1]}
    fingerprint = {"params": {"method": method}}

    def search(directory):
        return tuning.Search(directory, None, tuning.study_name(fingerprint), space, method, 5, 3, "maximize", None)

    study, _ = tuning.prepare_study(search(tmp_path / "whole"), fingerprint)
    tuning.run_search(search(tmp_path / "whole"), score_of, "cpu", workers=1)
    whole = [(t.number, t.params) for t in tuning.trained_trials(study)]

    interrupted = search(tmp_path / "killed")
    study, _ = tuning.prepare_study(interrupted, fingerprint)
    interrupted.open().ask()  # trial 0 asked, then the process died: RUNNING, no params
    study, adopt = tuning.prepare_study(interrupted, fingerprint)
    assert adopt == [0]
    tuning.run_search(interrupted, score_of, "cpu", workers=1, adopt=adopt)
    assert [(t.number, t.params) for t in tuning.trained_trials(study)] == whole


# ---- the stage, killed and resumed ----------------------------------------------------------------------
def write_tune_inputs(directory: Path, model_dir: str, tune: dict) -> None:
    splits = tiny_splits()
    for name in ("train", "val"):
        rows = splits[name]
        write_split(
            directory / f"data/processed/{name}.jsonl",
            Split([normalize_tweet(t) for t, _ in rows], [y for _, y in rows]),
        )
    params = load_params(REPO / "params.yaml")
    params.update(model_name=model_dir, num_epochs=5, batch_size=8, max_length=32)
    params["bert"]["eval_batch_size"] = 16
    params["tune"].update(train_fraction=1.0, **tune)
    (directory / "params.yaml").write_text(json.dumps(params), encoding="utf-8")  # JSON is YAML


def run_tune(directory: Path, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONSAFEPATH", None)
    return subprocess.Popen(
        [sys.executable, "-m", "stages.tune"],
        cwd=directory,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **kwargs,
    )


def completed_trials(directory: Path) -> dict[int, dict]:
    """The trials a running search has finished: in its resume directory (.resume/tune/<key>/) until it ends."""
    records = {}
    for path in directory.glob(".resume/tune/*/config_*/trial.json"):
        record = json.loads(path.read_text())
        records[record["trial"]] = record
    return records


def workers_of(parent_pid: int) -> list[int]:
    """Live spawned worker processes whose parent is ``parent_pid`` (not multiprocessing's resource tracker)."""
    children = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent_pid and fields[0] != "Z" and b"spawn_main" in (entry / "cmdline").read_bytes():
                children.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return children


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_tune_continues_from_the_trials_it_completed(tiny_bert, tmp_path):  # noqa: F811
    space = {"learning_rate": [1e-4, 3e-4, 1e-3, 3e-3], "warmup_ratio": [0.0, 0.1]}
    write_tune_inputs(
        tmp_path,
        tiny_bert,
        {
            "method": "grid",
            "n_trials": 4,
            "workers": 2,
            "search_space": space,
            "pruning": {"enabled": False, "startup_trials": 2, "warmup_epochs": 0},
        },
    )
    process = run_tune(tmp_path)
    deadline = time.monotonic() + 120
    while not completed_trials(tmp_path) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    workers = workers_of(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    output, _ = process.communicate(timeout=30)
    before = completed_trials(tmp_path)
    assert process.returncode == -signal.SIGKILL and 1 <= len(before) < 4, output
    assert len(workers) == 2
    for _ in range(100):  # the kernel ends the workers with their parent (PR_SET_PDEATHSIG)
        if not any(alive(pid) for pid in workers):
            break
        time.sleep(0.05)
    assert not [pid for pid in workers if alive(pid)]

    # what a kill in the middle of an append leaves: the journal's lock, a line cut short
    (journal,) = tmp_path.glob(".resume/tune/*/optuna_journal.log")  # the killed search's, in its resume directory
    lock = Path(f"{journal.resolve()}.lock")
    if not lock.is_symlink():  # the kill may have left it already
        os.symlink(journal.resolve(), lock)
    with open(journal, "ab") as handle:
        handle.write(b'{"op_code": 5, "worker_id": "killed", "trial_id": 0, "par')

    # resumed with one worker: tune.workers is not part of the search's fingerprint
    params = json.loads((tmp_path / "params.yaml").read_text())
    params["tune"]["workers"] = 1
    (tmp_path / "params.yaml").write_text(json.dumps(params), encoding="utf-8")
    again = run_tune(tmp_path)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    assert "resuming the unfinished study" in output and "was interrupted: training it again" in output, output
    assert "optuna_journal.log.lock, left by a worker killed while writing" in output, output
    # the cut record is named by its line and dropped with what follows it (a kill cuts the last line)
    assert "not a whole JSON record (cut short by a kill?): dropping it and every line after it" in output, output
    results = json.loads((tmp_path / "models/tune/tuning_results.json").read_text())
    # the trials an uninterrupted run holds: grid points 0-3 under trial numbers 0-3, once each
    assert [t["trial"] for t in results["trials"]] == [0, 1, 2, 3]
    assert len({json.dumps(t["params"], sort_keys=True) for t in results["trials"]}) == 4
    after = {t["trial"]: t for t in results["trials"]}
    for number, record in before.items():  # kept, not trained again
        assert {k: after[number][k] for k in QUALITY} == {k: record[k] for k in QUALITY}
        assert after[number]["time_s"] == record["time_s"]
    metrics = json.loads((tmp_path / "metrics/tune.json").read_text())
    assert metrics["trials"] == 4 and metrics["best_trial"] == results["best_trial"]


def test_a_changed_search_or_a_finished_one_starts_a_new_study_and_says_why(tmp_path, caplog):
    def prepare(space, fingerprint):
        search = tuning.Search(tmp_path, None, tuning.study_name(fingerprint), space, "grid", 0, 2, "maximize", None)
        return search, tuning.prepare_study(search, fingerprint)[0]

    space = {"learning_rate": [1e-3, 2e-3]}
    old = {"params": {"tune.search_space.learning_rate": [1e-3, 2e-3]}}
    search, study = prepare(space, old)
    trial = study.ask()
    trial.suggest_categorical("learning_rate", space["learning_rate"])
    study.tell(trial, 0.5)
    (tmp_path / "config_0").mkdir()
    caplog.set_level("INFO", logger="src.tuning")

    _, again = prepare(space, old)  # unfinished, same fingerprint: resumed
    assert len(again.trials) == 1 and "resuming the unfinished study" in caplog.text

    new = {"params": {"tune.search_space.learning_rate": [1e-3, 5e-3]}}
    _, fresh = prepare({"learning_rate": [1e-3, 5e-3]}, new)
    assert fresh.trials == [] and not (tmp_path / "config_0").exists()
    assert "params changed: tune.search_space.learning_rate [0.001, 0.002] -> [0.001, 0.005]" in caplog.text

    fresh.set_user_attr("finished", True)
    _, after_finished = prepare({"learning_rate": [1e-3, 5e-3]}, new)
    assert "the search that wrote it had finished" in caplog.text and after_finished.user_attrs.get("finished") is None


# ---- DVC's queue ---------------------------------------------------------------------------------------
def _end_idle_workers(work: Path) -> None:
    """End the queue workers still running in ``work``: a worker can miss the shutdown its own monitor
    broadcasts when the queue empties and wait idle for ever (DVC's filesystem broker; treeverse/dvc#10427)."""
    for pid_file in (work / ".dvc/tmp/exps/celery").glob("dvc-exp-worker-*.pid"):
        pid = int(pid_file.read_text())
        try:  # only a process that is still a queue worker in this repository (a pid can be reused)
            proc = Path(f"/proc/{pid}")
            if b"queue-worker" in (proc / "cmdline").read_bytes() and (proc / "cwd").resolve() == work.resolve():
                os.kill(pid, signal.SIGTERM)
        except (FileNotFoundError, ProcessLookupError):
            pass


def test_two_queued_experiments_run_in_parallel_and_each_trains_from_scratch(project, tmp_path):  # noqa: F811
    """`dvc exp run --queue` twice, `dvc queue start -j 2`: both finish and `dvc exp show` lists both.
    Each runs in a temporary copy (.dvc/tmp/exps) and trains in a resume directory keyed by its own params
    (.resume/train_bert/<key>/), so neither resumes the baseline's checkpoints or the other's."""
    from tests.fixtures import run_checked, set_params, write_tiny_bert

    work, env = project
    env = {**env, "OMP_NUM_THREADS": "1"}
    dvc = [sys.executable, "-m", "dvc"]
    set_params(
        work / "params.yaml",
        {
            "model_name": str(write_tiny_bert(tmp_path / "tiny-bert")),
            "num_epochs": 1,
            "batch_size": 8,
            "max_length": 32,
            "bert.eval_batch_size": 16,
        },
    )
    run_checked(dvc + ["repro", "train_bert"], work, env)
    run_checked(["git", "add", "-A"], work, env)
    run_checked(["git", "commit", "-qm", "baseline"], work, env)

    for rate in ("3e-5", "1e-4"):  # both differ from params.yaml's learning rate (5e-5)
        run_checked(dvc + ["exp", "run", "--queue", "-S", f"learning_rate={rate}", "train_bert"], work, env)
    try:
        # the workers `queue start` leaves behind inherit its output: a file, not a pipe that the test
        # would read until the last worker exits
        with open(tmp_path / "queue_start.log", "w") as log:
            started = subprocess.run(dvc + ["queue", "start", "-j", "2"], cwd=work, env=env, stdout=log, stderr=log)
        assert started.returncode == 0, (tmp_path / "queue_start.log").read_text()
        deadline, status = time.monotonic() + 300, ""
        while time.monotonic() < deadline:  # git refs are cheap to poll; a dvc command costs seconds of CPU
            time.sleep(1)
            finished = subprocess.run(
                ["git", "for-each-ref", "refs/exps"], cwd=work, capture_output=True, text=True
            ).stdout.count("\n")
            if finished == 2 or (
                time.monotonic() % 15 < 1 and "Failed" in (status := run_checked(dvc + ["queue", "status"], work, env))
            ):
                break
        status = run_checked(dvc + ["queue", "status"], work, env)
        assert status.count("Success") == 2, status
    finally:
        subprocess.run(dvc + ["queue", "stop", "--kill"], cwd=work, env=env, capture_output=True, timeout=120)
        _end_idle_workers(work)

    shown = json.loads(run_checked(dvc + ["exp", "show", "--json"], work, env))
    runs = {
        rev["name"]: rev["data"] for entry in shown for exp in entry.get("experiments") or [] for rev in exp["revs"]
    }
    assert sorted(data["params"]["params.yaml"]["data"]["learning_rate"] for data in runs.values()) == [3e-5, 1e-4]
    # each trained its own model: train_bert's output directory differs between them
    models = {data["outs"]["models/bert"]["hash"] for data in runs.values()}
    assert len(models) == 2 and None not in models, models
    for name in runs:
        log = run_checked(dvc + ["queue", "logs", name], work, env)
        assert "Running stage 'train_bert'" in log and "Running stage 'preprocess'" not in log, log
        assert "epoch 1/1" in log and "resuming from" not in log, log  # trained from scratch


@pytest.mark.parametrize("data_filter", [True, False], ids=["tarfile-data-filter", "by-hand"])
def test_a_fetched_trial_archive_extracts_inside_its_directory_only(tmp_path, monkeypatch, data_filter):
    """The artifact store's tar files: with tarfile's data filter, or by hand where Python lacks it (3.11.2)."""
    import io
    import tarfile

    from src.core.errors import PipelineError
    from src.core.paths import extract_inside

    if not data_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python's tarfile has no data filter")

    def archive(*members: tarfile.TarInfo) -> Path:
        path = tmp_path / f"a{len(list(tmp_path.glob('a*.tar')))}.tar"
        with tarfile.open(path, "w") as tar:
            for member in members:
                tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
        return path

    def file(name: str) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size = 1
        return info

    directory = tmp_path / "trial"
    sub = tarfile.TarInfo("model")
    sub.type = tarfile.DIRTYPE
    with tarfile.open(archive(sub, file("model/config.json"), file("trial.json"))) as tar:
        extract_inside(tar, directory, "trial 3")
    assert sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")) == [
        "model",
        "model/config.json",
        "trial.json",
    ]

    link_out = tarfile.TarInfo("model/link")
    link_out.type, link_out.linkname = tarfile.SYMTYPE, "/etc/passwd"
    for hostile in (file("../escaped.txt"), link_out):
        with tarfile.open(archive(hostile)) as tar, pytest.raises(PipelineError, match="^trial 3: refused"):
            extract_inside(tar, tmp_path / "other", "trial 3")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "other/model/link").is_symlink()
    # an absolute name: the data filter strips its leading "/" (it lands inside), by hand it is refused
    with tarfile.open(archive(file(f"{tmp_path}/absolute.txt"))) as tar:
        try:
            extract_inside(tar, tmp_path / "third", "trial 3")
        except PipelineError as exc:
            assert not data_filter and str(exc).startswith("trial 3: refused")
    assert not (tmp_path / "absolute.txt").exists()

"""The resume directory of a training stage (src/checkpoints/resume_dir.py): keyed by the run's
fingerprint, published into the DVC output as a whole, removed once published; and end to end, DVC's
run-cache restoring every stage (an experiment, back to the baseline, a fresh clone) while a killed
training stage still resumes."""

import json
from pathlib import Path

import pytest

from src.checkpoints.resume_dir import publish, resume_dir, run_key
from tests.fixtures import PIPELINE_STAGES, stages_restored, stages_run, stages_unchanged


def test_equal_fingerprints_share_a_key_and_a_changed_one_gets_its_own():
    fingerprint = {"params": {"lstm.seed": 1}, "data": {"train.jsonl": "a"}, "code": {"src/x.py": "b"}}
    assert run_key(fingerprint) == run_key({"code": {"src/x.py": "b"}, "data": {"train.jsonl": "a"}, **fingerprint})
    assert run_key(fingerprint) != run_key({**fingerprint, "params": {"lstm.seed": 2}})
    assert len(run_key(fingerprint)) == 16


def test_publish_replaces_the_output_with_the_model_files_and_removes_the_resume_state(tmp_path):
    root = tmp_path / ".resume"
    work = resume_dir("train_lstm", {"params": {"seed": 1}}, root)
    other = resume_dir("train_lstm", {"params": {"seed": 2}}, root)  # another run's state: kept
    assert work.parent == other.parent == root / "train_lstm" and work != other
    assert not root.exists()  # named, not made: the run makes it when it first writes there
    (work / "model").mkdir(parents=True)
    other.mkdir()
    for name in ("best_model.pt", "training_history.json", "model/config.json", "checkpoint_epoch_1.pt"):
        (work / name).write_text(name)
    (work / "checkpoint_registry.json").write_text("{}")
    output = tmp_path / "models/lstm"
    output.mkdir(parents=True)
    (output / "stale.pt").write_text("the previous model")

    assert publish(work, output) == output
    assert sorted(p.relative_to(output).as_posix() for p in output.rglob("*")) == [
        "best_model.pt",
        "model",
        "model/config.json",
        "training_history.json",
    ]
    assert (output / "best_model.pt").read_text() == "best_model.pt"
    assert not work.exists() and other.is_dir()
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]  # no staging left beside it

    publish(other, tmp_path / "models/other")  # the last run of the stage: .resume goes with it
    assert not root.exists() and Path(tmp_path / "models/other").is_dir()


# ---- end to end: DVC's run-cache covers every stage, and a killed training stage still resumes -------------
STAGES = PIPELINE_STAGES
BASELINE_LR, EXPERIMENT_LR = "5e-5", "3e-5"  # params.yaml's learning_rate, and the experiment's
TINY = {  # tests/test_pipeline_e2e.py's settings, with params.yaml's learning rate
    "num_epochs": 2,
    "batch_size": 4,
    "max_length": 32,
    "bert.eval_batch_size": 16,
    "lstm.hidden_dim": 8,
    "lstm.epochs": 2,
    "lstm.batch_size": 8,
    "tune.n_trials": 1,
    "tune.train_fraction": 1.0,
    "evaluate.batch_size": 16,
}


def _timed(transcript: list, command: list[str], cwd, env) -> str:
    """Run ``command`` (it must succeed), and keep its output and wall time for the transcript."""
    import time

    from tests.fixtures import run_checked

    start = time.monotonic()
    output = run_checked(command, cwd, env)
    shown = " ".join(["dvc", *command[3:]] if command[1:3] == ["-m", "dvc"] else ["python", *command[1:]])
    transcript.append(f"$ {shown}    # {time.monotonic() - start:.1f} s\n{output.rstrip()}\n")
    return output


def _stages_without_a_run_cache_entry(work, among: tuple[str, ...] = STAGES) -> list[str]:
    """The stages (``among``) that DVC's run-cache has no entry for, with their inputs as the workspace has them."""
    from dvc.repo import Repo

    with Repo(str(work)) as repo:
        stages = [stage for stage in repo.index.stages if stage.addressing in among]
        return [stage.addressing for stage in stages if repo.stage_cache._load(stage) is None]


@pytest.mark.slow
def test_going_back_to_the_baseline_and_a_fresh_clone_restore_every_stage_from_the_run_cache(project, tmp_path):
    """`dvc exp run -S learning_rate=3e-5`, then back to the baseline's 5e-5: every stage is restored from the
    run-cache or unchanged, nothing trains. The run-cache and the outputs its records name go to the team's
    remote (`python -m src.run_cache push`: `dvc push --run-cache` and those outputs), and a fresh clone's
    `dvc pull --run-cache`, then `dvc exp run --pull` with the same -S, trains nothing either (`--pull`:
    a restored stage's outputs come from the remote). RUN_CACHE_TRANSCRIPT=<file> keeps the commands' output
    and times."""
    import os
    import sys

    from tests.fixtures import run_checked, set_params, write_tiny_bert

    work, env = project
    env = {**env, "OMP_NUM_THREADS": "1"}
    dvc = [sys.executable, "-m", "dvc"]
    set_params(work / "params.yaml", {"model_name": str(write_tiny_bert(tmp_path / "tiny-bert")), **TINY})
    remote, origin = tmp_path / "dvc-remote", tmp_path / "origin.git"
    remote.mkdir()
    run_checked(dvc + ["remote", "add", "-d", "storage", str(remote)], work, env)  # the team's, in .dvc/config
    transcript: list[str] = []

    out = _timed(transcript, dvc + ["repro"], work, env)
    assert stages_run(out) == set(STAGES), out
    assert not _stages_without_a_run_cache_entry(work)  # every stage has its entry
    assert not (work / ".resume").exists()  # each run published and removed its resume state
    run_checked(["git", "init", "-q", "--bare", str(origin)], tmp_path, env)
    for cmd in (
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "baseline"],
        ["git", "branch", "-M", "main"],
        ["git", "remote", "add", "origin", str(origin)],
        ["git", "push", "-q", "origin", "main"],
    ):
        run_checked(cmd, work, env)
    assert not run_checked(["git", "status", "--porcelain"], work, env).strip()  # every output cached or committed
    baseline = (work / "metrics/bert/macro_recall.json").read_text()

    out = _timed(transcript, dvc + ["exp", "run", "-S", f"learning_rate={EXPERIMENT_LR}"], work, env)
    retrained = stages_run(out)
    assert {"train_bert", "evaluate@bert", "export_bert", "ensemble"} <= retrained, out
    assert retrained <= {"train_bert", "evaluate@bert", "export_bert", "ensemble", "evaluate@ensemble"}, out
    experiment = (work / "metrics/bert/macro_recall.json").read_text()

    out = _timed(transcript, dvc + ["exp", "run", "-S", f"learning_rate={BASELINE_LR}"], work, env)
    assert not stages_run(out), out  # back to the baseline: nothing trains
    assert retrained <= stages_restored(out), out
    assert stages_restored(out) | stages_unchanged(out) == set(STAGES), out
    assert (work / "metrics/bert/macro_recall.json").read_text() == baseline

    # the run-cache reaches a colleague: push it with its outputs; a fresh clone pulls it and trains nothing
    _timed(transcript, [sys.executable, "-m", "src.run_cache", "push"], work, env)
    clone = tmp_path / "clone"
    run_checked(["git", "clone", "-q", "-b", "main", str(origin), str(clone)], tmp_path, env)
    env = {**env, "PYTHONPATH": str(clone)}
    _timed(transcript, dvc + ["pull", "--run-cache"], clone, env)
    out = _timed(transcript, dvc + ["exp", "run", "--pull", "-S", f"learning_rate={EXPERIMENT_LR}"], clone, env)
    assert not stages_run(out), out
    assert retrained <= stages_restored(out) and stages_restored(out) | stages_unchanged(out) == set(STAGES), out
    assert (clone / "metrics/bert/macro_recall.json").read_text() == experiment
    assert "Data and pipelines are up to date" in run_checked(dvc + ["status"], clone, env)
    if os.environ.get("RUN_CACHE_TRANSCRIPT"):
        Path(os.environ["RUN_CACHE_TRANSCRIPT"]).write_text("\n".join(transcript), encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "upstream", "pause_step"),
    [
        ("train_bert", "preprocess", 12 + 3),  # 48 tweets in batches of 4: mid-epoch 2
        ("train_lstm", "build_vocab", 6 + 2),  # 48 tweets in batches of 8: mid-epoch 2
    ],
)
def test_a_killed_dvc_repro_resumes_outside_the_output_to_the_metrics_of_an_uninterrupted_run(
    project, tmp_path, stage, upstream, pause_step
):
    """SIGKILL the training process of `dvc repro <stage>` mid-epoch 2: its checkpoints are in
    .resume/<stage>/<key>/, the rerun resumes there, ends with the metrics and weights of an uninterrupted
    run (`dvc repro --force`), removes the resume state and saves the stage's run-cache entry."""
    import os
    import signal
    import subprocess
    import sys

    import torch

    from src.checkpoints.files import load_checkpoint_file
    from tests.fixtures import run_checked, set_params, write_tiny_bert
    from tests.test_resume import HANG_GUARD_S, pausing, wait_until_paused

    work, env = project
    env = {**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    dvc = [sys.executable, "-m", "dvc"]
    model = {"train_bert": "bert", "train_lstm": "lstm"}[stage]
    set_params(
        work / "params.yaml",
        {
            "model_name": str(write_tiny_bert(tmp_path / "tiny-bert")),
            **TINY,
            "num_epochs": 3,
            "learning_rate": 3e-3,
            "lstm.epochs": 3,
            "lstm.early_stopping_patience": None,
        },
    )
    run_checked(dvc + ["repro", upstream], work, env)
    paused_env, marker = pausing(env, tmp_path / "hook", f"stages.{stage}", pause_step)
    repro = subprocess.Popen(
        dvc + ["repro", stage], cwd=work, env=paused_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    os.kill(wait_until_paused(marker, repro), signal.SIGKILL)  # the training process only, as the OOM killer would
    output, _ = repro.communicate(timeout=HANG_GUARD_S)
    assert repro.returncode != 0, output
    (work_dir,) = (work / ".resume" / stage).iterdir()  # one run, keyed by its fingerprint
    assert (work_dir / "checkpoint_epoch_1.pt").is_file() and not (work / f"models/{model}").exists()

    output = run_checked(dvc + ["repro", stage], work, env)
    assert f"resuming from .resume/{stage}/{work_dir.name}/checkpoint_epoch_1.pt (epoch 1 done)" in output, output
    assert not (work / ".resume").exists()  # published, then removed
    assert not list((work / f"models/{model}").glob("checkpoint_*"))  # the output holds the model alone
    assert not _stages_without_a_run_cache_entry(work, (stage,))

    def results() -> tuple:
        metrics = json.loads((work / f"metrics/{model}/train.json").read_text())
        history = json.loads((work / f"models/{model}/training_history.json").read_text())
        history = {key: value for key, value in history.items() if "time" not in key}  # wall-clock seconds
        weights = load_checkpoint_file(work / f"models/{model}/best_model.pt")["model_state_dict"]
        return metrics, history, weights

    resumed = results()
    output = run_checked(dvc + ["repro", "--force", stage], work, env)  # the same run, never interrupted
    assert "resuming from" not in output, output
    uninterrupted = results()
    assert resumed[:2] == uninterrupted[:2]
    for name, tensor in resumed[2].items():
        assert torch.equal(tensor, uninterrupted[2][name]), name

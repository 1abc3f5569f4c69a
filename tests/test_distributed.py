"""Data-parallel training through torchrun on CPU (gloo): 2 processes train the LSTM and a tiny BERT,
rank 1 writes nothing, the figures match one process, a killed run resumes, a failing or hung rank
stops the run.

Every run uses the command dvc.yaml gives the stage (torchrun with the `distributed` params).
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from src.core.params import load_params
from src.data.batching import BucketBatchSampler
from src.data.preprocess import Split, normalize_tweet, write_split
from tests.fixtures import TINY_LSTM, tiny_splits, write_tiny_bert
from tests.test_resume import SLOW_LSTM, pausing, wait_until_paused, write_stage_inputs

REPO = Path(__file__).resolve().parents[1]
HARNESS = REPO / "tests" / "rank_harness.py"
QUALITY = ("val", "best_epoch", "epochs")  # metrics/<model>/train.json
# dropout off: 2 processes draw other dropout masks than 1, so only then can the figures agree closely
NO_DROPOUT_LSTM = {**SLOW_LSTM, "dropout": 0.0, "epochs": 3}
LSTM_ROWS = 1200  # 75 global batches of 16 per epoch


# ---- the batches: every rank its slice of the same global batches ---------------------------------------
@pytest.mark.parametrize("n", [1000, 1001, 1009, 3])
def test_ranks_split_the_global_batches_of_one_process(n):
    lengths = np.random.default_rng(0).integers(1, 40, size=n)
    single = BucketBatchSampler(lengths, 16, seed=3)
    shards = [BucketBatchSampler(lengths, 16, seed=3, num_replicas=3, rank=r) for r in range(3)]
    for sampler in (single, *shards):
        sampler.set_epoch(2)
    per_rank = [list(shard) for shard in shards]
    assert len({len(batches) for batches in per_rank}) == 1 == len({len(shard) for shard in shards})
    assert len(per_rank[0]) == len(shards[0])  # every rank runs the same number of steps
    assert all(batch for batches in per_rank for batch in batches)  # and none of them is empty
    steps = [sum(parts, []) for parts in zip(*per_rank)]
    reference = list(single)
    if n % 16 and n % 16 < 3 and n > 16:  # a last batch too small to share joins the one before it
        assert len(steps) == len(reference) - 1 and sorted(sum(steps, [])) == list(range(n))
    else:
        assert steps == reference  # the same global batches, in the same order


def test_fewer_examples_than_processes_is_a_clear_error():
    from src.core.errors import PipelineError

    with pytest.raises(PipelineError, match="2 training examples cannot be shared by 3 processes"):
        BucketBatchSampler([3, 4], 16, num_replicas=3, rank=0)


# ---- running stages as dvc.yaml does --------------------------------------------------------------------
def stage_command(stage: str, nproc: int, directory: Path, harness: bool = False) -> list[str]:
    """dvc.yaml's cmd for ``stage`` (src.launch through this Python), with ``nproc`` processes written
    into ``directory``'s params.yaml, which the launcher reads."""
    from ruamel.yaml import YAML

    cmd = YAML(typ="safe", pure=True).load((REPO / "dvc.yaml").read_text())["stages"][stage]["cmd"]
    args = shlex.split(cmd)
    assert args == ["python", "-m", "src.launch", f"stages.{stage}"], cmd
    params = json.loads((directory / "params.yaml").read_text())
    params["distributed"]["nproc_per_node"] = nproc
    (directory / "params.yaml").write_text(json.dumps(params))
    args = [sys.executable, *args[1:]]
    return [*args[:-1], str(HARNESS), f"stages.{stage}"] if harness else args


def run_env(**extra: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}
    env.pop("PYTHONSAFEPATH", None)
    return env


def torchrun(stage: str, directory: Path, nproc: int, timeout: float = 240, **extra: str):
    return subprocess.run(
        stage_command(stage, nproc, directory, harness=True),
        cwd=directory,
        env=run_env(**extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def in_one_thread(patch: pytest.MonkeyPatch) -> None:
    """As the torchrun workers run (OMP_NUM_THREADS=1): the same float arithmetic."""
    import torch

    patch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)  # as tests/test_train_lstm_stage.py does


def snapshot(directory: Path) -> dict:
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(directory.rglob("*"))
    }


def metrics(directory: Path, stage: str) -> dict:
    """metrics/<model>/train.json of ``stage`` (train_lstm, train_bert), its ``val`` completed with the best
    epoch's loss and macro-F1 from the model directory's training_history.json (the whole run's per-epoch
    lists, also after a resume; train.json keeps the headline figures)."""
    model = stage.removeprefix("train_")
    result = json.loads((directory / f"metrics/{model}/train.json").read_text())
    history = json.loads((directory / f"models/{model}/training_history.json").read_text())
    best = result["best_epoch"] - 1
    for key in ("loss", "macro_f1"):  # the guide's keys (BERT) or the engine's (the LSTM's command line)
        values = history.get(f"val_{key}") or history[{"loss": "val_losses", "macro_f1": "val_macro_f1s"}[key]]
        result["val"][key] = values[best]
    return result


def two_processes(stage: str, directory: Path) -> subprocess.CompletedProcess:
    """Rank 0 in ``directory``, rank 1 in a copy of its inputs; asserts that rank 1 wrote nothing there."""
    import shutil

    rank1 = directory.with_name(directory.name + "-rank1")
    shutil.copytree(directory, rank1)
    before = snapshot(rank1)
    result = torchrun(stage, directory, 2, TEST_RANK_DIR_1=str(rank1))
    assert result.returncode == 0, result.stdout + result.stderr
    assert snapshot(rank1) == before, "rank 1 wrote files"
    return result


# ---- LSTM --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lstm_runs(tmp_path_factory):
    """The LSTM stage on the same inputs: in-process, the launcher with 1 process (in its own process), torchrun
    with 2."""
    from stages import train_lstm

    root = tmp_path_factory.mktemp("lstm")
    for name in ("in_process", "torchrun_1", "torchrun_2"):
        write_stage_inputs(root / name, NO_DROPOUT_LSTM, LSTM_ROWS)
    with pytest.MonkeyPatch.context() as patch:
        in_one_thread(patch)
        patch.chdir(root / "in_process")
        train_lstm.main(load_params("params.yaml"))
    result = torchrun("train_lstm", root / "torchrun_1", 1)
    assert result.returncode == 0, result.stderr
    return root, two_processes("train_lstm", root / "torchrun_2")


def test_one_process_through_the_launcher_is_exactly_the_in_process_run(lstm_runs):
    root, _ = lstm_runs
    assert metrics(root / "torchrun_1", "train_lstm") == metrics(root / "in_process", "train_lstm")


def test_two_processes_train_the_lstm_like_one(lstm_runs):
    root, result = lstm_runs
    assert "data-parallel: 2 processes (gloo)" in result.stderr
    single, parallel = metrics(root / "in_process", "train_lstm"), metrics(root / "torchrun_2", "train_lstm")
    assert parallel["epochs"] == single["epochs"] == NO_DROPOUT_LSTM["epochs"]
    assert parallel["best_epoch"] == single["best_epoch"]
    assert parallel["val"]["loss"] == pytest.approx(single["val"]["loss"], abs=2e-3)
    for key in ("accuracy", "macro_recall", "macro_f1"):
        assert parallel["val"][key] == pytest.approx(single["val"][key], abs=0.02), key
    assert not (root / "torchrun_2/.resume").exists()  # finished: the resume state went, the model stayed
    for name in ("best_model.pt", "model_config.json", "vocab.json", "training_history.json"):
        assert (root / "torchrun_2/models/lstm" / name).is_file()
    assert (root / "torchrun_2/dvclive/train_lstm/plots/metrics/val/macro_f1.tsv").is_file()
    # DVCLive under torchrun: rank 0 logs every global step and epoch (rank 1 wrote nothing: two_processes)
    live = {name: root / name / "dvclive/train_lstm/plots/metrics" for name in ("in_process", "torchrun_2")}
    rows = {name: (path / "train/loss.tsv").read_text().splitlines() for name, path in live.items()}
    assert len(rows["torchrun_2"]) == len(rows["in_process"]) > NO_DROPOUT_LSTM["epochs"]
    epochs = (live["torchrun_2"] / "epoch.tsv").read_text().splitlines()[1:]
    assert [int(row.split("\t")[1]) for row in epochs] == list(range(1, NO_DROPOUT_LSTM["epochs"] + 1))


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_result(lstm_runs, tmp_path):
    import signal

    root, _ = lstm_runs
    write_stage_inputs(tmp_path, NO_DROPOUT_LSTM, LSTM_ROWS)
    # both ranks pause at the 10th step of epoch 2 (after checkpoint 1), so the kill lands there
    # whatever the machine's load (see tests/test_resume.py's PAUSE_HOOK)
    env, marker = pausing(run_env(), tmp_path.with_name(tmp_path.name + "-hook"), "stages.train_lstm", 75 + 10)
    launcher = subprocess.Popen(
        stage_command("train_lstm", 2, tmp_path),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until_paused(marker, launcher)
    launcher.send_signal(signal.SIGKILL)  # torchrun alone, as `kill -9` or the OOM killer would
    _, stderr = launcher.communicate(timeout=60)  # returns once the workers, holding the pipes, are gone
    assert not (tmp_path / "metrics/lstm/train.json").exists(), "the kill came too late"
    assert "interrupted by SIGTERM: last checkpoint .resume/train_lstm/" in stderr, stderr

    result = subprocess.run(
        stage_command("train_lstm", 2, tmp_path),
        cwd=tmp_path,
        env=run_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert "resuming from .resume/train_lstm/" in result.stderr
    uninterrupted = root / "torchrun_2"
    assert {k: metrics(tmp_path, "train_lstm")[k] for k in QUALITY} == {
        k: metrics(uninterrupted, "train_lstm")[k] for k in QUALITY
    }
    history = json.loads((tmp_path / "models/lstm/training_history.json").read_text())
    expected = json.loads((uninterrupted / "models/lstm/training_history.json").read_text())
    assert (history["train_losses"], history["val_losses"]) == (expected["train_losses"], expected["val_losses"])


def test_the_world_size_is_part_of_the_fingerprint(lstm_runs):
    import torch

    root, _ = lstm_runs
    for name, world in (("torchrun_1", 1), ("torchrun_2", 2)):
        checkpoint = torch.load(root / name / "models/lstm/best_model.pt", weights_only=True)
        assert checkpoint["fingerprint"]["params"]["distributed.world_size"] == world


# ---- BERT --------------------------------------------------------------------------------------------------
def write_bert_inputs(directory: Path, model_dir: Path) -> None:
    for split in ("train", "val"):
        rows = tiny_splits()[split]
        write_split(
            directory / f"data/processed/{split}.jsonl",
            Split([normalize_tweet(t) for t, _ in rows], [y for _, y in rows]),
        )
    params = load_params(REPO / "params.yaml")
    params.update(
        model_name=str(model_dir),
        num_epochs=4,
        learning_rate=3e-3,
        batch_size=8,
        max_length=32,
        dropout_prob=0.0,
        warmup_ratio=0.1,
        seed=1,
    )
    params["bert"].update(device="cpu", eval_batch_size=16, mixed_precision=False)
    (directory / "params.yaml").write_text(json.dumps(params), encoding="utf-8")


def test_two_processes_fine_tune_a_tiny_bert_like_one(tmp_path, monkeypatch):
    from stages import train_bert

    model_dir = write_tiny_bert(tmp_path / "tiny-bert")
    config = json.loads((model_dir / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # see NO_DROPOUT_LSTM
    (model_dir / "config.json").write_text(json.dumps(config))
    for name in ("in_process", "torchrun_2"):
        write_bert_inputs(tmp_path / name, model_dir)
    in_one_thread(monkeypatch)
    monkeypatch.chdir(tmp_path / "in_process")
    train_bert.main(load_params("params.yaml"))
    two_processes("train_bert", tmp_path / "torchrun_2")

    single, parallel = metrics(tmp_path / "in_process", "train_bert"), metrics(tmp_path / "torchrun_2", "train_bert")
    assert parallel["best_epoch"] == single["best_epoch"]
    assert parallel["val"]["loss"] == pytest.approx(single["val"]["loss"], abs=2e-3)
    for key in ("accuracy", "macro_recall", "macro_f1"):
        assert parallel["val"][key] == pytest.approx(single["val"][key], abs=0.02), key
    assert (tmp_path / "torchrun_2/models/bert/model/config.json").is_file()  # rank 0 exported
    history = json.loads((tmp_path / "torchrun_2/models/bert/training_history.json").read_text())
    expected = json.loads((tmp_path / "in_process/models/bert/training_history.json").read_text())
    assert history["learning_rate"] == pytest.approx(expected["learning_rate"])  # the same schedule


# ---- a rank that fails or hangs stops the run ---------------------------------------------------------------
@pytest.fixture
def tiny_lstm_inputs(tmp_path):
    write_stage_inputs(tmp_path, {**TINY_LSTM, "epochs": 2}, 200)
    return tmp_path


def set_timeout(directory: Path, seconds: int) -> None:
    params = json.loads((directory / "params.yaml").read_text())
    params["distributed"]["timeout_s"] = seconds
    (directory / "params.yaml").write_text(json.dumps(params))


def test_a_failing_rank_stops_the_run_with_its_error(tiny_lstm_inputs):
    started = time.monotonic()
    result = torchrun("train_lstm", tiny_lstm_inputs, 2, TEST_FAIL_RANK="1")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("error: out of GPU memory: lstm.batch_size = 16 is too large") == 1, output
    assert time.monotonic() - started < 120
    assert not (tiny_lstm_inputs / "metrics/lstm/train.json").exists()


def test_a_hung_rank_ends_the_run_after_the_collective_timeout(tiny_lstm_inputs):
    set_timeout(tiny_lstm_inputs, 10)
    started = time.monotonic()
    result = torchrun("train_lstm", tiny_lstm_inputs, 2, timeout=200, TEST_HANG_RANK="1")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        "error: rank 0/2: a collective waited longer than distributed.timeout_s = 10 s; another process of "
        "this run hung"
    ) in output, output
    assert time.monotonic() - started < 150


def test_a_rank_with_other_params_stops_the_run(tiny_lstm_inputs):
    import shutil

    rank1 = tiny_lstm_inputs.with_name(tiny_lstm_inputs.name + "-rank1")
    shutil.copytree(tiny_lstm_inputs, rank1)
    params = json.loads((rank1 / "params.yaml").read_text())
    params["lstm"]["hidden_dim"] = 10  # as on a machine whose checkout differs
    (rank1 / "params.yaml").write_text(json.dumps(params))
    result = torchrun("train_lstm", tiny_lstm_inputs, 2, TEST_RANK_DIR_1=str(rank1))
    assert result.returncode != 0
    assert (
        "error: rank 1 does not train what rank 0 trains: params changed: lstm.hidden_dim 12 -> 10" in result.stderr
    ), result.stderr
    assert not (tiny_lstm_inputs / "metrics/lstm/train.json").exists()


def test_dvc_yaml_launches_both_training_stages_through_the_launcher():
    from ruamel.yaml import YAML

    stages = YAML(typ="safe", pure=True).load((REPO / "dvc.yaml").read_text())["stages"]
    for stage in ("train_lstm", "train_bert"):
        assert stages[stage]["cmd"] == f"python -m src.launch stages.{stage}"
        assert "distributed" in stages[stage]["params"]
    params = copy.deepcopy(load_params(REPO / "params.yaml"))
    assert params["distributed"]["nproc_per_node"] == 1  # one process unless asked


def test_the_next_launch_removes_a_killed_launchers_log_directory_and_nothing_else(tmp_path):
    from src.launch import LOG_DIR_PREFIX, remove_stale_log_dirs

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)  # a launcher SIGKILLed mid-run leaves its directory like this one
    stale = tmp_path / f"{LOG_DIR_PREFIX}{dead_pid}-k1ll3d"
    (stale / "attempt_0").mkdir(parents=True)
    (stale / "attempt_0/error.json").write_text("{}")
    running = tmp_path / f"{LOG_DIR_PREFIX}{os.getpid()}-4l1ve"  # a launcher that still runs
    running.mkdir()
    unrelated = tmp_path / f"{LOG_DIR_PREFIX}notes"  # not a name the launcher makes
    unrelated.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("kept")
    link = tmp_path / f"{LOG_DIR_PREFIX}{dead_pid}-l1nk"  # a link with a launcher's name: never followed
    link.symlink_to(elsewhere, target_is_directory=True)

    assert remove_stale_log_dirs(str(tmp_path)) == [str(stale)]
    assert not stale.exists()
    assert running.is_dir() and unrelated.is_dir() and link.is_symlink()
    assert (elsewhere / "keep.txt").read_text() == "kept"

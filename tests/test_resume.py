"""Interruption and resume: SIGKILL then rerun, run fingerprints, unreadable checkpoints, SIGTERM, BERT, DVC.

The stage tests run ``python -m stages.train_lstm`` as a real process on tiny data, sized so an
epoch lasts long enough (a few tenths of a second) for a kill to land inside one.
"""
from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from src.atomic import save_numpy
from src.interrupts import Interrupted, install_interrupt_handlers
from src.models import training
from src.params import load_params
from src.preprocess import Split, write_split
from src.training import Trainer, checkpoint_manager
from src.training.checkpoint_manager import CheckpointManager, load_checkpoint_file
from src.training.resume import describe_change, run_fingerprint, source_files
from src.vocab import Vocabulary
from stages import train_lstm
from tests.test_bert_training import _loaders, tiny_bert  # noqa: F401 (tiny_bert is a fixture)
from tests.test_pipeline_e2e import project  # noqa: F401 (a fixture)
from tests.test_train_lstm_stage import TINY_LSTM, workdir  # noqa: F401 (workdir is a fixture)
from tests.test_training_integration import synthetic_split

REPO = Path(__file__).resolve().parents[1]
QUALITY = ("val", "best_epoch", "epochs")   # metrics/lstm/train.json
# No early stopping: every run trains all epochs, so a kill after epoch 1 always lands in a later one.
# A low learning rate keeps val scores improving past epoch 2: the best epoch comes after the kill.
SLOW_LSTM = {**TINY_LSTM, "hidden_dim": 32, "epochs": 4, "early_stopping_patience": None, "learning_rate": 5e-4}
SLOW_TRAIN_ROWS = 2500


# ---- helpers -----------------------------------------------------------------------------------------
def write_stage_inputs(directory: Path, lstm: dict, train_rows: int) -> None:
    """data/processed, data/vocab (8-d embeddings) and a params.yaml, as train_lstm reads them."""
    for name, (n, seed) in {"train": (train_rows, 1), "val": (60, 2)}.items():
        write_split(directory / f"data/processed/{name}.jsonl", Split(*synthetic_split(n, seed)))
    vocab = Vocabulary.build(synthetic_split(200, 1)[0])
    vocab.save(directory / "data/vocab/vocab.json")
    save_numpy(directory / "data/vocab/embeddings.npy",
               np.random.default_rng(0).normal(size=(len(vocab), 8)).astype(np.float32))
    params = load_params(REPO / "params.yaml")
    params["lstm"] = dict(lstm)
    (directory / "params.yaml").write_text(json.dumps(params), encoding="utf-8")  # JSON is YAML


def stage_env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONSAFEPATH", None)
    return env


def start_stage(directory: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stages.train_lstm"], cwd=directory, env=stage_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_stage_to_end(directory: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "stages.train_lstm"], cwd=directory, env=stage_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stderr


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            output = "".join(filter(None, process.communicate()))
            raise AssertionError(f"it ended before {path} appeared:\n{output}")
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout} s"
        time.sleep(0.02)


def quality(directory: Path) -> dict:
    metrics = json.loads((directory / "metrics/lstm/train.json").read_text())
    return {key: metrics[key] for key in QUALITY}


def per_epoch_losses(directory: Path) -> tuple[list, list]:
    history = json.loads((directory / "models/lstm/training_history.json").read_text())
    return history["train_losses"], history["val_losses"]


def best_weights(directory: Path) -> dict:
    return load_checkpoint_file(directory / "models/lstm/best_model.pt")["model_state_dict"]


@contextlib.contextmanager
def crash_in_epoch(epoch: int):
    """Trainer.train_epoch raises when it starts epoch ``epoch``: an in-process stand-in for a kill."""
    original = Trainer.train_epoch

    def train_epoch(self):
        if self.epoch + 1 == epoch:
            raise RuntimeError("simulated crash")
        return original(self)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(RuntimeError, match="simulated crash"):
        patch.setattr(Trainer, "train_epoch", train_epoch)
        yield


# ---- (a) SIGKILL mid-epoch, then rerun -------------------------------------------------------------
def test_killed_stage_resumes_and_ends_like_an_uninterrupted_run(tmp_path):
    uninterrupted, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    for directory in (uninterrupted, killed):
        write_stage_inputs(directory, SLOW_LSTM, SLOW_TRAIN_ROWS)

    process = start_stage(killed)
    # checkpoint 1 is renamed into place complete, and epoch 2 starts right after it
    wait_for(killed / "models/lstm/checkpoint_epoch_1.pt", process)
    time.sleep(0.1)
    process.kill()
    process.wait()
    assert not (killed / "metrics/lstm/train.json").exists(), "the kill came too late: the run had finished"
    killed_at = max(int(p.stem.rsplit("_", 1)[1]) for p in (killed / "models/lstm").glob("checkpoint_epoch_*.pt"))
    assert killed_at < SLOW_LSTM["epochs"]

    log = run_stage_to_end(killed)
    assert f"resuming from models/lstm/checkpoint_epoch_{killed_at}.pt (epoch {killed_at} done)" in log
    run_stage_to_end(uninterrupted)

    assert quality(killed) == quality(uninterrupted)
    assert per_epoch_losses(killed) == per_epoch_losses(uninterrupted)
    expected = best_weights(uninterrupted)
    for name, tensor in best_weights(killed).items():
        assert torch.equal(tensor, expected[name]), name
    assert not list((killed / "models/lstm").glob(".*.tmp"))  # no partial write left in the DVC output


# ---- (b) a changed run starts fresh, and says why ------------------------------------------------------
def test_changed_params_data_or_a_finished_run_start_fresh_and_say_why(workdir, caplog):
    caplog.set_level(logging.INFO)
    workdir["lstm"].update(epochs=4, early_stopping_patience=None)
    with crash_in_epoch(3):
        train_lstm.main(workdir)

    workdir["lstm"]["hidden_dim"] = 10
    caplog.clear()
    with crash_in_epoch(3):
        train_lstm.main(workdir)
    assert ("not resuming from models/lstm/checkpoint_epoch_2.pt: params changed: lstm.hidden_dim 12 -> 10; "
            "training from scratch") in caplog.text
    assert "epoch 1/4" in caplog.text

    rows = Path("data/processed/train.jsonl").read_text().splitlines()
    Path("data/processed/train.jsonl").write_text("\n".join(rows[:-1]) + "\n")
    caplog.clear()
    train_lstm.main(workdir)
    assert "input data changed: data/processed/train.jsonl; training from scratch" in caplog.text
    assert "epoch 1/4" in caplog.text
    assert not any(r.getMessage().startswith("resuming from") for r in caplog.records)

    caplog.clear()
    train_lstm.main(workdir)  # nothing changed, but that run finished: train again, do not resume into nothing
    assert "checkpoint_epoch_4.pt: the run that wrote it had finished; training from scratch" in caplog.text
    assert "epoch 1/4" in caplog.text


def test_a_code_change_is_named():
    recorded = {"params": {"lstm.seed": 1}, "data": {"train.jsonl": "a"}, "code": {"src/x.py": "b", "src/y.py": "c"}}
    current = {"params": {"lstm.seed": 1}, "data": {"train.jsonl": "a"}, "code": {"src/x.py": "b", "src/y.py": "d"}}
    assert describe_change(recorded, current) == "code changed: src/y.py"
    assert describe_change(recorded, recorded) is None
    assert describe_change(None, current) == "the checkpoint records no fingerprint"


def test_the_fingerprint_covers_params_data_and_the_code_the_stage_runs(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    fingerprint = run_fingerprint({"lstm": {"seed": 1, "scheduler": None}}, [data],
                                  source_files(REPO / "stages" / "train_lstm.py"))
    assert fingerprint["params"] == {"lstm.seed": 1, "lstm.scheduler": None}
    assert list(fingerprint["data"]) == [str(data)]
    assert {"stages/train_lstm.py", "src/training/trainer.py", "src/models/lstm_model.py"} <= set(fingerprint["code"])


# ---- (c) an unreadable newest checkpoint falls back to the one before ------------------------------------
def test_an_unreadable_checkpoint_is_named_and_the_previous_one_used(workdir, caplog):
    caplog.set_level(logging.INFO)
    workdir["lstm"].update(epochs=4, early_stopping_patience=None)
    train_lstm.main(workdir)
    uninterrupted = quality(Path("."))

    with crash_in_epoch(4):
        train_lstm.main(workdir)  # leaves checkpoints 2 and 3 (two are kept)
    newest = Path("models/lstm/checkpoint_epoch_3.pt")
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated
    caplog.clear()
    train_lstm.main(workdir)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "models/lstm/checkpoint_epoch_3.pt: not a readable checkpoint" in warnings[0]
    assert "resuming from models/lstm/checkpoint_epoch_2.pt (epoch 2 done)" in caplog.text
    assert quality(Path(".")) == uninterrupted

    with crash_in_epoch(4):
        train_lstm.main(workdir)
    Path("models/lstm/checkpoint_epoch_3.pt").write_text("not a checkpoint")
    torch.save({"weights": torch.zeros(2)}, "models/lstm/checkpoint_epoch_2.pt")  # a torch file, not ours
    caplog.clear()
    train_lstm.main(workdir)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "checkpoint_epoch_3.pt: not a readable checkpoint" in warnings[0]
    assert "checkpoint_epoch_2.pt: not a readable checkpoint" in warnings[1]
    assert "no readable checkpoint left in models/lstm; training from scratch" in warnings[2]
    assert quality(Path(".")) == uninterrupted


def test_a_kill_between_a_checkpoint_and_its_best_model_copy_is_made_good(workdir, caplog):
    workdir["lstm"].update(epochs=8, early_stopping_patience=None)
    train_lstm.main(workdir)
    uninterrupted, uninterrupted_weights = quality(Path(".")), best_weights(Path("."))
    best = uninterrupted["best_epoch"]
    assert 1 < best < 8  # later epochs do not improve, so only the resume can rewrite best_model.pt

    with crash_in_epoch(best + 1):
        train_lstm.main(workdir)
    # as if killed right after the best epoch's checkpoint was renamed into place: the best model and
    # the registry are one save behind
    shutil.copy(f"models/lstm/checkpoint_epoch_{best - 1}.pt", "models/lstm/best_model.pt")
    registry = json.loads(Path("models/lstm/checkpoint_registry.json").read_text())
    registry["checkpoints"] = [e for e in registry["checkpoints"] if e["epoch"] != best]
    Path("models/lstm/checkpoint_registry.json").write_text(json.dumps(registry))
    caplog.set_level(logging.INFO)
    train_lstm.main(workdir)

    assert f"resuming from models/lstm/checkpoint_epoch_{best}.pt (epoch {best} done)" in caplog.text
    assert quality(Path(".")) == uninterrupted
    for name, tensor in best_weights(Path(".")).items():
        assert torch.equal(tensor, uninterrupted_weights[name]), name
    registry = json.loads(Path("models/lstm/checkpoint_registry.json").read_text())
    assert f"checkpoint_epoch_{best}.pt" in {e["file"] for e in registry["checkpoints"]}


# ---- (d) SIGTERM: the save in progress completes, the exit code and message say so -------------------
def test_sigterm_exits_143_naming_a_loadable_checkpoint(tmp_path):
    write_stage_inputs(tmp_path, SLOW_LSTM, SLOW_TRAIN_ROWS)
    process = start_stage(tmp_path)
    wait_for(tmp_path / "models/lstm/checkpoint_epoch_1.pt", process)
    time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 143
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("interrupted by SIGTERM: last checkpoint models/lstm/checkpoint_epoch_")
    name, epoch = last_line.split("last checkpoint ")[1].split(" (epoch ")
    checkpoint = load_checkpoint_file(tmp_path / name)
    assert checkpoint["epoch"] == int(epoch.rstrip(")")) and checkpoint["fingerprint"]["params"]["lstm.seed"] == 3


def test_a_signal_during_a_save_waits_until_the_save_is_complete(tmp_path, monkeypatch):
    def save_interrupted_by_sigterm(obj, path):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the checkpoint is being written
        time.sleep(0.05)
        real_save_torch(obj, path)

    real_save_torch = checkpoint_manager.save_torch
    monkeypatch.setattr(checkpoint_manager, "save_torch", save_interrupted_by_sigterm)
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    install_interrupt_handlers()
    try:
        manager = CheckpointManager(tmp_path)
        model = torch.nn.Linear(2, 3)
        with pytest.raises(Interrupted) as caught:
            manager.save_checkpoint(model, torch.optim.SGD(model.parameters(), lr=0.1), 1, train_loss=1.0,
                                    val_loss=1.0, val_accuracy=0.5, is_best=True)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert caught.value.exit_code == 143
    assert load_checkpoint_file(tmp_path / "checkpoint_epoch_1.pt")["epoch"] == 1
    assert load_checkpoint_file(tmp_path / "best_model.pt")["epoch"] == 1
    assert json.loads((tmp_path / "checkpoint_registry.json").read_text())["checkpoints"][0]["epoch"] == 1


# ---- (e) train_model (BERT) resumes to the same result --------------------------------------------------
def test_bert_train_model_resumes_to_the_same_result(tiny_bert, tmp_path, caplog):  # noqa: F811
    caplog.set_level(logging.INFO)

    def train(directory):
        tokenizer, train_loader, val_loader = _loaders(tiny_bert)
        return training.train_model(train_loader, val_loader, directory, num_epochs=2, learning_rate=3e-3,
                                    device="cpu", model_name=tiny_bert, tokenizer=tokenizer, seed=1,
                                    progress=False, resume=True)

    _, uninterrupted = train(tmp_path / "uninterrupted")
    with crash_in_epoch(2):
        train(tmp_path / "crashed")
    caplog.clear()
    _, resumed = train(tmp_path / "crashed")

    assert f"resuming from {tmp_path / 'crashed' / 'checkpoint_epoch_1.pt'} (epoch 1 done)" in caplog.text
    for key in ("train_loss", "val_loss", "val_accuracy", "val_macro_recall", "learning_rate", "best_epoch"):
        assert resumed[key] == uninterrupted[key], key
    expected = load_checkpoint_file(tmp_path / "uninterrupted" / "best_model.pt")["model_state_dict"]
    for name, tensor in load_checkpoint_file(tmp_path / "crashed" / "best_model.pt")["model_state_dict"].items():
        assert torch.equal(tensor, expected[name]), name
    assert (tmp_path / "crashed" / "model" / "config.json").is_file()


# ---- (f) DVC keeps the resume state ---------------------------------------------------------------------
def test_dvc_persists_the_training_outputs_that_hold_resume_state():
    stages = yaml_stages()
    for stage, directory in (("train_lstm", "models/lstm"), ("train_bert", "models/bert")):
        outs = {name: options for out in stages[stage]["outs"] for name, options in
                (out.items() if isinstance(out, dict) else [(out, {})])}
        assert outs[directory] == {"persist": True}, stage


def yaml_stages() -> dict:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load((REPO / "dvc.yaml").read_text())["stages"]


def test_dvc_repro_resumes_train_lstm_after_the_stage_was_killed(project):  # noqa: F811
    work, env = project
    env = {**env, "OMP_NUM_THREADS": "1"}
    with open(work / "tweets.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "split"])
        for split, (n, seed) in {"train": (SLOW_TRAIN_ROWS, 1), "val": (60, 2), "test": (60, 3)}.items():
            writer.writerows((text, label, split) for text, label in zip(*synthetic_split(n, seed)))
    params = load_params(work / "params.yaml")
    params["data"].update(input="tweets.csv", csv={**params["data"]["csv"], "split_column": "split"})
    params["lstm"] = {**SLOW_LSTM, "embedding_dim": 25}  # the mirror's GloVe is 25-d
    (work / "params.yaml").write_text(json.dumps(params), encoding="utf-8")
    dvc = [sys.executable, "-m", "dvc", "repro", "train_lstm"]

    repro = subprocess.Popen(dvc, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(work / "models/lstm/checkpoint_epoch_1.pt", repro)
    time.sleep(0.1)
    os.kill(stage_process_id(work), signal.SIGKILL)  # the training process only, as the OOM killer would
    output, _ = repro.communicate(timeout=60)
    assert repro.returncode != 0 and not (work / "metrics/lstm/train.json").exists(), output

    again = subprocess.run(dvc, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stdout
    assert "Running stage 'train_lstm'" in again.stdout, again.stdout
    assert "Running stage 'preprocess'" not in again.stdout, again.stdout
    assert "resuming from models/lstm/checkpoint_epoch_" in again.stdout, again.stdout
    assert json.loads((work / "metrics/lstm/train.json").read_text())["epochs"] == SLOW_LSTM["epochs"]


def stage_process_id(work: Path) -> int:
    """The ``python -m stages.train_lstm`` process that ``dvc repro`` started in ``work``."""
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            if b"stages.train_lstm" in command and Path(os.readlink(entry / "cwd")) == work:
                return int(entry.name)
        except (OSError, ValueError):
            continue
    raise AssertionError("the train_lstm process was not found")

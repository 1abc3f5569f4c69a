"""Interruption and resume: SIGKILL then rerun, run fingerprints, unreadable checkpoints, SIGTERM, BERT, DVC;
and a model directory that holds one consistent model whenever a run stops.

The stage tests run ``python -m stages.train_lstm`` (``stages.train_bert``) as real processes. Where
the kill lands is decided by the test, not by the clock: PAUSE_HOOK stops the stage right after a
given optimizer step (mid-epoch) and says so, and the test then sends the signal. Waiting for an
epoch to finish and sleeping a little, as these tests once did, made the outcome depend on how busy
the machine was (see test_dvc_repro_resumes_train_lstm_after_the_stage_was_killed).
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

from src.checkpoints import manager as checkpoint_manager
from src.checkpoints.files import load_checkpoint_file
from src.checkpoints.manager import CheckpointManager, model_only
from src.checkpoints.resume import describe_change, run_fingerprint, source_files
from src.core.atomic import save_numpy
from src.core.errors import PipelineError
from src.core.interrupts import Interrupted, install_interrupt_handlers
from src.core.params import load_params
from src.data.preprocess import Split, normalize_tweet, write_split
from src.data.vocab import Vocabulary
from src.evaluation import main as evaluation_main
from src.models import training
from src.models.loading import load_model
from src.predict import main as predict_main
from src.training import Trainer
from stages import train_lstm
from tests.fixtures import TINY_LSTM, bert_loaders, synthetic_split, tiny_splits

REPO = Path(__file__).resolve().parents[1]
QUALITY = ("val", "best_epoch", "epochs")  # metrics/lstm/train.json
# No early stopping: every run trains all epochs, so a kill in epoch 2 always leaves some to resume.
# The learning rate keeps val scores improving past the kill, unevenly: the best epochs are 2 and 4.
SLOW_LSTM = {**TINY_LSTM, "hidden_dim": 32, "epochs": 4, "early_stopping_patience": None, "learning_rate": 2e-3}
TRAIN_ROWS = 1000  # 63 batches of 16 per epoch
PAUSE_STEP = 63 + 10  # the 10th optimizer step of epoch 2: mid-epoch, after checkpoint 1
# Imported at start-up by every Python process that has its directory first on PYTHONPATH. In the
# process running PAUSE_STAGE it stops training right after optimizer step PAUSE_AT_STEP and writes
# its pid to PAUSE_MARKER (atomically): the test then signals it at exactly that point.
PAUSE_HOOK = """\
import os


def _install():
    stage = os.environ.get("PAUSE_STAGE")
    with open("/proc/self/cmdline", "rb") as handle:
        if not stage or stage.encode() not in handle.read().split(b"\\0"):
            return
    import time

    from torch.optim.optimizer import register_optimizer_step_post_hook

    steps, pause_at, marker = [0], int(os.environ["PAUSE_AT_STEP"]), os.environ["PAUSE_MARKER"]

    def pause(optimizer, args, kwargs):
        steps[0] += 1
        if steps[0] == pause_at:
            # a temp file per process: under torchrun every rank pauses at this step and writes
            temp = f"{marker}.{os.getpid()}.tmp"
            with open(temp, "w") as handle:
                handle.write(str(os.getpid()))
            os.replace(temp, marker)
            time.sleep(3600)

    register_optimizer_step_post_hook(pause)


_install()
"""
HANG_GUARD_S = 900  # only so that a hung process fails the test instead of the suite; not a speed limit


# ---- helpers -----------------------------------------------------------------------------------------
def write_stage_inputs(directory: Path, lstm: dict, train_rows: int) -> None:
    """data/processed, data/vocab (8-d embeddings) and a params.yaml, as train_lstm reads them."""
    for name, (n, seed) in {"train": (train_rows, 1), "val": (60, 2)}.items():
        write_split(directory / f"data/processed/{name}.jsonl", Split(*synthetic_split(n, seed)))
    vocab = Vocabulary.build(synthetic_split(200, 1)[0])
    vocab.save(directory / "data/vocab/vocab.json")
    save_numpy(
        directory / "data/vocab/embeddings.npy",
        np.random.default_rng(0).normal(size=(len(vocab), 8)).astype(np.float32),
    )
    params = load_params(REPO / "params.yaml")
    params["lstm"] = dict(lstm)
    (directory / "params.yaml").write_text(json.dumps(params), encoding="utf-8")  # JSON is YAML


def stage_env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONSAFEPATH", None)
    return env


def pausing(env: dict, hook_dir: Path, stage: str, step: int = PAUSE_STEP) -> tuple[dict, Path]:
    """``env`` for a run whose ``stage`` process pauses after optimizer step ``step``, and the file
    that will then hold its pid (see PAUSE_HOOK)."""
    hook_dir.mkdir(parents=True, exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(PAUSE_HOOK, encoding="utf-8")
    marker = hook_dir / "paused.pid"
    marker.unlink(missing_ok=True)
    return {
        **env,
        "PYTHONPATH": os.pathsep.join([str(hook_dir), env["PYTHONPATH"]]),
        "PAUSE_STAGE": stage,
        "PAUSE_AT_STEP": str(step),
        "PAUSE_MARKER": str(marker),
    }, marker


def wait_until_paused(marker: Path, process: subprocess.Popen) -> int:
    """The pid of the paused stage process; fails if ``process`` ends before it pauses."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not marker.exists():
        if process.poll() is not None:
            output = "".join(filter(None, process.communicate()))
            raise AssertionError(f"it ended before pausing:\n{output}")
        assert time.monotonic() < deadline, f"no pause in {HANG_GUARD_S} s: hung?"
        time.sleep(0.05)
    return int(marker.read_text())


def start_stage(directory: Path, env: dict | None = None, stage: str = "stages.train_lstm") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", stage],
        cwd=directory,
        env=env or stage_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> str:
    _, stderr = process.communicate(timeout=HANG_GUARD_S)
    assert process.returncode == 0, stderr
    return stderr


def run_stage_to_end(directory: Path, stage: str = "stages.train_lstm") -> str:
    return finish(start_stage(directory, stage=stage))


def quality(directory: Path) -> dict:
    metrics = json.loads((directory / "metrics/lstm/train.json").read_text())
    return {key: metrics[key] for key in QUALITY}


def per_epoch_losses(directory: Path) -> tuple[list, list]:
    history = json.loads((directory / "models/lstm/training_history.json").read_text())
    return history["train_losses"], history["val_losses"]


def best_weights(directory: Path) -> dict:
    return load_checkpoint_file(directory / "models/lstm/best_model.pt")["model_state_dict"]


def resume_state(directory: Path = Path("."), stage: str = "train_lstm") -> Path:
    """The one unfinished run's resume directory, .resume/<stage>/<key>/ (src/checkpoints/resume_dir.py),
    relative to ``directory``: as the stage's log lines name it (the stage runs there)."""
    (only,) = (directory / ".resume" / stage).iterdir()
    return only.relative_to(directory)


@contextlib.contextmanager
def crash_in_epoch(epoch: int, error: type[BaseException] = RuntimeError):
    """Trainer.train_epoch raises ``error`` when it starts epoch ``epoch``: an in-process stand-in for
    a kill (RuntimeError) or Ctrl-C (KeyboardInterrupt)."""
    original = Trainer.train_epoch

    def train_epoch(self):
        if self.epoch + 1 == epoch:
            raise error("simulated crash")
        return original(self)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(error):
        patch.setattr(Trainer, "train_epoch", train_epoch)
        yield


# ---- (a) SIGKILL mid-epoch, then rerun -------------------------------------------------------------
def test_killed_stage_resumes_and_ends_like_an_uninterrupted_run(tmp_path):
    uninterrupted, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    for directory in (uninterrupted, killed):
        write_stage_inputs(directory, SLOW_LSTM, TRAIN_ROWS)

    env, marker = pausing(stage_env(), tmp_path / "hook", "stages.train_lstm")
    process = start_stage(killed, env)
    plain = start_stage(uninterrupted)  # alongside: the same training, never interrupted
    os.kill(wait_until_paused(marker, process), signal.SIGKILL)  # mid-epoch 2
    process.wait()
    state = resume_state(killed)  # outside the DVC output models/lstm, which holds no checkpoint
    assert sorted(p.name for p in (killed / state).iterdir()) == [
        "best_model.in_progress.pt",
        "checkpoint_epoch_1.pt",
        "checkpoint_registry.json",
    ]

    log = run_stage_to_end(killed)
    assert f"resuming from {state}/checkpoint_epoch_1.pt (epoch 1 done)" in log
    finish(plain)

    assert quality(killed) == quality(uninterrupted)
    assert quality(killed)["best_epoch"] > 1  # the resumed part of the run chose the model
    assert per_epoch_losses(killed) == per_epoch_losses(uninterrupted)
    expected = best_weights(uninterrupted)
    for name, tensor in best_weights(killed).items():
        assert torch.equal(tensor, expected[name]), name
    assert not list((killed / "models/lstm").glob(".*.tmp"))  # no partial write left in the DVC output
    assert sorted(p.name for p in (killed / "models/lstm").iterdir()) == [
        "best_model.pt",
        "model_config.json",
        "training_history.json",
        "vocab.json",
    ]
    assert not (killed / ".resume").exists()  # the finished run removed its resume state


# ---- (b) a changed run starts fresh, and says why ------------------------------------------------------
def test_changed_params_or_data_train_in_a_directory_of_their_own_and_going_back_resumes(workdir, caplog):
    """Each run keeps its checkpoints in .resume/train_lstm/<key of its params, data and code>/: a changed
    run starts fresh beside a killed one, which resumes when its params come back; a finished run removes
    its own. Within one directory the Trainer's fingerprint still decides (a stale one: says why)."""
    caplog.set_level(logging.INFO)
    workdir["lstm"].update(epochs=4, early_stopping_patience=None)
    with crash_in_epoch(3):
        train_lstm.main(workdir)
    first = resume_state()

    workdir["lstm"]["hidden_dim"] = 10
    caplog.clear()
    with crash_in_epoch(3):
        train_lstm.main(workdir)
    assert "epoch 1/4" in caplog.text and "resuming from" not in caplog.text
    assert len(list(Path(".resume/train_lstm").iterdir())) == 2  # the first run's state is kept beside it
    changed = next(p for p in Path(".resume/train_lstm").iterdir() if p != first)

    workdir["lstm"]["hidden_dim"] = 12  # back: the first run resumes where it was killed
    caplog.clear()
    train_lstm.main(workdir)
    assert f"resuming from {first}/checkpoint_epoch_2.pt (epoch 2 done)" in caplog.text
    assert not first.exists() and changed.is_dir()

    # the Trainer's own check, should a directory hold another run's checkpoints
    shutil.copytree(changed, first)
    rows = Path("data/processed/train.jsonl").read_text().splitlines()
    Path("data/processed/train.jsonl").write_text("\n".join(rows[:-1]) + "\n")
    caplog.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_lstm, "resume_directory", lambda params: first)
        train_lstm.main(workdir)
    assert "not resuming from " in caplog.text and "params changed: lstm.hidden_dim 10 -> 12" in caplog.text
    assert "input data changed: data/processed/train.jsonl; training from scratch" in caplog.text
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
    fingerprint = run_fingerprint(
        {"lstm": {"seed": 1, "scheduler": None}}, [data], source_files(REPO / "stages" / "train_lstm.py")
    )
    assert fingerprint["params"] == {"lstm.seed": 1, "lstm.scheduler": None}
    assert list(fingerprint["data"]) == [str(data)]
    assert {"stages/train_lstm.py", "src/training/trainer.py", "src/models/lstm_model.py"} <= set(fingerprint["code"])


# ---- (c) an unreadable newest checkpoint is named; the ones before hold the model only ----------------
def test_an_unreadable_checkpoint_is_named_and_training_starts_over(workdir, caplog):
    caplog.set_level(logging.INFO)
    workdir["lstm"].update(epochs=4, early_stopping_patience=None)
    train_lstm.main(workdir)
    uninterrupted = quality(Path("."))

    with crash_in_epoch(4):
        train_lstm.main(workdir)  # leaves checkpoints 2 (the model alone) and 3 (with resume state)
    state = resume_state()
    assert "optimizer_state_dict" not in load_checkpoint_file(state / "checkpoint_epoch_2.pt")
    newest = state / "checkpoint_epoch_3.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated
    caplog.clear()
    train_lstm.main(workdir)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"{state}/checkpoint_epoch_3.pt: not a readable checkpoint" in warnings[0]
    assert f"not resuming from {state}/checkpoint_epoch_2.pt: it holds the model only" in caplog.text
    assert quality(Path(".")) == uninterrupted

    with crash_in_epoch(4):
        train_lstm.main(workdir)
    (state / "checkpoint_epoch_3.pt").write_text("not a checkpoint")
    torch.save({"weights": torch.zeros(2)}, state / "checkpoint_epoch_2.pt")  # a torch file, not ours
    caplog.clear()
    train_lstm.main(workdir)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "checkpoint_epoch_3.pt: not a readable checkpoint" in warnings[0]
    assert "checkpoint_epoch_2.pt: not a readable checkpoint" in warnings[1]
    assert f"no readable checkpoint left in {state}; training from scratch" in warnings[2]
    assert quality(Path(".")) == uninterrupted


def test_a_kill_between_a_checkpoint_and_staging_its_model_is_made_good(workdir, caplog):
    workdir["lstm"].update(epochs=8, early_stopping_patience=None)
    train_lstm.main(workdir)
    uninterrupted, uninterrupted_weights = quality(Path(".")), best_weights(Path("."))
    best = uninterrupted["best_epoch"]
    assert 1 < best < 7  # later epochs do not improve, so only the resume can rewrite the best model

    with crash_in_epoch(best + 1):
        train_lstm.main(workdir)
    state = resume_state()
    staged = state / "best_model.in_progress.pt"
    # as if killed right after the best epoch's checkpoint was renamed into place: the staged best
    # model and the registry are one save behind
    torch.save(model_only(load_checkpoint_file(state / f"checkpoint_epoch_{best - 1}.pt")), staged)
    registry = json.loads((state / "checkpoint_registry.json").read_text())
    registry["checkpoints"] = [e for e in registry["checkpoints"] if e["epoch"] != best]
    (state / "checkpoint_registry.json").write_text(json.dumps(registry))
    caplog.set_level(logging.INFO)
    with pytest.MonkeyPatch.context() as patch:  # keep the directory, to read its registry afterwards
        patch.setattr(train_lstm, "discard", lambda work: None)
        train_lstm.main(workdir)

    assert f"resuming from {state}/checkpoint_epoch_{best}.pt (epoch {best} done)" in caplog.text
    assert quality(Path(".")) == uninterrupted
    for name, tensor in best_weights(Path(".")).items():
        assert torch.equal(tensor, uninterrupted_weights[name]), name
    registry = json.loads((state / "checkpoint_registry.json").read_text())
    assert f"checkpoint_epoch_{best}.pt" in {e["file"] for e in registry["checkpoints"]}
    assert not staged.exists()  # published, then removed when the run was recorded as finished
    shutil.rmtree(".resume")

    # the staged model gone altogether: the best epoch's checkpoint (kept by rotation) still holds it
    with crash_in_epoch(best + 2):
        train_lstm.main(workdir)
    (resume_state() / "best_model.in_progress.pt").unlink()
    caplog.clear()
    train_lstm.main(workdir)
    assert f"resuming from {state}/checkpoint_epoch_{best + 1}.pt" in caplog.text
    assert quality(Path(".")) == uninterrupted
    for name, tensor in best_weights(Path(".")).items():
        assert torch.equal(tensor, uninterrupted_weights[name]), name


# ---- (c2) one consistent model in the directory, whenever a run stops ---------------------------------------
def model_files() -> dict[str, bytes]:
    return {
        name: Path("models/lstm", name).read_bytes() for name in ("best_model.pt", "model_config.json", "vocab.json")
    }


def test_an_interrupted_run_leaves_the_previous_complete_model_in_place(workdir, capsys):
    train_lstm.main(workdir)
    before = model_files()
    evaluation_main(["--model-dir", "models/lstm", "--split", "val"])
    scores_before = json.loads(capsys.readouterr().out)

    workdir["lstm"]["hidden_dim"] = 10  # a new shape; Ctrl-C once its first epoch is saved
    with crash_in_epoch(2, KeyboardInterrupt):
        train_lstm.main(workdir)
    assert (resume_state() / "checkpoint_epoch_1.pt").is_file()
    assert model_files() == before  # the previous model, whole
    evaluation_main(["--model-dir", "models/lstm", "--split", "val"])
    assert json.loads(capsys.readouterr().out)["macro_recall"] == scores_before["macro_recall"]

    train_lstm.main(workdir)  # finishing it swaps the new model in: every file describes it
    config = json.loads(Path("models/lstm/model_config.json").read_text())
    assert config["hidden_dim"] == 10 and config["max_length"] == workdir["lstm"]["max_length"]
    assert config["model_id"] == load_checkpoint_file("models/lstm/best_model.pt")["model_id"]
    evaluation_main(["--model-dir", "models/lstm", "--split", "val"])
    scores = json.loads(capsys.readouterr().out)
    assert scores["macro_recall"] == pytest.approx(quality(Path("."))["val"]["macro_recall"])


def test_a_run_stopped_while_saving_its_model_is_reported_incomplete_then_finished(workdir, capsys, caplog):
    train_lstm.main(workdir)
    workdir["lstm"]["hidden_dim"] = 10

    from src.core import atomic

    publish_copy = atomic.publish_copy

    def killed(*args, **kwargs):
        publish_copy(*args, **kwargs)  # the new best_model.pt into models/lstm, from the resume directory
        raise RuntimeError("killed")

    with pytest.MonkeyPatch.context() as patch, pytest.raises(RuntimeError, match="killed"):
        patch.setattr(atomic, "publish_copy", killed)  # after best_model.pt is in place, before model_config.json
        train_lstm.main(workdir)
    for main, argv in (
        (evaluation_main, ["--model-dir", "models/lstm"]),
        (predict_main, ["--model", "models/lstm", "hi"]),
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert exited.value.code == 1 and len(err) == 1, err
        assert err[0].startswith("error: models/lstm: incomplete model directory: model_config.json (model ")
        assert err[0].endswith("run `dvc repro train_lstm` to finish it")

    caplog.set_level(logging.INFO)
    train_lstm.main(workdir)  # the run had not finished: it resumes and saves the same model again
    assert "resuming from .resume/train_lstm/" in caplog.text
    assert "epoch 1/" not in caplog.text
    evaluation_main(["--model-dir", "models/lstm", "--split", "val"])
    assert json.loads(capsys.readouterr().out)["macro_recall"] == pytest.approx(
        quality(Path("."))["val"]["macro_recall"]
    )

    # a directory from before model ids, whose weights do not fit its config: one line as well
    config = json.loads(Path("models/lstm/model_config.json").read_text())
    del config["model_id"]
    Path("models/lstm/model_config.json").write_text(json.dumps({**config, "hidden_dim": 12}))
    with pytest.raises(SystemExit):
        evaluation_main(["--model-dir", "models/lstm"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "error: models/lstm: incomplete model directory: best_model.pt does "
        "not fit model_config.json (size mismatch for "
    )


def test_names_in_model_config_cannot_lead_out_of_the_model_directory(workdir, tmp_path):
    train_lstm.main(workdir)
    config = json.loads(Path("models/lstm/model_config.json").read_text())
    outside = tmp_path / "outside.pt"
    shutil.copy("models/lstm/best_model.pt", outside)
    for key, value in (("weights", "../../outside.pt"), ("weights", str(outside)), ("vocab", "../vocab/vocab.json")):
        Path("models/lstm/model_config.json").write_text(json.dumps({**config, key: value}))
        with pytest.raises(PipelineError, match=rf"model_config.json: {key} = '.*': expected a plain file name"):
            load_model("models/lstm", "cpu")
    # files checked out as links into a DVC cache (cache.type: symlink) are read through them
    Path("models/lstm/model_config.json").write_text(json.dumps(config))
    Path("models/lstm/best_model.pt").unlink()
    Path("models/lstm/best_model.pt").symlink_to(outside)
    assert load_model("models/lstm", "cpu").kind == "lstm"


# ---- (d) SIGTERM: the save in progress completes, the exit code and message say so -------------------
def test_sigterm_exits_143_naming_a_loadable_checkpoint(tmp_path):
    write_stage_inputs(tmp_path, SLOW_LSTM, TRAIN_ROWS)
    env, marker = pausing(stage_env(), tmp_path / "hook", "stages.train_lstm")
    process = start_stage(tmp_path, env)
    os.kill(wait_until_paused(marker, process), signal.SIGTERM)
    _, stderr = process.communicate(timeout=HANG_GUARD_S)

    assert process.returncode == 143
    last_line = stderr.strip().splitlines()[-1]
    state = resume_state(tmp_path)
    assert last_line == f"interrupted by SIGTERM: last checkpoint {state}/checkpoint_epoch_1.pt (epoch 1)"
    checkpoint = load_checkpoint_file(tmp_path / state / "checkpoint_epoch_1.pt")
    assert checkpoint["epoch"] == 1 and checkpoint["fingerprint"]["params"]["lstm.seed"] == 3


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
            manager.save_checkpoint(
                model,
                torch.optim.SGD(model.parameters(), lr=0.1),
                1,
                train_loss=1.0,
                val_loss=1.0,
                val_accuracy=0.5,
                is_best=True,
            )
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
        tokenizer, train_loader, val_loader = bert_loaders(tiny_bert)
        return training.train_model(
            train_loader,
            val_loader,
            directory,
            num_epochs=2,
            learning_rate=3e-3,
            device="cpu",
            model_name=tiny_bert,
            tokenizer=tokenizer,
            seed=1,
            progress=False,
            resume=True,
        )

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


BERT_EPOCHS, BERT_STEPS_PER_EPOCH = 3, 6  # 48 training tweets in batches of 8


def write_bert_stage_inputs(directory: Path, model_name: str) -> None:
    """data/processed (the fixture tweets) and a params.yaml training the tiny BERT, as train_bert reads them."""
    for split in ("train", "val"):
        rows = tiny_splits()[split]
        write_split(
            directory / f"data/processed/{split}.jsonl",
            Split([normalize_tweet(text) for text, _ in rows], [label for _, label in rows]),
        )
    params = load_params(REPO / "params.yaml")
    params.update(
        model_name=model_name, num_epochs=BERT_EPOCHS, learning_rate=3e-3, batch_size=8, max_length=32, seed=1
    )
    params["bert"].update(device="cpu", eval_batch_size=16)
    (directory / "params.yaml").write_text(json.dumps(params), encoding="utf-8")


def test_killed_train_bert_resumes_and_ends_with_the_metrics_of_an_uninterrupted_run(tiny_bert, tmp_path):  # noqa: F811
    uninterrupted, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    for directory in (uninterrupted, killed):
        write_bert_stage_inputs(directory, tiny_bert)

    env, marker = pausing(stage_env(), tmp_path / "hook", "stages.train_bert", BERT_STEPS_PER_EPOCH + 3)
    process = start_stage(killed, env, "stages.train_bert")
    plain = start_stage(uninterrupted, stage="stages.train_bert")  # alongside: never interrupted
    os.kill(wait_until_paused(marker, process), signal.SIGKILL)  # mid-epoch 2
    process.wait()
    assert process.returncode == -signal.SIGKILL and not (killed / "metrics/bert/train.json").exists()
    state = resume_state(killed, "train_bert")
    newest = load_checkpoint_file(killed / state / "checkpoint_epoch_1.pt")
    assert "optimizer_state_dict" in newest  # the newest checkpoint holds the resume state

    log = run_stage_to_end(killed, "stages.train_bert")
    assert f"resuming from {state}/checkpoint_epoch_1.pt (epoch 1 done)" in log
    finish(plain)

    def results(directory: Path) -> tuple:
        metrics = json.loads((directory / "metrics/bert/train.json").read_text())
        history = json.loads((directory / "models/bert/training_history.json").read_text())
        return (
            metrics["best_epoch"],
            metrics["val"],
            history["val_accuracy"],
            history["val_macro_recall"],
            history["train_loss"],
            history["val_loss"],
            history["learning_rate"],
        )

    assert results(killed) == results(uninterrupted)
    expected = load_checkpoint_file(uninterrupted / "models/bert/best_model.pt")["model_state_dict"]
    best = load_checkpoint_file(killed / "models/bert/best_model.pt")
    for name, tensor in best["model_state_dict"].items():
        assert torch.equal(tensor, expected[name]), name
    # one model in the directory: the export is stamped with best_model.pt's id
    assert json.loads((killed / "models/bert/model/model_id.json").read_text())["model_id"] == best["model_id"]
    # sizes: the best model holds the model alone, and the DVC output no checkpoint (they stayed in
    # .resume/train_bert/<key>/, removed once the model was published)
    assert "optimizer_state_dict" not in best
    assert not list((killed / "models/bert").glob("checkpoint_*")) and not (killed / ".resume").exists()


def test_a_bert_run_stopped_while_exporting_is_reported_incomplete_then_finished(
    tiny_bert,
    tmp_path,  # noqa: F811
    capsys,
    caplog,
):
    def train(num_epochs: int):
        tokenizer, train_loader, val_loader = bert_loaders(tiny_bert)
        return training.train_model(
            train_loader,
            val_loader,
            tmp_path / "bert",
            num_epochs=num_epochs,
            learning_rate=3e-3,
            device="cpu",
            model_name=tiny_bert,
            tokenizer=tokenizer,
            seed=1,
            progress=False,
            resume=True,
        )

    from src.recipes import bert_fine_tune

    def killed(directory):
        raise RuntimeError("killed")

    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / ".model.tmp").symlink_to(outside)  # a leftover export dir leading out: removed, not used
    train(1)
    assert not list(outside.iterdir())
    with pytest.MonkeyPatch.context() as patch, pytest.raises(RuntimeError, match="killed"):
        patch.setattr(bert_fine_tune, "fsync_tree", killed)  # where the export syncs
        train(2)  # a new run: stopped after best_model.pt is in place, before its export is
    assert not list((tmp_path / "bert").glob(".model.*"))  # the partial export was removed
    capsys.readouterr()  # what training printed
    with pytest.raises(SystemExit) as exited:
        predict_main(["--model", str(tmp_path / "bert"), "hi"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 1 and len(err) == 1, err
    assert f"error: {tmp_path / 'bert'}: incomplete model directory: model/model_id.json (model " in err[0]
    assert err[0].endswith("run `dvc repro train_bert` to finish it")

    caplog.set_level(logging.INFO)
    train(2)  # that run had not finished: it resumes, and exports the model it had put in place
    assert f"resuming from {tmp_path / 'bert' / 'checkpoint_epoch_2.pt'} (epoch 2 done)" in caplog.text
    predict_main(["--model", str(tmp_path / "bert"), "hi"])
    assert json.loads(capsys.readouterr().out)["text"] == "hi"


# ---- (f) under `dvc repro`: the resume state outside the DVC output (tests/test_run_cache.py: the run-cache) ---
def test_dvc_repro_resumes_train_lstm_after_the_stage_was_killed(project, tmp_path):  # noqa: F811
    """Why this test once failed about 1 run in 8: it waited for checkpoint_epoch_1.pt with a 60 s
    deadline that covered a whole first `dvc repro` (four upstream stages, the training process's
    start-up and one epoch), then slept 0.1 s and killed whatever was running; the rerun had a
    120 s deadline. With other test suites sharing the 2 cores, checkpoint 1 appeared after 16 to
    60.4 s in six instrumented runs (one of them past the deadline) and the rerun took 31 to 50 s.
    Nothing in the product raced (every kill landed in epoch 2 and every rerun resumed from
    checkpoint 1): the outcome depended on how busy the machine was. Now the upstream stages run
    first, the kill lands at a chosen optimizer step (PAUSE_HOOK) instead of after a sleep, and
    the waits end on events, with a deadline only against hangs."""
    work, env = project
    env = {**env, "OMP_NUM_THREADS": "1"}
    with open(work / "tweets.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "split"])
        for split, (n, seed) in {"train": (TRAIN_ROWS, 1), "val": (60, 2), "test": (60, 3)}.items():
            writer.writerows((text, label, split) for text, label in zip(*synthetic_split(n, seed)))
    params = load_params(work / "params.yaml")
    params["data"].update(input="tweets.csv", csv={**params["data"]["csv"], "split_column": "split"})
    params["lstm"] = {**SLOW_LSTM, "embedding_dim": 25}  # the mirror's GloVe is 25-d
    (work / "params.yaml").write_text(json.dumps(params), encoding="utf-8")

    def dvc(*args: str, env: dict = env) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "dvc", *args],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    upstream = dvc("repro", "build_vocab")
    assert upstream.wait(timeout=HANG_GUARD_S) == 0, upstream.communicate()[0]
    paused_env, marker = pausing(env, tmp_path / "hook", "stages.train_lstm")
    repro = dvc("repro", "train_lstm", env=paused_env)
    os.kill(wait_until_paused(marker, repro), signal.SIGKILL)  # the training process only, as the OOM killer would
    output, _ = repro.communicate(timeout=HANG_GUARD_S)
    assert repro.returncode != 0 and not (work / "metrics/lstm/train.json").exists(), output

    again = dvc("repro", "train_lstm")
    output, _ = again.communicate(timeout=HANG_GUARD_S)
    assert again.returncode == 0, output
    assert "Running stage 'train_lstm'" in output and "Running stage 'preprocess'" not in output, output
    assert "resuming from .resume/train_lstm/" in output and "/checkpoint_epoch_1.pt (epoch 1 done)" in output, output
    assert json.loads((work / "metrics/lstm/train.json").read_text())["epochs"] == SLOW_LSTM["epochs"]

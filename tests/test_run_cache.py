"""The resume directory of a training stage (src/checkpoints/resume_dir.py): keyed by the run's
fingerprint, published into the DVC output as a whole, removed once published."""

from pathlib import Path

from src.checkpoints.resume_dir import publish, resume_dir, run_key


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
    (work / "model").mkdir()
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

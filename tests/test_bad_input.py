"""Bad input (issue 6): a clear error naming the file or params key, exit 1 without a traceback,
nothing half-written.

Cases tested elsewhere (not repeated here):
  unknown key, wrong type, top-level out of range    test_params.py::test_schema_errors_name_the_key_and_what_was_expected
  bad params through a stage (exit 1, no traceback)  test_params.py::test_a_stage_with_bad_params_exits_nonzero_without_traceback
  missing / empty / undecodable TweetEval file        test_preprocess.py::test_missing_file_is_named,
                                                      test_empty_file_is_named, test_undecodable_bytes_name_file_and_line
  text and label files of different lengths           test_preprocess.py::test_line_counts_that_differ_name_both_files
  label outside 0..K-1 (TweetEval, CSV)               test_preprocess.py::test_label_outside_range_names_file_and_line,
                                                      test_csv_bad_label_names_the_line
  CSV without the named columns                       test_preprocess.py::test_csv_without_the_named_columns_says_which
  GloVe corpus/dimension pair that does not exist     test_vocab.py::test_glove_variants
  GloVe archive without the member                    test_vocab.py::test_archive_without_the_member_lists_what_it_has,
                                                      test_pipeline_e2e.py::test_missing_glove_dimension_fails_clearly
  use_glove with a differing lstm.embedding_dim       test_train_lstm_stage.py::test_embedding_dim_mismatch_is_a_clear_stage_error
  device cuda without a GPU (engine)                  test_training_integration.py::test_cuda_requested_without_cuda_is_an_error
  model_name not loadable (tokenizer)                 test_bert_training.py::test_unloadable_model_name_says_how_to_fix
Here: the same cases through the stages, the nested params keys, model_name, bert.device, out of
memory and a full disk.
"""
from __future__ import annotations

import copy
import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from src import atomic
from src import download as download_module
from src.atomic import atomic_open, write_json
from src.cli import run_stage
from src.download import MIRROR_ENV, download
from src.errors import ParamsError, PipelineError
from src.evaluation import main as evaluation_main
from src.models.bert_model import BertSentimentClassifier
from src.models.training import _export
from src.params import load_params, validate_params
from src.preprocess import Split, write_split
from src.runtime import explain_out_of_memory
from src.training.trainer import evaluate
from stages import preprocess, train_bert, train_lstm, tune
from tests.fixtures import tiny_splits, write_tweeteval
from tests.test_download import BODY, _Handler, server  # noqa: F401  (server: the HTTP fixture)
from tests.test_train_lstm_stage import workdir  # noqa: F401  (the fixture)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shipped_params():
    return load_params(REPO / "params.yaml")


@pytest.fixture(autouse=True)
def one_cpu_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the stages' use_all_cpu_cores() then leaves torch alone


def balanced_split(n: int = 30) -> Split:
    return Split([f"tweet number {i}" for i in range(n)], [i % 3 for i in range(n)])


def run_stage_process(stage: str, cwd: Path, params: dict, **env) -> subprocess.CompletedProcess:
    """``python -m stages.<stage>`` in ``cwd`` with ``params`` as its params.yaml (JSON is YAML 1.2)."""
    (cwd / "params.yaml").write_text(json.dumps(params))
    return subprocess.run(
        [sys.executable, "-m", f"stages.{stage}"], cwd=cwd, capture_output=True, text=True,
        env={"PYTHONPATH": str(REPO), "PATH": os.environ["PATH"], "OMP_NUM_THREADS": "1", **env},
    )


def assert_clean_failure(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: ") or "\nerror: " in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr


# ---- params: nested keys out of range -----------------------------------------------------------------
@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("lstm", "learning_rate", -0.01, "lstm.learning_rate = -0.01: expected a value > 0"),
        ("lstm", "dropout", 1.5, "lstm.dropout = 1.5: expected a value < 1"),
        ("lstm", "epochs", "12", "lstm.epochs = '12': expected type integer"),
        ("search_space", "learning_rate", [2e-5, -1e-5], "tune.search_space.learning_rate.1 = -1e-05: expected a value > 0"),
        ("search_space", "dropout_prob", [1.5], "tune.search_space.dropout_prob.0 = 1.5: expected a value < 1"),
        ("search_space", "warmup_ratio", [0.1, 1.2], "tune.search_space.warmup_ratio.1 = 1.2: expected a value <= 1"),
        ("bert", "device", "gpu", "bert.device = 'gpu': expected one of auto, cuda, cpu"),
        ("top", "learning_rat", 1e-5, "unknown key learning_rat: expected one of"),
    ],
)
def test_params_out_of_range_name_the_dotted_key(shipped_params, section, key, value, expected):
    params = copy.deepcopy(shipped_params)
    target = {"top": params, "search_space": params["tune"]["search_space"]}.get(section) or params[section]
    target[key] = value
    with pytest.raises(ParamsError) as info:
        validate_params(params)
    assert expected in str(info.value)


# ---- data files, through the preprocess stage -----------------------------------------------------------
def _tweeteval(tmp_path: Path) -> Path:
    return write_tweeteval(tmp_path / "raw", tiny_splits())


def _csv(tmp_path: Path, header: bytes = b"text,label") -> Path:
    rows = b"".join(f"{t},{y}\n".encode() for rows in tiny_splits().values() for t, y in rows)
    (tmp_path / "own.csv").write_bytes(header + b"\n" + rows)
    return tmp_path / "own.csv"


def _missing(tmp_path):
    (_tweeteval(tmp_path) / "val_text.txt").unlink()
    return "raw", "raw/val_text.txt: file not found"


def _empty(tmp_path):
    (_tweeteval(tmp_path) / "train_labels.txt").write_bytes(b"\n\n")
    return "raw", "raw/train_labels.txt: file is empty"


def _undecodable(tmp_path):
    (_tweeteval(tmp_path) / "test_text.txt").write_bytes(b"fine\nbad \xff byte\n")
    return "raw", "raw/test_text.txt:2: not valid UTF-8"


def _lengths_differ(tmp_path):
    labels = _tweeteval(tmp_path) / "val_labels.txt"
    labels.write_text(labels.read_text() + "1\n")
    return "raw", "raw/val_text.txt has 12 lines but raw/val_labels.txt has 13: expected one label per tweet"


def _label_out_of_range(tmp_path):
    (_tweeteval(tmp_path) / "train_labels.txt").write_text("0\n3\n" + "1\n" * 46)
    return "raw", "raw/train_labels.txt:2: label '3' is not one of 0..2 (negative, neutral, positive)"


def _csv_missing_file(tmp_path):
    return "own.csv", "own.csv: file not found"


def _csv_undecodable(tmp_path):
    path = _csv(tmp_path)
    path.write_bytes(path.read_bytes() + b"caf\xe9,2\n")
    return "own.csv", "own.csv:74: not valid UTF-8"


def _csv_without_columns(tmp_path):
    _csv(tmp_path, header=b"tweet,sentiment")
    return "own.csv", "own.csv:1: missing column(s) text, label (header has: tweet, sentiment)"


def _csv_label_out_of_range(tmp_path):
    path = _csv(tmp_path)
    path.write_bytes(path.read_bytes() + b"so so,5\n")
    return "own.csv", "own.csv:74: label '5' is not one of 0..2"


@pytest.mark.parametrize("make_bad_input", [
    _missing, _empty, _undecodable, _lengths_differ, _label_out_of_range,
    _csv_missing_file, _csv_undecodable, _csv_without_columns, _csv_label_out_of_range,
])
def test_bad_data_file_fails_preprocess_naming_file_and_line(shipped_params, tmp_path, monkeypatch, capsys,
                                                             make_bad_input):
    data_input, expected = make_bad_input(tmp_path)
    params = copy.deepcopy(shipped_params)
    params["data"]["input"] = data_input
    (tmp_path / "params.yaml").write_text(json.dumps(params))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_stage(preprocess.main)  # what `python -m stages.preprocess` runs, without a process per case
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.startswith(f"error: {expected}")
    assert not Path("data/processed").exists() and not Path("metrics").exists()  # nothing written


def test_bad_data_stage_process_exits_1_without_traceback(shipped_params, tmp_path):
    data_input, expected = _label_out_of_range(tmp_path)
    params = copy.deepcopy(shipped_params)
    params["data"]["input"] = data_input
    assert_clean_failure(run_stage_process("preprocess", tmp_path, params), expected)
    assert not (tmp_path / "data/processed").exists()


# ---- GloVe -----------------------------------------------------------------------------------------------
def test_glove_pair_that_does_not_exist_fails_download_glove_before_any_download(shipped_params, tmp_path):
    params = copy.deepcopy(shipped_params)
    params["glove"]["dimension"] = "300d"
    result = run_stage_process("download_glove", tmp_path, params)
    assert_clean_failure(result, "glove.dimension = '300d': GloVe twitter.27B comes in 25d, 50d, 100d, 200d only")
    assert not (tmp_path / "data").exists()


def test_use_glove_with_other_embedding_dim_fails_before_touching_the_model_dir(workdir, tmp_path):  # noqa: F811
    previous = tmp_path / "models/lstm/best_model.pt"
    previous.parent.mkdir(parents=True)
    previous.write_bytes(b"an earlier run's model")
    workdir["lstm"]["embedding_dim"] = 25  # data/vocab/embeddings.npy is 8-dimensional
    result = run_stage_process("train_lstm", tmp_path, workdir)
    assert_clean_failure(result, "lstm.embedding_dim = 25", "8-dimensional")
    assert previous.read_bytes() == b"an earlier run's model"
    assert not (tmp_path / "metrics").exists()


# ---- model_name and device ---------------------------------------------------------------------------
def test_model_name_not_cached_offline_says_how_to_fix(shipped_params, tmp_path):
    # A process of its own: huggingface_hub reads HF_HUB_OFFLINE and HF_HOME once, at import.
    params = copy.deepcopy(shipped_params)
    params.update(model_name="no-such-org/no-such-model")
    params["bert"]["device"] = "cpu"
    (tmp_path / "hf").mkdir()
    result = run_stage_process("train_bert", tmp_path, params, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    assert_clean_failure(result, "model_name = 'no-such-org/no-such-model' cannot be loaded",
                         "HF_HOME=../shared/hf HF_HUB_OFFLINE=1", "go online",
                         "dvc exp run -S model_name=sentence-transformers/all-MiniLM-L6-v2")
    assert not (tmp_path / "models").exists()


def test_model_name_of_a_directory_without_a_model(tmp_path):
    with pytest.raises(PipelineError, match=r"model_name = '.*empty' cannot be loaded .* local model directory"):
        BertSentimentClassifier(str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError, match=r"model_name = '.*empty' cannot be loaded"):
        BertSentimentClassifier(str(tmp_path / "empty"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("stage", [train_bert, tune], ids=["train_bert", "tune"])
def test_device_cuda_without_gpu_names_bert_device(shipped_params, tmp_path, monkeypatch, stage):
    monkeypatch.chdir(tmp_path)
    for name in ("train", "val"):
        write_split(f"data/processed/{name}.jsonl", balanced_split())
    params = copy.deepcopy(shipped_params)
    params["bert"]["device"] = "cuda"
    with pytest.raises(PipelineError, match=r"^bert.device = cuda: CUDA is not available on this machine"):
        stage.main(params)
    assert not Path("models").exists()


# ---- out of memory ------------------------------------------------------------------------------------
def _out_of_memory(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


class _OutOfMemoryModel(nn.Module):
    forward = staticmethod(_out_of_memory)


def test_out_of_memory_in_training_names_the_batch_size_and_a_smaller_one():
    with pytest.raises(PipelineError, match=r"^out of GPU memory: batch_size = 16 is too large .* try batch_size=8$"):
        with explain_out_of_memory("batch_size", 16, "bert.eval_batch_size", 128):
            _out_of_memory()


def test_out_of_memory_in_validation_names_the_eval_batch_size():
    batch = {"input_ids": torch.zeros(2, 3, dtype=torch.long), "labels": torch.zeros(2, dtype=torch.long)}
    with pytest.raises(PipelineError, match=r"bert.eval_batch_size = 128 is too large .* try bert.eval_batch_size=64"):
        with explain_out_of_memory("batch_size", 16, "bert.eval_batch_size", 128):
            evaluate(_OutOfMemoryModel(), [batch], torch.device("cpu"))


def test_out_of_memory_in_the_lstm_stage_names_lstm_batch_size(workdir, monkeypatch):  # noqa: F811
    monkeypatch.setattr(train_lstm.LSTMClassifier, "forward", _out_of_memory)
    with pytest.raises(PipelineError, match=r"lstm.batch_size = 16 is too large for this GPU: try lstm.batch_size=8"):
        train_lstm.main(workdir)


@pytest.mark.parametrize("stage, search_space, expected", [
    (train_bert, None, "batch_size = 16 is too large for this GPU: try batch_size=8"),
    (tune, None, "batch_size = 16 is too large for this GPU: try batch_size=8"),
    (tune, {"learning_rate": [2e-5], "batch_size": [8, 32]},
     "tune.search_space.batch_size = [8, 32] holds sizes too large for this GPU: keep sizes up to 16"),
], ids=["train_bert", "tune", "tune_searching_batch_size"])
def test_out_of_memory_in_the_bert_stages_names_their_batch_size(shipped_params, monkeypatch, stage,
                                                                 search_space, expected):
    monkeypatch.setattr(stage, "load_bert_data", _out_of_memory)
    if stage is tune:
        monkeypatch.setattr(tune, "read_split", lambda path: balanced_split())
    params = copy.deepcopy(shipped_params)
    if search_space:
        params["tune"]["search_space"] = search_space
    with pytest.raises(PipelineError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        stage.main(params)


def test_out_of_memory_in_evaluation_names_the_batch_size_option(monkeypatch, capsys):
    monkeypatch.setattr("src.evaluation.score_split", _out_of_memory)
    with pytest.raises(SystemExit) as exit_info:
        evaluation_main(["--batch-size", "64"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "error: out of GPU memory: --batch-size = 64 is too large for this GPU: " \
                                      "try --batch-size=32\n"


# ---- a full disk --------------------------------------------------------------------------------------
def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("had_old_file", [True, False], ids=["replacing", "new"])
@pytest.mark.parametrize("fails_at", ["write", "fsync"])
def test_disk_full_while_writing_leaves_no_partial_file(tmp_path, monkeypatch, had_old_file, fails_at):
    target = tmp_path / "out" / "metrics.json"
    if had_old_file:
        write_json(target, {"old": True})
    if fails_at == "fsync":
        monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(PipelineError) as info:
        with atomic_open(target) as handle:
            handle.write('{"new": ')
            if fails_at == "write":
                _disk_full()
            handle.write("true}\n")
    kept = "the previous file is intact" if had_old_file else "nothing was written"
    assert str(info.value) == f"{target}: no space left on device while writing; {kept}. Free space and run again"
    assert os.listdir(target.parent) == (["metrics.json"] if had_old_file else [])  # no .tmp left
    if had_old_file:
        assert json.loads(target.read_text()) == {"old": True}


@pytest.mark.parametrize("free_bytes, disk_full", [(4096, True), (10**9, False)])
def test_writer_error_without_enospc_on_a_full_disk_is_still_named(tmp_path, monkeypatch, free_bytes, disk_full):
    # Measured on a full tmpfs: numpy reports a short write, torch.save a position mismatch; no errno.
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda path: SimpleNamespace(free=free_bytes))
    torch_error = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    with pytest.raises(PipelineError if disk_full else RuntimeError, match="no space left" if disk_full else "pos"):
        with atomic_open(tmp_path / "model.pt", "wb") as handle:
            handle.write(b"partial")
            raise torch_error
    assert os.listdir(tmp_path) == []


def test_disk_full_while_exporting_bert_removes_the_partial_export(tmp_path):
    class FillsTheDisk:
        def save_pretrained(self, directory, tokenizer):
            Path(directory).mkdir()
            (Path(directory) / "config.json").write_text("{}")
            raise Exception("Error while serializing: I/O error: No space left on device (os error 28)")  # safetensors

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.safetensors").write_bytes(b"the previous export")
    with pytest.raises(PipelineError, match=r"model: no space left on device while writing; the partial export was removed"):
        _export(FillsTheDisk(), None, tmp_path / "model")
    assert os.listdir(tmp_path) == ["model"]
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == b"the previous export"


class _FillsUp:
    """A binary file that takes ``room`` bytes, then fails like a full disk."""

    def __init__(self, path, mode, room):
        self.handle, self.room = open(path, mode), room

    def write(self, data):
        if len(data) > self.room:
            self.handle.write(data[: self.room])
            self.room = 0
            _disk_full()
        self.room -= len(data)
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def test_disk_full_while_downloading_keeps_the_part_file_and_the_next_run_resumes(server, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    dest, url, sha256 = tmp_path / "file.bin", f"{server}/file.bin", hashlib.sha256(BODY).hexdigest()
    monkeypatch.setattr(download_module, "open", lambda path, mode: _FillsUp(path, mode, 40_000), raising=False)
    with pytest.raises(PipelineError, match=r"file.bin: no space left on device while writing; .*file.bin.part "
                                            r"is kept and the next run resumes it \(delete it to start over\)"):
        download(url, dest, sha256=sha256, progress=False)
    assert not dest.exists() and (tmp_path / "file.bin.part").stat().st_size == 40_000

    monkeypatch.delattr(download_module, "open")  # space freed
    assert download(url, dest, sha256=sha256, progress=False).read_bytes() == BODY
    assert _Handler.requests_seen[-1] == ("/file.bin", "bytes=40000-")
    assert os.listdir(tmp_path) == ["file.bin"]


def test_disk_full_while_copying_from_the_mirror_removes_the_partial_copy(tmp_path, monkeypatch):
    local = tmp_path / "mirror" / "example.invalid" / "data.txt"
    local.parent.mkdir(parents=True)
    local.write_bytes(b"from the mirror\n")
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))

    def copy_half(source, target):
        Path(target).write_bytes(Path(source).read_bytes()[:5])
        _disk_full()

    monkeypatch.setattr(download_module.shutil, "copyfile", copy_half)
    with pytest.raises(PipelineError, match="data.txt: no space left on device while writing; the partial copy"):
        download("https://example.invalid/data.txt", tmp_path / "out" / "data.txt")
    assert os.listdir(tmp_path / "out") == []

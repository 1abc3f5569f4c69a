"""Bad input (issues 6 and 10): a table of cases, each a row. Every row runs a stage (in-process, as
`python -m stages.X` would through run_stage) or a CLI (src.predict, src.evaluation) and asserts: exit 1,
exactly one `error: ` line naming the params key or file:line, no traceback, and nothing changed in the
working directory outside the stage's outputs (a snapshot before and after).

Generated cases (hypothesis over params and raw data lines) are in test_generated_inputs.py.
Cases tested elsewhere (not repeated here):
  unknown key, wrong type, top-level out of range
                                                      test_params.py::test_schema_errors_name_the_key_and_what_was_expected
  GloVe archive without the member                    test_vocab.py::test_archive_without_the_member_lists_what_it_has,
                                                      test_pipeline_e2e.py::test_missing_glove_dimension_fails_clearly
  device cuda without a GPU (engine)
                                                      test_training_integration.py::test_cuda_requested_without_cuda_is_an_error
Below the table: model_name, bert.device, out of memory and a full disk.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from src.core import atomic
from src.core.atomic import atomic_open, write_json
from src.core.cli import run_stage
from src.core.errors import PipelineError
from src.core.params import load_params
from src.core.runtime import explain_out_of_memory
from src.data import download as download_module
from src.data.download import MIRROR_ENV, download
from src.data.preprocess import Split, write_split
from src.evaluation import main as evaluation_main
from src.models.bert_model import BertSentimentClassifier, load_tokenizer
from src.models.training import export_pretrained
from src.predict import main as predict_main
from src.training.trainer import evaluate
from stages import download_data, download_glove, preprocess, train_bert, train_lstm, tune
from tests.fixtures import (
    BODY,
    GLOVE_HOST_PATH,
    TINY_LSTM,
    DownloadHandler,
    synthetic_split,
    tiny_splits,
    write_mirror,
    write_tiny_bert,
    write_tweeteval,
)

REPO = Path(__file__).resolve().parents[1]
LABELS = ["negative", "neutral", "positive"]


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
        [sys.executable, "-m", f"stages.{stage}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": os.environ["PATH"], "OMP_NUM_THREADS": "1", **env},
    )


def assert_one_error_line(code, stderr: str, *expected: str) -> None:
    """Exit 1, exactly one line starting `error: `, no traceback, and every ``expected`` text in it."""
    assert code == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr
    for text in expected:
        assert text in stderr, stderr


def assert_clean_failure(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert_one_error_line(result.returncode, result.stderr, *expected)


# ---- trained model directories, made once for the rows that damage them ------------------------------
@pytest.fixture(scope="module")
def trained_dirs(tmp_path_factory, shipped_params):
    """models/lstm (one epoch of the real stage on synthetic data) and a BERT export (a 2-layer BERT)."""
    root = tmp_path_factory.mktemp("trained")
    previous = Path.cwd()
    os.chdir(root)
    try:
        torch.set_num_threads(1)
        for name, (n, seed) in {"train": (90, 1), "val": (30, 2), "test": (30, 3)}.items():
            write_split(f"data/processed/{name}.jsonl", Split(*synthetic_split(n, seed)))
        from src.core.atomic import save_numpy
        from src.data.vocab import Vocabulary

        vocab = Vocabulary.build(synthetic_split(90, 1)[0])
        vocab.save("data/vocab/vocab.json")
        save_numpy("data/vocab/embeddings.npy", torch.randn(len(vocab), 8).numpy())
        params = copy.deepcopy(shipped_params)
        params["lstm"] = {**TINY_LSTM, "epochs": 1}
        train_lstm.main(params)
        tiny = str(write_tiny_bert(root / "tiny-bert"))
        BertSentimentClassifier(tiny, 3, 0.1, LABELS).save_pretrained(root / "models/bert/model", load_tokenizer(tiny))
    finally:
        os.chdir(previous)
    return root


# ---- the table --------------------------------------------------------------------------------------
@dataclass
class Case:
    """One bad input. ``setup(tmp, params)`` writes files and edits params (returns argv for a CLI, or
    the raw bytes of params.yaml as ``bytes``); ``outputs`` are the paths the run may change."""

    run: str  # a stage module name, or "predict" / "evaluation"
    setup: Callable
    expected: str | tuple[str, ...]
    outputs: tuple[str, ...] = ()


def _params(**changes):
    """A setup that edits params: ``_params(**{"lstm.hidden_dim": 300.0})``."""

    def setup(tmp, params):
        for dotted, value in changes.items():
            *path, key = dotted.split(".")
            target = params
            for part in path:
                target = target[part]
            target[key] = value

    return setup


def _params_text(raw: bytes):
    return lambda tmp, params: raw


def _shipped_params_with(old: str, new: str):
    """The shipped params.yaml text with one value replaced (YAML spellings JSON has not: .nan, .inf)."""
    text = (REPO / "params.yaml").read_text()
    assert old in text
    return _params_text(text.replace(old, new).encode())


def _tweeteval(tmp: Path) -> Path:
    return write_tweeteval(tmp / "raw", tiny_splits())


def _csv_rows(tmp: Path, extra: bytes = b"", header: bytes = b"text,label", name: str = "own.csv") -> Path:
    rows = b"".join(f"{t},{y}\n".encode() for rows in tiny_splits().values() for t, y in rows)  # 72 rows
    (tmp / name).write_bytes(header + b"\n" + rows + extra)
    return tmp / name


def _raw(change: Callable[[Path], None], data_input: str = "raw"):
    def setup(tmp, params):
        change(tmp)
        params["data"]["input"] = data_input

    return setup


def _with_mirror(change=None, **param_changes):
    def setup(tmp, params):
        write_mirror(tmp / "mirror")  # the runner points SENTIMENT_MIRROR at it
        if change:
            change(tmp)
        _params(**param_changes)(tmp, params)

    setup.mirror = True
    return setup


def _label_line(split: str, line: str):
    """TweetEval labels file with its second line replaced by ``line``."""

    def change(tmp):
        path = _tweeteval(tmp) / f"{split}_labels.txt"
        lines = path.read_text().splitlines(keepends=True)
        lines[1] = line
        path.write_text("".join(lines))

    return change


def _model(kind: str, damage: Callable[[Path], None] | None = None, argv_tail=("hello",), cli="predict"):
    """Copy a trained model directory into the case's directory, damage it, return the CLI's argv."""

    def setup(tmp, params, trained=None):
        source = trained / ("models/lstm" if kind == "lstm" else "models/bert")
        shutil.copytree(source, tmp / "models" / kind)
        if kind == "lstm":
            shutil.copytree(trained / "data/processed", tmp / "data/processed")
        if damage:
            damage(tmp / "models" / kind)
        if cli == "predict":
            return ["--model", f"models/{kind}", *argv_tail]
        return ["--model-dir", f"models/{kind}", *argv_tail]

    setup.needs_trained = True
    return setup


def _write(relative: str, data: bytes):
    return lambda directory: (directory / relative).write_bytes(data)


def _truncate(relative: str):
    def damage(directory):
        path = directory / relative
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return damage


def _processed_label(label: int):
    def setup(tmp, params, trained=None):
        argv = _model("lstm", cli="evaluation", argv_tail=("--split", "test"))(tmp, params, trained)
        path = tmp / "data/processed/test.jsonl"
        lines = path.read_text().splitlines()
        lines[3] = json.dumps({"text": "odd one", "label": label})
        path.write_text("\n".join(lines) + "\n")
        return argv

    setup.needs_trained = True
    return setup


def _lstm_labels(label_names):
    def setup(tmp, params, trained=None):
        shutil.copytree(trained / "data", tmp / "data")
        params["lstm"] = {**TINY_LSTM, "epochs": 1}
        params["data"]["label_names"] = label_names

    setup.needs_trained = True
    return setup


def _in_the_way(relative: str):
    """A file where the stage needs a directory."""

    def setup(tmp, params, trained=None):
        shutil.copytree(trained / "data", tmp / "data")
        params["lstm"] = {**TINY_LSTM, "epochs": 1}
        (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp / relative).write_text("not a directory")

    setup.needs_trained = True
    return setup


HEX = "0" * 64
MIRROR_BASE = "https://raw.githubusercontent.com/cardiffnlp/tweeteval/main/datasets/sentiment/"
PROCESSED = ("data/processed", "metrics")
CASES = {
    # -- params.yaml itself
    "params_not_utf8": Case("preprocess", _params_text(b"model_name: caf\xe9\n"), "params.yaml:1: not valid UTF-8"),
    "params_not_yaml": Case("preprocess", _params_text(b"model_name: [unclosed\n"), "params.yaml: not valid YAML"),
    "params_a_list": Case(
        "preprocess",
        _params_text(b"- 1\n- 2\n"),
        "params.yaml: expected a mapping of params (key: value), the file is a list",
    ),
    "params_empty": Case(
        "preprocess", _params_text(b"\n"), "params.yaml: expected a mapping of params (key: value), the file is empty"
    ),
    "params_recursive_alias": Case(
        "preprocess", _params_text(b"a: &x [*x]\n"), "params.yaml: a YAML alias refers to itself"
    ),
    # -- params values: nested keys, strict types
    "lstm_lr_negative": Case(
        "train_lstm", _params(**{"lstm.learning_rate": -0.01}), "lstm.learning_rate = -0.01: expected a value > 0"
    ),
    "lstm_dropout_1.5": Case(
        "train_lstm", _params(**{"lstm.dropout": 1.5}), "lstm.dropout = 1.5: expected a value < 1"
    ),
    "lstm_epochs_string": Case(
        "train_lstm", _params(**{"lstm.epochs": "12"}), "lstm.epochs = '12': expected type integer"
    ),
    "lstm_hidden_dim_300.0": Case(
        "train_lstm",
        _params(**{"lstm.hidden_dim": 300.0}),
        "lstm.hidden_dim = 300.0: expected type integer (write 300, not 300.0)",
    ),
    "max_length_128.0": Case("train_bert", _params(max_length=128.0), "max_length = 128.0: expected type integer"),
    "seed_float": Case("train_bert", _params(seed=42.0), "seed = 42.0: expected type integer"),
    "tune_batch_sizes_float": Case(
        "tune",
        _params(**{"tune.search_space.batch_size": [16, 32.0]}),
        "tune.search_space.batch_size.1 = 32.0: expected type integer",
    ),
    "epochs_true": Case("train_lstm", _params(**{"lstm.epochs": True}), "lstm.epochs = True: expected type integer"),
    "bidirectional_1": Case(
        "train_lstm", _params(**{"lstm.bidirectional": 1}), "lstm.bidirectional = 1: expected type boolean"
    ),
    "learning_rate_true": Case("train_bert", _params(learning_rate=True), "learning_rate = True: expected type number"),
    "learning_rate_nan": Case(
        "train_bert",
        _shipped_params_with("learning_rate: 5.0e-05", "learning_rate: .nan"),
        "learning_rate = nan: expected type number (a finite value)",
    ),
    "weight_decay_inf": Case(
        "train_lstm",
        _shipped_params_with("weight_decay: 1.0e-05", "weight_decay: .inf"),
        "lstm.weight_decay = inf: expected type number (a finite value)",
    ),
    "hidden_dim_yaml_300.0": Case(
        "train_lstm",
        _shipped_params_with("hidden_dim: 128", "hidden_dim: 300.0"),
        "lstm.hidden_dim = 300.0: expected type integer (write 300, not 300.0)",
    ),
    "search_space_lr": Case(
        "tune",
        _params(**{"tune.search_space.learning_rate": [2e-5, -1e-5]}),
        "tune.search_space.learning_rate.1 = -1e-05: expected a value > 0",
    ),
    "search_space_dropout": Case(
        "tune",
        _params(**{"tune.search_space.dropout_prob": [1.5]}),
        "tune.search_space.dropout_prob.0 = 1.5: expected a value < 1",
    ),
    "search_space_warmup": Case(
        "tune",
        _params(**{"tune.search_space.warmup_ratio": [0.1, 1.2]}),
        "tune.search_space.warmup_ratio.1 = 1.2: expected a value <= 1",
    ),
    "bert_device_gpu": Case(
        "train_bert", _params(**{"bert.device": "gpu"}), "bert.device = 'gpu': expected one of auto, cuda, cpu"
    ),
    "unknown_top_key": Case("train_bert", _params(learning_rat=1e-5), "unknown key learning_rat: expected one of"),
    "label_name_spaces": Case(
        "preprocess",
        _params(**{"data.label_names": ["negative", " neutral", "positive"]}),
        "data.label_names.1 = ' neutral': expected a label name",
    ),
    "label_name_digits": Case(
        "preprocess",
        _params(**{"data.label_names": ["negative", "1", "positive"]}),
        "data.label_names.1 = '1': expected a label name",
    ),
    # -- containment: names from params that would read or write elsewhere
    "files_dotdot": Case(
        "download_data",
        _params(**{"data.files": ["../x.txt"]}),
        "data.files.0 = '../x.txt': expected a plain file name",
    ),
    "files_absolute": Case(
        "download_data",
        _params(**{"data.files": ["/tmp/x.txt"]}),
        "data.files.0 = '/tmp/x.txt': expected a plain file name",
    ),
    "files_subdir": Case(
        "download_data", _params(**{"data.files": ["a/b.txt"]}), "data.files.0 = 'a/b.txt': expected a plain file name"
    ),
    "sha256_key_dotdot": Case(
        "download_data",
        _params(**{"data.sha256": {"../x.txt": HEX}}),
        "data.sha256 key '../x.txt': expected a plain file name",
    ),
    "sha256_key_not_a_file": Case(
        "download_data",
        _params(**{"data.sha256": {"train.txt": HEX}}),
        "data.sha256 key 'train.txt' is not in data.files (train_text.txt, ",
    ),
    "input_absolute": Case(
        "preprocess",
        _params(**{"data.input": "/etc"}),
        "data.input = '/etc': expected a relative path inside the repository",
    ),
    "input_dotdot": Case(
        "preprocess",
        _params(**{"data.input": "data/../../raw"}),
        "data.input = 'data/../../raw': expected a relative path inside the repository",
    ),
    "input_home": Case(
        "preprocess",
        _params(**{"data.input": "~/tweets.csv"}),
        "data.input = '~/tweets.csv': expected a relative path inside the repository",
    ),
    "base_url_dotdot_in_mirror": Case(
        "download_data",
        _with_mirror(**{"data.base_url": MIRROR_BASE + "../../../../../../"}),
        "the URL has a segment '..' that would lead outside the mirror",
        ("data/raw",),
    ),
    "base_url_encoded_dotdot": Case(
        "download_data",
        _with_mirror(**{"data.base_url": MIRROR_BASE + "%2e%2e/%2E%2E/"}),
        "the URL has a segment '..' that would lead outside the mirror",
        ("data/raw",),
    ),
    "base_url_encoded_slash": Case(
        "download_data",
        _with_mirror(**{"data.base_url": MIRROR_BASE + "..%2f..%2f/"}),
        "the URL has a segment '../../' that would lead outside",
        ("data/raw",),
    ),
    "base_url_file_missing": Case(
        "download_data",
        _params(**{"data.base_url": "file:///no/such/dir/"}),
        "file:///no/such/dir/train_text.txt: no such file /no/such/dir/train_text.txt",
        ("data/raw",),
    ),
    "base_url_file_remote_host": Case(
        "download_data",
        _params(**{"data.base_url": "file://example.com/x/"}),
        "a file:// URL must name a local file",
        ("data/raw",),
    ),
    "sha256_mismatch": Case(
        "download_data",
        _with_mirror(**{"data.sha256": {"mapping.txt": HEX}}),
        "mapping.txt: sha256 mismatch",
        ("data/raw",),
    ),
    # -- GloVe
    "glove_pair_missing": Case(
        "download_glove",
        _params(**{"glove.dimension": "300d"}),
        "glove.dimension = '300d': GloVe twitter.27B comes in 25d, 50d, 100d, 200d only",
    ),
    "glove_dimension_int": Case(
        "download_glove", _params(**{"glove.dimension": 25}), "glove.dimension = 25: expected type string"
    ),
    "glove_archive_corrupt": Case(
        "download_glove",
        _with_mirror(
            lambda tmp: (tmp / "mirror" / GLOVE_HOST_PATH / "glove.twitter.27B.zip").write_bytes(
                b"PK\x03\x04 not a zip"
            )
        ),
        "data/downloads/glove.twitter.27B.zip: not a valid zip archive",
        ("data/downloads", "data/glove"),
    ),
    # -- data files through preprocess
    "tweeteval_missing_file": Case(
        "preprocess", _raw(lambda tmp: (_tweeteval(tmp) / "val_text.txt").unlink()), "raw/val_text.txt: file not found"
    ),
    "tweeteval_empty_file": Case(
        "preprocess",
        _raw(lambda tmp: (_tweeteval(tmp) / "train_labels.txt").write_bytes(b"\n\n")),
        "raw/train_labels.txt: file is empty",
    ),
    "tweeteval_undecodable": Case(
        "preprocess",
        _raw(lambda tmp: (_tweeteval(tmp) / "test_text.txt").write_bytes(b"fine\nbad \xff byte\n")),
        "raw/test_text.txt:2: not valid UTF-8",
    ),
    "tweeteval_lengths_differ": Case(
        "preprocess",
        _raw(lambda tmp: (_tweeteval(tmp) / "val_labels.txt").write_text("1\n" * 13)),
        "raw/val_text.txt has 12 lines but raw/val_labels.txt has 13: expected one label per tweet",
    ),
    "label_3": Case(
        "preprocess",
        _raw(_label_line("train", "3\n")),
        "raw/train_labels.txt:2: label '3' is not one of 0..2 (negative, neutral, positive)",
    ),
    "label_trailing_space": Case(
        "preprocess", _raw(_label_line("train", "1 \n")), "raw/train_labels.txt:2: label '1 ' is not one of 0..2"
    ),
    "label_leading_space": Case("preprocess", _raw(_label_line("val", " 1\n")), "raw/val_labels.txt:2: label ' 1'"),
    "label_plus_sign": Case("preprocess", _raw(_label_line("test", "+2\n")), "raw/test_labels.txt:2: label '+2'"),
    "label_minus_zero": Case("preprocess", _raw(_label_line("test", "-0\n")), "raw/test_labels.txt:2: label '-0'"),
    "label_leading_zero": Case("preprocess", _raw(_label_line("train", "01\n")), "raw/train_labels.txt:2: label '01'"),
    "label_float": Case("preprocess", _raw(_label_line("train", "1.0\n")), "raw/train_labels.txt:2: label '1.0'"),
    "label_fullwidth_digit": Case(
        "preprocess", _raw(_label_line("train", "\uff11\n")), "raw/train_labels.txt:2: label '１'"
    ),
    "label_name_with_space": Case(
        "preprocess", _raw(_label_line("train", "neutral \n")), "raw/train_labels.txt:2: label 'neutral '"
    ),
    "mapping_id_with_space": Case(
        "preprocess",
        _raw(lambda tmp: (_tweeteval(tmp) / "mapping.txt").write_text("0\tnegative\n1 \tneutral\n2\tpositive\n")),
        "raw/mapping.txt:2: expected 'id<TAB>name'",
    ),
    "mapping_name_with_space": Case(
        "preprocess",
        _raw(lambda tmp: (_tweeteval(tmp) / "mapping.txt").write_text("0\tnegative\n1\tneutral \n2\tpositive\n")),
        "raw/mapping.txt:2: expected 'id<TAB>name'",
    ),
    "mapping_disagrees": Case(
        "preprocess",
        _raw(lambda tmp: (_tweeteval(tmp) / "mapping.txt").write_text("0\tnegative\n1\tpositive\n2\tneutral\n")),
        "raw/mapping.txt: labels",
    ),
    "csv_missing_file": Case("preprocess", _raw(lambda tmp: None, "own.csv"), "own.csv: file not found"),
    "csv_undecodable": Case(
        "preprocess", _raw(lambda tmp: _csv_rows(tmp, b"caf\xe9,2\n"), "own.csv"), "own.csv:74: not valid UTF-8"
    ),
    "csv_without_columns": Case(
        "preprocess",
        _raw(lambda tmp: _csv_rows(tmp, header=b"tweet,sentiment"), "own.csv"),
        "own.csv:1: missing column(s) text, label (header has: tweet, sentiment)",
    ),
    "csv_duplicate_column": Case(
        "preprocess",
        _raw(lambda tmp: _csv_rows(tmp, header=b"text,label,text"), "own.csv"),
        "own.csv:1: column(s) text appear more than once",
    ),
    "csv_label_5": Case(
        "preprocess",
        _raw(lambda tmp: _csv_rows(tmp, b"so so,5\n"), "own.csv"),
        "own.csv:74: label '5' is not one of 0..2",
    ),
    "csv_label_space": Case(
        "preprocess",
        _raw(lambda tmp: _csv_rows(tmp, b"so so, 1\n"), "own.csv"),
        "own.csv:74: label ' 1' is not one of 0..2",
    ),
    "csv_more_fields": Case(
        "preprocess",
        _raw(lambda tmp: _csv_rows(tmp, b"so, so,1\n"), "own.csv"),
        "own.csv:74: row has 3 fields but the header has 2",
    ),
    "csv_fewer_fields": Case(
        "preprocess",
        _raw(lambda tmp: _csv_rows(tmp, b"so so\n"), "own.csv"),
        "own.csv:74: row has 1 fields but the header has 2",
    ),
    "csv_after_multiline_field": Case(
        "preprocess",
        _raw(lambda tmp: _csv_rows(tmp, b'"two\nlines",1\nx,y,z\n'), "own.csv"),
        "own.csv:76: row has 3 fields",
    ),
    "tsv_more_fields": Case(
        "preprocess",
        _raw(
            lambda tmp: _csv_rows(tmp, b"a\tb\t1\n", header=b"text\tlabel", name="own.tsv").write_bytes(
                (tmp / "own.tsv").read_bytes().replace(b",", b"\t")
            ),
            "own.tsv",
        ),
        "own.tsv:74: row has 3 fields",
    ),
    "csv_bad_split_value": Case(
        "preprocess",
        lambda tmp, params: (
            _raw(lambda tmp: (tmp / "own.csv").write_text("text,label,fold\nhi,1,train\nyo,2,dev\n"), "own.csv")(
                tmp, params
            ),
            _params(**{"data.csv.split_column": "fold"})(tmp, params),
        )[-1],
        "own.csv:3: split 'dev' is not one of train, val, test",
    ),
    # -- train_lstm: data.label_names does not match the processed data; an output that cannot be written
    "lstm_labels_fewer_than_data": Case(
        "train_lstm",
        _lstm_labels(["negative", "positive"]),
        "data/processed/train.jsonl:",
        ("models/lstm", "metrics", "plots", "dvclive/train_lstm"),
    ),
    "lstm_labels_more_than_data": Case(
        "train_lstm",
        _lstm_labels(["negative", "neutral", "positive", "mixed"]),
        "data/processed/train.jsonl: no examples of label 3 (mixed) of data.label_names (4 names)",
        ("models/lstm", "metrics", "plots", "dvclive/train_lstm"),
    ),
    "lstm_model_dir_is_a_file": Case(
        "train_lstm",
        _in_the_way("models/lstm"),
        "error: models/lstm: a file is where a directory belongs",
        ("models/lstm", "metrics", "plots", "dvclive/train_lstm"),
    ),
    "lstm_metrics_dir_is_a_file": Case(
        "train_lstm",
        _in_the_way("metrics"),
        "error: metrics: a file is where a directory belongs",
        ("models/lstm", "metrics", "plots", "dvclive/train_lstm"),
    ),
    # -- damaged model directories through src.predict and src.evaluation
    "lstm_config_not_json": Case(
        "predict",
        _model("lstm", _write("model_config.json", b"{not json")),
        "models/lstm/model_config.json:1: not valid JSON",
    ),
    "lstm_config_a_list": Case(
        "predict",
        _model("lstm", _write("model_config.json", b"[1, 2]")),
        "models/lstm/model_config.json: expected a JSON object",
    ),
    "lstm_config_not_utf8": Case(
        "evaluation",
        _model("lstm", _write("model_config.json", b"\xff\xfe"), argv_tail=(), cli="evaluation"),
        "models/lstm/model_config.json: not valid UTF-8",
    ),
    "lstm_weights_path_escapes": Case(
        "predict",
        _model(
            "lstm",
            lambda d: (d / "model_config.json").write_text(
                json.dumps({**json.loads((d / "model_config.json").read_text()), "weights": "../../etc/passwd"})
            ),
        ),
        "models/lstm/model_config.json: weights = '../../etc/passwd': expected a plain file name",
    ),
    "lstm_config_other_shape": Case(
        "predict",
        _model(
            "lstm",
            lambda d: (d / "model_config.json").write_text(
                json.dumps({**json.loads((d / "model_config.json").read_text()), "hidden_dim": 7})
            ),
        ),
        ("models/lstm: incomplete model directory: best_model.pt does not fit model_config.json", "size mismatch"),
    ),
    "lstm_weights_truncated": Case("predict", _model("lstm", _truncate("best_model.pt")), "best_model.pt"),
    "bert_safetensors_truncated": Case(
        "predict", _model("bert", _truncate("model/model.safetensors")), "models/bert/model: a damaged BERT export"
    ),
    "bert_config_broken": Case(
        "evaluation",
        _model("bert", _write("model/config.json", b'{"model_type": '), argv_tail=(), cli="evaluation"),
        "models/bert/model: a damaged BERT export",
    ),
    "bert_config_no_model_type": Case(
        "predict", _model("bert", _write("model/config.json", b"{}")), "models/bert/model: a damaged BERT export"
    ),
    "evaluation_label_outside_model": Case(
        "evaluation",
        _processed_label(3),
        "data/processed/test.jsonl:4: label 3 is outside the classes of models/lstm (3 names: negative, neutral, "
        "positive); the model was trained for other classes",
    ),
    "evaluation_label_not_int": Case(
        "evaluation", _processed_label(1.5), "data/processed/test.jsonl:4: label 1.5 is not an integer label id"
    ),
    # -- src.predict options and input
    "predict_batch_size_0": Case(
        "predict",
        _model("lstm", argv_tail=("--batch-size", "0", "hi")),
        "--batch-size = '0': expected a whole number >= 1",
    ),
    "predict_batch_size_word": Case(
        "predict",
        _model("lstm", argv_tail=("--batch-size", "ten", "hi")),
        "--batch-size = 'ten': expected a whole number >= 1",
    ),
    "predict_device_unknown": Case(
        "predict",
        _model("lstm", argv_tail=("--device", "gpu", "hi")),
        "--device = 'gpu': expected auto, cpu, cuda or cuda:N",
    ),
    "evaluation_device_unknown": Case(
        "evaluation",
        _model("lstm", argv_tail=("--device", "tpu"), cli="evaluation"),
        "--device = 'tpu': expected auto, cpu, cuda or cuda:N",
    ),
    # stdin (STDIN below says what it holds; None: closed)
    "predict_stdin_closed": Case("predict", _model("lstm", argv_tail=("--input", "-")), "<stdin>: closed"),
    "predict_stdin_empty": Case(
        "predict", _model("lstm", argv_tail=("--input", "-")), "<stdin>: no input (it is empty)"
    ),
    "predict_stdin_undecodable": Case(
        "predict", _model("lstm", argv_tail=("--input", "-")), "<stdin>:2: not valid UTF-8"
    ),
    "predict_input_undecodable": Case(
        "predict", _model("lstm", argv_tail=("--input", "in.txt")), "in.txt:2: not valid UTF-8"
    ),
    "predict_input_empty": Case(
        "predict", _model("lstm", argv_tail=("--input", "empty.txt")), "empty.txt: file is empty"
    ),
}
STDIN = {"predict_stdin_closed": None, "predict_stdin_empty": b"", "predict_stdin_undecodable": b"ok\n\xff\n"}
FILES = {"in.txt": b"fine\nbad \xff\n", "empty.txt": b"\n \n"}
STAGES = {
    m.__name__.split(".")[-1]: m for m in (download_data, download_glove, preprocess, train_bert, train_lstm, tune)
}
CLIS = {"predict": predict_main, "evaluation": evaluation_main}


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256), and every directory (-> 'dir')."""
    state = {}
    for path in root.rglob("*"):
        key = path.relative_to(root).as_posix()
        state[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, shipped_params, tmp_path, monkeypatch, capsys, request):
    case = CASES[name]
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    if getattr(case.setup, "mirror", False):
        monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    params = copy.deepcopy(shipped_params)
    trained = request.getfixturevalue("trained_dirs") if getattr(case.setup, "needs_trained", False) else None
    argv = case.setup(tmp_path, params, trained) if trained is not None else case.setup(tmp_path, params)
    if isinstance(argv, bytes):
        (tmp_path / "params.yaml").write_bytes(argv)
    else:
        (tmp_path / "params.yaml").write_text(json.dumps(params))
    for file_name, data in FILES.items():
        (tmp_path / file_name).write_bytes(data)
    if name in STDIN:
        data = STDIN[name]
        monkeypatch.setattr(sys, "stdin", None if data is None else SimpleNamespace(buffer=io.BytesIO(data)))
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)

    with pytest.raises(SystemExit) as exit_info:
        if case.run in STAGES:
            run_stage(STAGES[case.run].main)  # what `python -m stages.X` runs, without a process per row
        else:
            CLIS[case.run](argv)
    expected = (case.expected,) if isinstance(case.expected, str) else case.expected
    assert_one_error_line(exit_info.value.code, capsys.readouterr().err, *expected)

    after = snapshot(tmp_path)
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    allowed = [
        *case.outputs,
        *(parent.as_posix() for out in case.outputs for parent in Path(out).parents if parent != Path(".")),
    ]  # a run may create the directory an output is in
    outside = {
        p for p in changed if not any(p == out or p.startswith(out + "/") for out in case.outputs) and p not in allowed
    }
    assert not outside, f"changed outside the outputs {case.outputs}: {sorted(outside)}"


def test_bad_data_stage_process_exits_1_without_traceback(shipped_params, tmp_path):
    """One row through a real `python -m stages.preprocess` process: the table runs in-process."""
    _label_line("train", "3\n")(tmp_path)
    params = copy.deepcopy(shipped_params)
    params["data"]["input"] = "raw"
    assert_clean_failure(
        run_stage_process("preprocess", tmp_path, params), "raw/train_labels.txt:2: label '3' is not one of 0..2"
    )
    assert not (tmp_path / "data/processed").exists()


def test_predict_with_stdin_closed_in_a_real_process(tmp_path):
    """fd 0 closed (`<&-`): Python starts with sys.stdin = None; one error line, no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "src.predict", "--model", str(tmp_path), "--input", "-"],
        cwd=REPO,
        text=True,
        capture_output=True,
        preexec_fn=lambda: os.close(0),
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert_clean_failure(result, "<stdin>: closed")


@pytest.mark.parametrize("stdout", ["closed", "broken_pipe"])
def test_predict_with_stdout_closed_or_broken_in_a_real_process(trained_dirs, stdout):
    """The results cannot be written: one error line, exit 1, not a silent exit 0 or a traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader that went away: writing raises EPIPE
    try:
        result = subprocess.run(
            [sys.executable, "-m", "src.predict", "--model", "models/lstm", "a tweet", "another"],
            cwd=trained_dirs,
            stdout=write_end if stdout == "broken_pipe" else None,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=(lambda: os.close(1)) if stdout == "closed" else None,
            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)},
        )
    finally:
        os.close(write_end)
    assert_clean_failure(result, "<stdout>: closed" if stdout == "closed" else "<stdout>: the reader closed it")


def test_an_unwritable_output_names_the_path(workdir, monkeypatch, capsys):  # noqa: F811
    """Permission denied / a read-only file system (root in CI ignores chmod, so the OS error is raised
    where atomic_open makes its temp file) is one line naming the directory, from run_stage's shared exit."""

    def denied(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, ".model_config.json.x.tmp"))

    (Path("params.yaml")).write_text(json.dumps(workdir))
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(SystemExit) as exit_info:
        run_stage(train_lstm.main)
    err = capsys.readouterr().err
    assert_one_error_line(exit_info.value.code, err)
    assert err.strip().endswith("Permission denied (check its permissions)")
    assert err.startswith("error: models/lstm: Permission denied") or "error: models/lstm: Permission denied" in err


def test_read_only_file_system_is_named(monkeypatch, capsys, tmp_path):
    from src.core.cli import pipeline_errors_exit

    with pytest.raises(SystemExit) as exit_info, pipeline_errors_exit():
        raise OSError(errno.EROFS, "Read-only file system", "models/bert/.best_model.pt.abc.tmp")
    assert_one_error_line(
        exit_info.value.code,
        capsys.readouterr().err,
        "error: models/bert: Read-only file system (it is on a read-only file system)",
    )


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
    assert_clean_failure(
        result,
        "model_name = 'no-such-org/no-such-model' cannot be loaded",
        "HF_HOME=../shared/hf HF_HUB_OFFLINE=1",
        "go online",
        "dvc exp run -S model_name=sentence-transformers/all-MiniLM-L6-v2",
    )
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
    from src.models.lstm_model import LSTMClassifier

    monkeypatch.setattr(LSTMClassifier, "forward", _out_of_memory)
    with pytest.raises(PipelineError, match=r"lstm.batch_size = 16 is too large for this GPU: try lstm.batch_size=8"):
        train_lstm.main(workdir)


@pytest.mark.parametrize(
    "stage, search_space, expected",
    [
        (tune, None, "batch_size = 16 is too large for this GPU: try batch_size=8"),
        (
            tune,
            {"learning_rate": [2e-5], "batch_size": [8, 32]},
            "tune.search_space.batch_size = [8, 32] holds sizes too large for this GPU: keep sizes up to 16",
        ),
    ],
    ids=["tune", "tune_searching_batch_size"],
)
def test_out_of_memory_in_the_bert_stages_names_their_batch_size(
    shipped_params, monkeypatch, stage, search_space, expected
):
    monkeypatch.setattr(stage, "load_bert_data", _out_of_memory)
    if stage is tune:
        monkeypatch.setattr(tune, "read_split", lambda path: balanced_split())
    params = copy.deepcopy(shipped_params)
    if search_space:
        params["tune"]["search_space"] = search_space
    with pytest.raises(PipelineError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        stage.main(params)


@pytest.mark.parametrize("argv", [[], ["--seed", "43"]], ids=["train_bert", "train_bert_seed"])
def test_out_of_memory_in_train_bert_names_batch_size(monkeypatch, capsys, argv):
    """As `python -m stages.train_bert` runs (params.yaml, the command line, the stage's entry), for
    train_bert and for a seed member."""
    import runpy

    monkeypatch.setattr("src.recipes.bert_run.load_bert_data", _out_of_memory)  # what the stage imports
    monkeypatch.setattr(sys, "argv", ["stages.train_bert", *argv])
    monkeypatch.chdir(REPO)
    monkeypatch.delitem(sys.modules, "stages.train_bert")  # run fresh, as a process would
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("stages.train_bert", run_name="__main__")
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        "error: out of GPU memory: batch_size = 16 is too large for this GPU: try batch_size=8\n"
    )


def test_out_of_memory_in_evaluation_names_the_batch_size_option(monkeypatch, capsys):
    monkeypatch.setattr("src.evaluation.score_split", _out_of_memory)
    with pytest.raises(SystemExit) as exit_info:
        evaluation_main(["--batch-size", "64"])
    assert exit_info.value.code == 1
    assert (
        capsys.readouterr().err == "error: out of GPU memory: --batch-size = 64 is too large for this GPU: "
        "try --batch-size=32\n"
    )


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


def _write_set(staged: list[Path], content: str) -> None:
    """A stage's set of outputs: a file and a directory of two files."""
    write_json(staged[0], {"run": content})
    for name in ("a.txt", "b.txt"):
        with atomic_open(staged[1] / name) as handle:
            handle.write(content)


def _read_set(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("had_old_set", [True, False], ids=["replacing", "new"])
@pytest.mark.parametrize("failing_write", [1, 2, 3])
def test_disk_full_while_writing_a_set_leaves_the_previous_set_whole(tmp_path, monkeypatch, had_old_set, failing_write):
    targets = [tmp_path / "metrics" / "test.json", tmp_path / "predictions" / "model"]
    if had_old_set:
        with atomic.replace_together(targets) as staged:
            _write_set(staged, "old")
    previous = _read_set(tmp_path)
    fsyncs, real_fsync = [], os.fsync

    def fsync(fd):  # the Nth file of the set finds the disk full
        fsyncs.append(fd)
        if len(fsyncs) == failing_write:
            _disk_full()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(PipelineError) as info:
        with atomic.replace_together(targets) as staged:
            _write_set(staged, "new")
    kept = "the previous outputs are intact" if had_old_set else "nothing was written"
    assert str(info.value) == (
        f"{targets[0]}, {targets[1]}: no space left on device while writing the new set; {kept}. "
        "Free space and run again"
    )
    assert _read_set(tmp_path) == previous
    # nothing staged is left, nor a directory made for the new set
    assert sorted(os.listdir(tmp_path)) == (["metrics", "predictions"] if had_old_set else [])
    if had_old_set:
        assert os.listdir(tmp_path / "predictions") == ["model"]


@pytest.mark.parametrize("failing_rename", [1, 2, 3, 4])
def test_a_set_that_cannot_be_swapped_in_is_rolled_back(tmp_path, monkeypatch, failing_rename):
    targets = [tmp_path / "metrics" / "test.json", tmp_path / "predictions" / "model"]
    with atomic.replace_together(targets) as staged:
        _write_set(staged, "old")
    previous = _read_set(tmp_path)
    renames, real_rename = [], os.rename

    def rename(source, target):  # old aside, new in; old aside, new in: the Nth is refused
        renames.append(source)
        if len(renames) == failing_rename:
            raise PermissionError(errno.EACCES, "Permission denied", str(source))
        real_rename(source, target)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(PipelineError) as info:
        with atomic.replace_together(targets) as staged:
            _write_set(staged, "new")
    assert str(info.value) == (
        f"{targets[0]}, {targets[1]}: could not be replaced (Permission denied); the previous outputs are intact"
    )
    assert _read_set(tmp_path) == previous
    assert sorted(os.listdir(tmp_path / "predictions")) == ["model"] and os.listdir(tmp_path / "metrics") == [
        "test.json"
    ]

    monkeypatch.setattr(os, "rename", real_rename)  # a target the new set does not hold is removed
    with atomic.replace_together(targets) as staged:
        write_json(staged[0], {"run": "newer"})
    assert _read_set(tmp_path) == {"metrics/test.json": '{\n  "run": "newer"\n}\n'}
    assert os.listdir(tmp_path / "predictions") == []


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
    with pytest.raises(
        PipelineError, match=r"model: no space left on device while writing; the partial export was removed"
    ):
        export_pretrained(FillsTheDisk(), None, tmp_path / "model")
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
    with pytest.raises(
        PipelineError,
        match=r"file.bin: no space left on device while writing; .*file.bin.part "
        r"is kept and the next run resumes it \(delete it to start over\)",
    ):
        download(url, dest, sha256=sha256, progress=False)
    assert not dest.exists() and (tmp_path / "file.bin.part").stat().st_size == 40_000

    monkeypatch.delattr(download_module, "open")  # space freed
    assert download(url, dest, sha256=sha256, progress=False).read_bytes() == BODY
    assert DownloadHandler.requests_seen[-1] == ("/file.bin", "bytes=40000-")
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

"""Hostile and faulty inputs, one table per class of failure: traceback, containment, lost data,
memory, runaway, unclear. Every row runs the entry point a user meets (`dvc repro -s STAGE` in a
temporary git + DVC repository, or `python -m ...` there), in a child process whose peak memory is
measured, and asserts:

- the exit status, and for a failure exactly one line starting `error: ` holding the expected text;
- no `Traceback` (from our code or from torchrun's launcher);
- nothing changed outside the repository: every file under the row's temporary directory but the
  repository itself (a canary directory, and the repository's parent, where `sqlite:///../x.db`
  would land) hashes the same before and after;
- for the memory rows, a bound on the peak resident memory of the command's processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from src.core.params import load_params
from src.data.preprocess import Split, normalize_tweet, write_split
from src.scoring.ensemble import models_of
from tests.fixtures import BODY, DownloadHandler, tiny_splits, write_tiny_bert

REPO = Path(__file__).resolve().parents[1]
LABELS = ["negative", "neutral", "positive"]
# resident memory of the command's processes, measured by the wrapper that runs them
MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "sys.stderr.write(f'\\npeak_kb={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n')\n"
    "sys.exit(code)\n"
)


# ---- the repository each row runs in ------------------------------------------------------------------
@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A git + DVC repository with the pipeline's code, tiny processed data, a tiny BERT (model_name),
    a trained-looking BERT export in models/bert and tiny params; each row works on a copy."""
    from src.models.bert_model import BertSentimentClassifier, load_tokenizer

    root = tmp_path_factory.mktemp("template") / "repo"
    root.mkdir()
    for name in ("src", "stages"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    for split, rows in tiny_splits().items():
        write_split(
            root / f"data/processed/{split}.jsonl", Split([normalize_tweet(t) for t, _ in rows], [y for _, y in rows])
        )
    (root / "data/vocab").mkdir(parents=True)  # train_lstm's deps exist (its rows fail before reading them)
    (root / "data/vocab/vocab.json").write_text("{}")
    tiny = write_tiny_bert(root / "tiny-bert")
    BertSentimentClassifier(str(tiny), 3, 0.1, LABELS).save_pretrained(
        root / "models/bert/model", load_tokenizer(str(tiny))
    )
    params = load_params(REPO / "params.yaml")
    params.update(model_name="tiny-bert", num_epochs=1, batch_size=8, max_length=32)
    params["bert"].update(device="cpu", eval_batch_size=16)
    params["tune"].update(train_fraction=1.0, n_trials=1, search_space={"learning_rate": [1e-3]})
    params["distributed"]["timeout_s"] = 10
    (root / "params.yaml").write_text(json.dumps(params, indent=1))
    env = run_env()
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "t@example.com"],
        ["git", "config", "user.name", "test"],
        [sys.executable, "-m", "dvc", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "init"],
    ):
        subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
    return root


def run_env(**extra: str) -> dict:
    env = {**os.environ, "PYTHONPATH": "", "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONSAFEPATH", None)
    env.pop("SENTIMENT_MIRROR", None)  # the developer's mirror: a row that needs one names its own
    return {**env, **extra}


def set_params(repo: Path, **changes) -> None:
    """``set_params(repo, **{"tune.workers": 1000})``: edit the row's params.yaml (JSON is YAML)."""
    params = json.loads((repo / "params.yaml").read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[key] = value
    (repo / "params.yaml").write_text(json.dumps(params, indent=1))


def tree_hash(root: Path, skip: Path) -> dict[str, str]:
    """{path: hash of its content or link target} of everything under ``root`` but ``skip``."""
    result = {}
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(top, d) != skip]
        for name in dirs + files:
            path = Path(top, name)
            if path.is_symlink():
                result[str(path)] = "link:" + os.readlink(path)
            elif path.is_file():
                result[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                result[str(path)] = "dir"
    return result


def repo_hash(repo: Path, outputs: tuple[str, ...]) -> dict[str, str]:
    """tree_hash of the repository but ``outputs`` and what running code leaves (__pycache__, .dvc/tmp)."""
    skipped = {repo / out for out in outputs} | {repo / ".dvc/tmp"}
    return {
        path: digest
        for path, digest in tree_hash(repo, skip=repo / ".git").items()
        if "__pycache__" not in path and not any(Path(path).is_relative_to(s) for s in skipped)
    }


def record(command: list[str], rc: int, output: str, peak_mb: float, seconds: float) -> None:
    """With HOSTILE_RECORD=FILE, one JSON line per row: the command, its exit status, its error line, its
    peak memory and duration (for a report)."""
    if not os.environ.get("HOSTILE_RECORD"):
        return
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    test_id = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1].removesuffix(" (call)")
    entry = {
        "row": test_id,
        "command": " ".join(c if len(c) < 200 else c[:60] + "..." for c in command[1:] if c != "-c"),
        "rc": rc,
        "error": errors[0][:300] if errors else None,
        "peak_mb": round(peak_mb),
        "seconds": round(seconds, 1),
    }
    with open(os.environ["HOSTILE_RECORD"], "a") as handle:
        handle.write(json.dumps(entry) + "\n")


# ---- the rows ---------------------------------------------------------------------------------------------
@dataclass
class Row:
    setup: Callable[[Path, Path], list[str]]  # (repo, canary) -> the command, after changing what it needs
    expected: tuple[str, ...]  # texts of the one `error:` line (or, with rc 0, of the output)
    rc: int = 1
    max_mb: int | None = None  # memory rows: peak resident memory of the command's processes
    seconds: float | None = None  # runaway rows: it must end well within this (a loaded CPU included)
    env: dict = field(default_factory=dict)  # environment variables for the command
    # repo-relative paths the command may change; with a tuple, everything else in the repository
    # (but __pycache__ and DVC's .dvc/tmp) must hash the same after it ran: () for "nothing at all"
    outputs: tuple[str, ...] | None = None


def dvc_repro(stage: str) -> list[str]:
    return [sys.executable, "-m", "dvc", "repro", "-s", stage]


def module(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", name, *args]


def _params_then(command: list[str], **changes) -> Callable[[Path, Path], list[str]]:
    def setup(repo: Path, canary: Path) -> list[str]:
        set_params(repo, **{k.replace("__", "."): (v(repo, canary) if callable(v) else v) for k, v in changes.items()})
        return command

    return setup


def _tune_storage(url_of: Callable[[Path, Path], str]):
    return _params_then(module("stages.tune"), tune__storage=url_of)


def _symlink_journal(repo: Path, canary: Path) -> list[str]:
    (repo / "models/tune").mkdir(parents=True)
    (repo / "models/tune/optuna_journal.log").symlink_to(canary / "journal.log")
    return module("stages.tune")


def _linked_db(repo: Path, canary: Path) -> list[str]:
    (repo / "models/tune").mkdir(parents=True)
    (repo / "models/tune/study.db").symlink_to(canary / "study.db")
    set_params(repo, **{"tune.storage": "sqlite:///models/tune/study.db"})
    return module("stages.tune")


def _tune_best_linked_out(repo: Path, canary: Path) -> list[str]:
    """models/tune/config_7 -> a BERT export outside the repository, and best_trial 7."""
    shutil.copytree(repo / "models/bert", canary / "elsewhere_model")
    (repo / "models/tune").mkdir(parents=True)
    (repo / "models/tune/config_7").symlink_to(canary / "elsewhere_model")
    (repo / "models/tune/tuning_results.json").write_text(json.dumps({"best_trial": 7, "trials": []}))
    return module("stages.evaluate", "tune_best")


def _file_linked_out(relative: str) -> Callable[[Path, Path], list[str]]:
    """A file of the pulled models/bert replaced by a link to a copy outside the repository."""

    def setup(repo: Path, canary: Path) -> list[str]:
        path = repo / "models/bert" / relative
        shutil.copy(path, canary / path.name)
        path.unlink()
        path.symlink_to(canary / path.name)
        return module("src.predict", "--model", "models/bert", "hello")

    return setup


def _oversized_model_file(relative: str, size: int) -> Callable[[Path, Path], list[str]]:
    def setup(repo: Path, canary: Path) -> list[str]:
        with open(repo / "models/bert" / relative, "r+b") as handle:
            handle.truncate(size)  # sparse: the size a reader would be asked to parse, without the disk
        return module("src.predict", "--model", "models/bert", "hello")

    return setup


def _one_huge_line(repo: Path, canary: Path) -> list[str]:
    (repo / "huge.txt").write_text(("great day " * 5_000_000) + "\n")  # one 50 MB line
    return [*module("src.predict", "--model", "models/bert", "--input", "huge.txt"), "--batch-size", "1"]


def _predict_lines(*lines: str) -> Callable[[Path, Path], list[str]]:
    """src.predict on a file of ``lines`` (texts whose transforms grow them or cost more per character)."""

    def setup(repo: Path, canary: Path) -> list[str]:
        (repo / "texts.txt").write_text("".join(line + "\n" for line in lines))
        return [*module("src.predict", "--model", "models/bert", "--input", "texts.txt"), "--batch-size", "1"]

    return setup


def _alias_bomb(repo: Path, canary: Path) -> list[str]:
    """A "billion laughs": 12 levels of 9 aliases (9**12 values once expanded) in 5 KB, used by data.files."""
    levels = ['"a0": &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f'"a{i}": &a{i} [' + ",".join([f"*a{i - 1} "] * 9) + "]" for i in range(1, 12)]
    text = (repo / "params.yaml").read_text()
    text = text.replace("{", '{"x_laughs": {' + ", ".join(levels) + "},", 1)
    (repo / "params.yaml").write_text(text.replace('"files": [', '"files": *a11 , "x_files": [', 1))
    return module("src.launch", "stages.train_bert")


def _list_for_a_string(count: int) -> Callable[[Path, Path], list[str]]:
    def setup(repo: Path, canary: Path) -> list[str]:
        set_params(repo, model_name=["abcdefgh"] * count)
        return module("stages.train_bert")

    return setup


def _tune_work_directory(repo: Path) -> Path:
    """The directory the tune stage searches in for the repository's params, data and code (.resume/tune/...)."""
    code = (
        "from src.core.params import load_params; from stages.tune import _search_inputs, work_directory; "
        "print(work_directory(_search_inputs(load_params())[3])[0])"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=repo, env=run_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return repo / result.stdout.strip().splitlines()[-1]


def _cut_journal_line(repo: Path, canary: Path) -> list[str]:
    """A journal whose second record was cut short by a kill, with a whole record after it."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    journal = _tune_work_directory(repo) / "optuna_journal.log"  # where a killed search left it
    journal.parent.mkdir(parents=True)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    optuna.create_study(study_name="other", storage=storage).enqueue_trial({"x": 1})
    optuna.create_study(study_name="third", storage=storage)  # a whole record after the cut one
    lines = journal.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 3
    journal.write_bytes(lines[0] + lines[1][: len(lines[1]) // 2] + b"\n" + b"".join(lines[2:]))
    return module("stages.tune")


def _part_from_another_url(repo: Path, canary: Path) -> list[str]:
    """data/raw/file.bin.part: 60,000 bytes that came from another server (URL A)."""
    (repo / "data/raw").mkdir(parents=True)
    (repo / "data/raw/file.bin.part").write_bytes(b"A" * 60_000)
    (repo / "data/raw/file.bin.part.source").write_text(json.dumps({"url": "http://a.invalid/file.bin"}))
    return module("stages.download_data")


def _bom_csv(repo: Path, canary: Path) -> list[str]:
    rows = [(t, LABELS[y]) for split in tiny_splits().values() for t, y in split]
    (repo / "own.csv").write_bytes(b"\xef\xbb\xbftext,label\n" + "".join(f"{t},{y}\n" for t, y in rows).encode())
    set_params(repo, **{"data.input": "own.csv"})
    return module("stages.preprocess")


def _relative_mirror(repo: Path, canary: Path) -> list[str]:
    from tests.fixtures import write_mirror

    write_mirror(repo / "mirror")  # inside the repository: ../repo/mirror is relative, with '..'
    return module("stages.download_data")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- class 2, links: a committed symbolic link out of the repository, on the way to a declared path ----
def _commit(repo: Path) -> None:
    """The link is committed, as a clone would have it."""
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "link"]):
        subprocess.run(cmd, cwd=repo, env=run_env(), check=True, capture_output=True)


def _link_to_canary(link: str, command: list[str], *files: str) -> Callable[[Path, Path], list[str]]:
    """``link`` (repo-relative) a committed link to canary/<its name>, a directory holding ``files``
    (what the stage would write or delete there), then ``command``."""

    def setup(repo: Path, canary: Path) -> list[str]:
        target = canary / Path(link).name
        target.mkdir()
        for name in files:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_text("outside the repository\n")
        path = repo / link
        if path.is_dir() and not path.is_symlink():
            shutil.copytree(path, target, dirs_exist_ok=True)
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target, target_is_directory=True)
        _commit(repo)
        return command

    return setup


def _with_local_remote(repo: Path) -> None:
    """A default DVC remote in a directory of the repository (src.pull checks it exists)."""
    (repo / "remote_store").mkdir()
    command = [sys.executable, "-m", "dvc", "remote", "add", "-d", "storage", str(repo / "remote_store")]
    subprocess.run(command, cwd=repo, env=run_env(), check=True, capture_output=True)


def _link_error(link: str, action: str) -> tuple[str, ...]:
    return (f"error: {link}: a symbolic link to ", ", outside ", f"; refusing to {action}")


OUTSIDE = "is outside models/tune, the stage's output; refusing to read or write there"
TRACEBACK = {
    "bad_param_train_bert": Row(
        _params_then(dvc_repro("train_bert"), learning_rate=-1),
        ("params.yaml is invalid", "learning_rate = -1: expected a value > 0"),
    ),
    "bad_param_train_lstm": Row(
        _params_then(dvc_repro("train_lstm"), lstm__learning_rate=-1),
        ("lstm.learning_rate = -1: expected a value > 0",),
    ),
    "rank_failure_names_the_file": Row(
        lambda repo, canary: ((repo / "data/processed/val.jsonl").write_text('{"text": 1\n'), dvc_repro("train_bert"))[
            1
        ],
        ("data/processed/val.jsonl:1: expected a JSON object with 'text' and 'label'",),
    ),
}
CONTAINMENT = {
    "sqlite_absolute_elsewhere": Row(_tune_storage(lambda repo, canary: f"sqlite:///{canary}/x.db"), (OUTSIDE,)),
    "sqlite_parent_relative": Row(_tune_storage(lambda repo, canary: "sqlite:///../x.db"), (OUTSIDE,)),
    "sqlite_dotdot_inside_path": Row(
        _tune_storage(lambda repo, canary: "sqlite:///models/tune/../../x.db"), (OUTSIDE,)
    ),
    "sqlite_driver_form": Row(_tune_storage(lambda repo, canary: f"sqlite+pysqlite:///{canary}/x.db"), (OUTSIDE,)),
    "sqlite_uri_form": Row(
        _tune_storage(lambda repo, canary: f"sqlite:///file:{canary}/x.db?uri=true"),
        ("an in-memory or URI-named SQLite database",),
    ),
    "not_a_database_url": Row(
        _tune_storage(lambda repo, canary: f"file://{canary}/x.db"), ("a 'file' database is not supported",)
    ),
    "sqlite_file_linked_out": Row(_linked_db, ("through a symbolic link", OUTSIDE)),
    "journal_linked_out": Row(_symlink_journal, ("the Optuna journal", "through a symbolic link", OUTSIDE)),
    "tune_best_config_linked_out": Row(
        _tune_best_linked_out, ("models/tune/config_7: a symbolic link to", "refusing to read a model from there")
    ),
    "bert_config_linked_out": Row(
        _file_linked_out("model/config.json"), ("models/bert/model/config.json: a symbolic link to",)
    ),
    "bert_weights_linked_out": Row(
        _file_linked_out("model/model.safetensors"), ("models/bert/model/model.safetensors: a symbolic link to",)
    ),
    # class 2, links: checked by where they resolve (src/core/containment.py), before the stage does any work
    "plots_dir_linked_out": Row(
        _link_to_canary("plots", module("stages.evaluate", "bert"), "confusion/bert.csv", "reliability/bert.json"),
        _link_error("plots", "write or delete evaluate's output there"),
    ),
    # `dvc repro` removes a stage's outputs before running it, through a linked directory too: `make repro`
    # and `make quick` check every stage's paths first (the stage itself would refuse only after that)
    "plots_dir_linked_out_before_dvc_repro": Row(
        _link_to_canary("plots", module("src.core.containment"), "confusion/bert.csv"),
        _link_error("plots", "write or delete evaluate@bert's output there"),
    ),
    "pull_into_a_metrics_dir_linked_out": Row(
        lambda repo, canary: (
            _with_local_remote(repo),
            _link_to_canary("metrics", module("src.pull"), "data.json")(repo, canary),
        )[1],
        _link_error("metrics", "check out or delete preprocess's output there"),
    ),
    "metrics_dir_linked_out": Row(
        _link_to_canary("metrics/tfidf", module("stages.train_tfidf"), "train.json"),
        _link_error("metrics/tfidf", "write or delete train_tfidf's output there"),
    ),
    "model_dir_linked_out": Row(
        _link_to_canary("models/tfidf", dvc_repro("train_tfidf"), "model.json"),
        _link_error("models/tfidf", "write or delete train_tfidf's output there"),
    ),
    "models_dir_linked_out": Row(
        _link_to_canary("models", module("stages.evaluate", "bert"), "bert/elsewhere.txt"),
        _link_error("models", "read evaluate's input from there"),
    ),
    "data_input_linked_out": Row(
        _link_to_canary("data/raw", dvc_repro("preprocess"), "train_text.txt"),
        _link_error("data/raw", "read preprocess's input from there"),
    ),
    "data_input_param_through_a_link": Row(
        lambda repo, canary: (
            _link_to_canary("shared", [], "own.csv")(repo, canary),
            _params_then(module("stages.preprocess"), data__input="shared/own.csv")(repo, canary),
        )[1],
        _link_error("shared", "read preprocess's input from there"),
    ),
    "artifact_store_root": Row(
        _params_then(module("stages.tune"), tune__artifact_store="/"),
        ("tune.artifact_store = '/': a file system root or top-level directory; refusing to write",),
    ),
    "artifact_store_system_dir": Row(
        _params_then(module("stages.tune"), tune__artifact_store="/etc/tune"),
        ("tune.artifact_store = '/etc/tune': inside /etc, a system directory",),
    ),
}
LOST_DATA = {
    "part_from_another_url_is_discarded": Row(
        None, ("discarding this partial download: it came from http://a.invalid/file.bin",), rc=0
    ),
}
MEMORY = {
    "predict_bert_one_50mb_line": Row(_one_huge_line, ('"label"',), rc=0, max_mb=1500),
    "model_config_json_440mb": Row(
        _oversized_model_file("model/config.json", 440 << 20),
        ("models/bert/model/config.json: 440 MB; expected at most 64 MB",),
        max_mb=900,
    ),
    "tokenizer_json_100mb": Row(
        _oversized_model_file("model/tokenizer.json", 100 << 20),
        ("models/bert/model/tokenizer.json: 100 MB",),
        max_mb=900,
    ),
    "params_alias_bomb": Row(_alias_bomb, ("x_laughs.a11: YAML aliases expand it to",), max_mb=300),
    "params_5mb_list_for_a_string": Row(_list_for_a_string(600_000), ("params.yaml: larger than 256 KB",), max_mb=400),
    "params_200kb_list_for_a_string": Row(
        _list_for_a_string(15_000), ("model_name = ['abcdefgh', ", "(15,000 items)]: expected type string"), max_mb=400
    ),
}
RUNAWAY = {
    "nproc_per_node_64": Row(
        _params_then(dvc_repro("train_lstm"), distributed__nproc_per_node=64),
        ("distributed.nproc_per_node = 64: this machine has",),
        seconds=120,
    ),
    "nnodes_64_on_a_free_port": Row(
        _params_then(dvc_repro("train_bert"), distributed__nnodes=64),
        ("distributed.nnodes = 64 with distributed.rdzv_endpoint = localhost:0",),
        seconds=120,
    ),
}
# rows that run a whole (tiny) tune or wait for a rendezvous timeout: ~20-60 s each
SLOW = {
    "journal_line_cut_in_the_middle": Row(_cut_journal_line, ("optuna_journal.log:2: not a whole JSON record",), rc=0),
    "tune_workers_1000": Row(
        _params_then(module("stages.tune"), tune__workers=1000),
        ("tune.workers = 1000: running 1 worker(s)",),
        rc=0,
        seconds=300,
    ),
    "rendezvous_nobody_joins": Row(
        _params_then(
            module("src.launch", "stages.train_lstm"),
            distributed__nnodes=2,
            # a port free now: a fixed one may be another run's rendezvous on a shared machine
            distributed__rdzv_endpoint=lambda repo, canary: f"localhost:{_free_port()}",
        ),
        ("the rendezvous of 2 machine(s) did not complete within distributed.timeout_s = 10 s",),
        seconds=120,
    ),
}
UNCLEAR = {
    "csv_header_with_byte_order_mark": Row(_bom_csv, (), rc=0),
    "relative_mirror_path": Row(_relative_mirror, (), rc=0, env={"SENTIMENT_MIRROR": "../repo/mirror"}),
}
# ---- probabilities: what the evaluate stages write, read as probabilities by the ensemble and evaluate ----
# the models params.yaml's ensemble.members combine ("bert+bert_seed43" is two)
MEMBERS = tuple(models_of(load_params(REPO / "params.yaml")["ensemble"]["members"]))


def _probability_rows(n: int, seed: int) -> list[list[float]]:
    import numpy as np

    rows = np.random.default_rng(seed).dirichlet([1.0, 1.0, 1.0], size=n)
    return rows.tolist()


def _members_then(damage: Callable[[Path, Path], None], command: list[str]) -> Callable[[Path, Path], list[str]]:
    """Every member's probs_{val,test}.csv written as evaluate writes them, then ``damage(repo, canary)``."""

    def setup(repo: Path, canary: Path) -> list[str]:
        from src.scoring.probabilities import write_probabilities

        for i, member in enumerate(MEMBERS):
            for split in ("val", "test"):
                write_probabilities(repo / f"predictions/{member}/probs_{split}.csv", _probability_rows(12, i), LABELS)
        damage(repo, canary)
        return command

    return setup


def _row_of(member: str, text: str, line: int = 2) -> Callable[[Path, Path], None]:
    """Line ``line`` of ``member``'s probs_val.csv replaced by ``text``."""

    def damage(repo: Path, canary: Path) -> None:
        path = repo / f"predictions/{member}/probs_val.csv"
        lines = path.read_text().splitlines()
        lines[line - 1] = text
        path.write_text("\n".join(lines) + "\n")

    return damage


def _whole_file(member: str, write: Callable[[Path], None]) -> Callable[[Path, Path], None]:
    return lambda repo, canary: write(repo / f"predictions/{member}/probs_val.csv")


def _linked_out(repo: Path, canary: Path) -> None:
    path = repo / "predictions/lstm/probs_test.csv"
    shutil.copy(path, canary / "probs_test.csv")
    path.unlink()
    path.symlink_to(canary / "probs_test.csv")


def _sparse(size: int) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with open(path, "r+b") as handle:
            handle.truncate(size)  # the size a reader would be asked to read, without the disk

    return write


def _ensemble_output_damaged(repo: Path, canary: Path) -> list[str]:
    """models/ensemble as the ensemble stage writes it, but with rows of zeros in its test file."""
    from src.scoring.probabilities import write_probabilities

    for split in ("val", "test"):
        rows = _probability_rows(12, 7) if split == "val" else [[0.0, 0.0, 0.0]] * 12
        write_probabilities(repo / f"models/ensemble/probs_{split}.csv", rows, LABELS)
    (repo / "models/ensemble/ensemble.json").write_text("{}")
    return module("stages.evaluate", "ensemble")


ENSEMBLE = module("stages.ensemble")
SUM = "probabilities sum to {}; expected 1 (within 0.0001)"
PROBABILITIES = {
    "rows_of_zeros": Row(
        _members_then(_row_of("lstm", "0,0,0"), ENSEMBLE), ("lstm/probs_val.csv:2: " + SUM.format(0),), outputs=()
    ),
    "rows_of_ones": Row(
        _members_then(_row_of("bert", "1,1,1", 13), ENSEMBLE), ("bert/probs_val.csv:13: " + SUM.format(3),), outputs=()
    ),
    "nan": Row(
        _members_then(_row_of("tune_best", "nan,0.5,0.5"), ENSEMBLE),
        ("tune_best/probs_val.csv:2: expected 3 probabilities between 0 and 1",),
        outputs=(),
    ),
    "infinity": Row(
        _members_then(_row_of("lstm", "inf,-inf,1"), ENSEMBLE),
        ("lstm/probs_val.csv:2: expected 3 probabilities between 0 and 1",),
        outputs=(),
    ),
    "negative_and_above_one": Row(
        _members_then(_row_of("lstm", "-0.5,1.5,0"), ENSEMBLE),
        ("lstm/probs_val.csv:2: expected 3 probabilities between 0 and 1",),
        outputs=(),
    ),
    "header_names_a_class_twice": Row(
        _members_then(_row_of("lstm", "negative,negative,positive", 1), ENSEMBLE),
        ("lstm/probs_val.csv: header ['negative', 'negative', 'positive']: expected the classes",),
        outputs=(),
    ),
    "linked_out_of_the_repository": Row(
        _members_then(_linked_out, ENSEMBLE),
        ("predictions/lstm/probs_test.csv: a symbolic link to", "refusing to read probabilities from there"),
        outputs=(),
    ),
    "evaluate_ensemble_reads_rows_of_zeros": Row(
        _ensemble_output_damaged, ("models/ensemble/probs_test.csv:2: " + SUM.format(0),), outputs=()
    ),
}
# rows where the point is memory or time: the reader must stop early or stay linear
PROBABILITIES_MEMORY = {
    "probabilities_file_1gb": Row(
        _members_then(_whole_file("bert", _sparse(1 << 30)), ENSEMBLE),
        ("predictions/bert/probs_val.csv: larger than 64 MB",),
        max_mb=600,
        outputs=(),
    ),
    "probabilities_header_of_a_million_columns": Row(
        _members_then(
            _whole_file("bert", lambda path: path.write_text(",".join(f"c{i}" for i in range(1_000_000)) + "\n")),
            ENSEMBLE,
        ),
        ("bert/probs_val.csv: header ['c0', 'c1', ", "(1,000,000 columns): expected the classes"),
        max_mb=700,
        seconds=90,
        outputs=(),
    ),
    "probabilities_one_quoted_field_of_10mb": Row(
        _members_then(
            _whole_file("bert", lambda path: path.write_text('negative,neutral,positive\n"' + "0" * 10_000_000)),
            ENSEMBLE,
        ),
        ("bert/probs_val.csv:", "not valid CSV (field larger than field limit (131072))"),
        max_mb=700,
        outputs=(),
    ),
}


# ---- all or nothing: a stage's set of outputs, on a full disk -------------------------------------------
# Runs the stage's module as `python -m` does, with os.fsync failing like a full disk from its Nth call on
FULL_DISK = (
    "import errno, os, runpy, sys\n"
    "calls, fails_at, real_fsync = [0], int(sys.argv[1]), os.fsync\n"
    "def fsync(fd):\n"
    "    calls[0] += 1\n"
    "    if calls[0] >= fails_at:\n"
    "        raise OSError(errno.ENOSPC, 'No space left on device')\n"
    "    real_fsync(fd)\n"
    "os.fsync = fsync\n"
    "sys.argv = sys.argv[2:]\n"
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
)


def _previous_set(paths: dict[str, str]) -> Callable[[Path], None]:
    def write(repo: Path) -> None:
        for relative, text in paths.items():
            (repo / relative).parent.mkdir(parents=True, exist_ok=True)
            (repo / relative).write_text(text)

    return write


def _disk_full_at(n: int, previous: dict[str, str], stage: list[str], members: bool = False):
    def setup(repo: Path, canary: Path) -> list[str]:
        if members:
            _members_then(lambda r, c: None, [])(repo, canary)
        _previous_set(previous)(repo)
        return [sys.executable, "-c", FULL_DISK, str(n), *stage]

    return setup


PREVIOUS_ENSEMBLE = {f"models/ensemble/{name}": f"previous {name}\n" for name in ("ensemble.json", "probs_val.csv")}
PREVIOUS_EVALUATE = {
    "metrics/majority/test.json": "previous\n",
    "predictions/majority/test.txt": "previous\n",
    "predictions/majority/probs_test.csv": "previous\n",
    "plots/confusion/majority.csv": "previous\n",
}
INTACT = "no space left on device while writing the new set; the previous outputs are intact"
ALL_OR_NOTHING = (
    {
        f"ensemble_disk_full_at_file_{n}": Row(
            _disk_full_at(n, PREVIOUS_ENSEMBLE, ["stages.ensemble"], members=True),
            (f"error: models/ensemble: {INTACT}",),
            outputs=(),
        )
        for n in (1, 2, 3)
    }
    | {
        f"evaluate_disk_full_at_file_{n}": Row(
            _disk_full_at(n, PREVIOUS_EVALUATE, ["stages.evaluate", "majority"]),
            (f"predictions/majority, plots/confusion/majority.csv, plots/reliability/majority.json: {INTACT}",),
            outputs=(),
        )
        for n in (1, 3, 6)
    }
    | {
        "evaluate_disk_full_first_run": Row(
            _disk_full_at(3, {}, ["stages.evaluate", "majority"]),
            ("no space left on device while writing the new set; nothing was written",),
            outputs=(),
        ),
    }
)


# ---- readers: linear time and bounded memory ---------------------------------------------------------
def _own_csv(text_of: Callable[[], str]) -> Callable[[Path, Path], list[str]]:
    def setup(repo: Path, canary: Path) -> list[str]:
        (repo / "own.csv").write_text(text_of())
        set_params(repo, **{"data.input": "own.csv"})
        return module("stages.preprocess")

    return setup


def _lines_file(count: int) -> Callable[[Path, Path], list[str]]:
    def setup(repo: Path, canary: Path) -> list[str]:
        (repo / "many.txt").write_text("good day\n" * count)
        predict = " ".join(
            module("src.predict", "--model", "models/bert", "--input", "many.txt", "--batch-size", "512")
        )
        return ["bash", "-c", f"{predict} > results.jsonl"]

    return setup


def _stdin_without_newline(megabytes: int) -> Callable[[Path, Path], list[str]]:
    def setup(repo: Path, canary: Path) -> list[str]:
        predict = " ".join(module("src.predict", "--model", "models/bert", "--input", "-"))
        return ["bash", "-c", f"head -c {megabytes}000000 /dev/zero | tr '\\0' x | {predict} > results.jsonl"]

    return setup


READERS = {
    "csv_header_of_a_million_columns": Row(
        _own_csv(lambda: ",".join(f"c{i}" for i in range(1_000_000)) + "\nhello,0\n"),
        ("own.csv:1: missing column(s) text, label (header has: c0, c1, ", "(1,000,000 in all)"),
        max_mb=900,
        seconds=90,
        outputs=(),
    ),
    "csv_header_of_a_million_columns_with_the_two": Row(
        _own_csv(lambda: ",".join(f"c{i}" for i in range(1_000_000)) + ",text,label\nhello,0\n"),
        ("own.csv:2: row has 2 fields but the header has 1000002",),
        max_mb=900,
        seconds=90,
        outputs=(),
    ),
    "csv_one_quoted_field_of_20mb": Row(
        _own_csv(lambda: 'text,label\n"' + "x" * 20_000_000 + "\n"),
        ("own.csv:2: a field longer than 131,072 characters, the limit of a CSV field",),
        max_mb=700,
        outputs=(),
    ),
    "predict_stdin_one_line_of_300mb_without_newline": Row(
        _stdin_without_newline(300),
        ("<stdin>:1: longer than 64 MB without a newline (the limit of a line)",),
        max_mb=1000,
        outputs=("results.jsonl",),
    ),
}
# predict's memory must not grow with the number of lines (it held 1.7 KB per line)
READERS_SLOW = {
    "predict_300k_lines": Row(_lines_file(300_000), (), rc=0, max_mb=700, seconds=600),
}
SLOW |= READERS_SLOW


# ---- the launcher -----------------------------------------------------------------------------------
HELD_SOCKETS: list = []  # ports another program holds during a row; closed by the test


def _launch_script(code: str, **changes) -> Callable[[Path, Path], list[str]]:
    def setup(repo: Path, canary: Path) -> list[str]:
        (repo / "job.py").write_text(code)
        set_params(repo, **{k.replace("__", "."): v for k, v in changes.items()})
        return module("src.launch", "job.py")

    return setup


def _busy_port(nnodes: int) -> Callable[[Path, Path], list[str]]:
    def setup(repo: Path, canary: Path) -> list[str]:
        import socket

        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        held.listen()
        HELD_SOCKETS.append(held)
        port = held.getsockname()[1]
        set_params(repo, **{"distributed.rdzv_endpoint": f"localhost:{port}", "distributed.nnodes": nnodes})
        return module("src.launch", "stages.train_lstm")

    return setup


LAUNCHER = {
    "rendezvous_port_held_by_another_program": Row(
        _busy_port(1), ("is in use by another program on this machine",), seconds=60, outputs=()
    ),
    "rendezvous_port_held_two_machines": Row(
        _busy_port(2), ("is in use by another program on this machine",), seconds=60, outputs=()
    ),
    # TMPDIR is outside the repository: torchrun's torchelastic_* directory would show there
    "no_torchrun_leftovers_after_success": Row(
        _launch_script("print('job done')\n"), ("job done",), rc=0, seconds=120, outputs=("job.py",)
    ),
    "no_torchrun_leftovers_after_failure": Row(
        _launch_script("import sys\nprint('error: the job failed', file=sys.stderr)\nsys.exit(1)\n"),
        ("error: the job failed",),
        seconds=120,
        outputs=("job.py",),
    ),
}


# ---- the review: the base revision and the workspace are untrusted input --------------------------------
def _review_state(repo: Path, metric: object = 0.5, confusion: str | None = None, curves: str | None = None) -> None:
    """What evaluate leaves for bert: predictions, probabilities, the test figures, the confusion plot."""
    from src.scoring.probabilities import write_probabilities

    labels = [json.loads(line)["label"] for line in (repo / "data/processed/test.jsonl").read_text().splitlines()]
    (repo / "predictions/bert").mkdir(parents=True, exist_ok=True)
    (repo / "predictions/bert/test.txt").write_text("".join(f"{(y + i % 2) % 3}\n" for i, y in enumerate(labels)))
    write_probabilities(repo / "predictions/bert/probs_test.csv", _probability_rows(len(labels), 1), LABELS)
    (repo / "metrics/bert").mkdir(parents=True, exist_ok=True)
    (repo / "metrics/bert/test.json").write_text(json.dumps({"macro_recall": metric, "accuracy": 0.5, "n": 12}))
    (repo / "plots/confusion").mkdir(parents=True, exist_ok=True)
    (repo / "plots/confusion/bert.csv").write_text(
        confusion
        or "actual,predicted\n" + "".join(f"{LABELS[y]},{LABELS[(y + i % 2) % 3]}\n" for i, y in enumerate(labels))
    )
    if curves is not None:
        (repo / "dvclive/train_bert/plots/metrics/val").mkdir(parents=True, exist_ok=True)
        (repo / "dvclive/train_bert/plots/metrics/val/loss.tsv").write_text(curves)


def _commit(repo: Path) -> None:
    for args in (["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


REVIEW = module("src.review", "--base", "HEAD", "--out", "review")


def _review_base(**damage) -> Callable[[Path, Path], list[str]]:
    """A base commit with damaged bert files, a sound workspace."""

    def setup(repo: Path, canary: Path) -> list[str]:
        _review_state(repo, **damage)
        _commit(repo)
        _review_state(repo, metric=0.6, curves="step\tloss\n1\t0.5\n")
        return REVIEW

    return setup


def _review_committed_manifest(repo: Path, canary: Path) -> list[str]:
    import hashlib

    _review_state(repo)
    (repo / "review").mkdir()
    (repo / "review/keep.txt").write_text("tracked")
    (repo / "review/.review-files.json").write_text(json.dumps({"keep.txt": hashlib.sha256(b"tracked").hexdigest()}))
    subprocess.run(["git", "add", "-f", "review"], cwd=repo, check=True, capture_output=True)  # .gitignore has it
    _commit(repo)
    return REVIEW


def _review_out_linked(repo: Path, canary: Path) -> list[str]:
    _review_state(repo)
    (canary / "elsewhere").mkdir()
    (repo / "review").symlink_to(canary / "elsewhere")
    _commit(repo)
    return REVIEW


def _review_huge_probabilities(repo: Path, canary: Path) -> list[str]:
    _review_state(repo)
    _commit(repo)
    with open(repo / "predictions/bert/probs_test.csv", "r+b") as handle:
        handle.truncate(1 << 30)
    return REVIEW


def _review_out_not_writable(repo: Path, canary: Path) -> list[str]:
    _review_state(repo)
    _commit(repo)
    return module("src.review", "--base", "HEAD", "--out", "params.yaml/review")  # a file where a folder must go


def _review_base_probabilities(text: str) -> Callable[[Path, Path], list[str]]:
    """A base commit whose bert probabilities are damaged, a workspace whose bert changed."""

    def setup(repo: Path, canary: Path) -> list[str]:
        _review_state(repo)
        (repo / "predictions/bert/probs_test.csv").write_text(text)
        _commit(repo)
        _review_state(repo, metric=0.6)
        (repo / "predictions/bert/test.txt").write_text("0\n" * 12)
        return REVIEW

    return setup


def _review_zero_probabilities(repo: Path, canary: Path) -> list[str]:
    from src.scoring.probabilities import write_probabilities

    _review_state(repo)
    _commit(repo)
    write_probabilities(repo / "predictions/bert/probs_test.csv", [[0.0, 0.0, 0.0]] * 12, LABELS)
    return REVIEW


REVIEW_ROWS = {
    "committed_manifest_names_a_tracked_file": Row(_review_committed_manifest, ("review/report.md",), rc=0),
    "out_is_a_committed_link_out_of_the_repository": Row(
        _review_out_linked, ("--out review: a symbolic link to", "outside the repository; refusing to write there")
    ),
    "workspace_probabilities_of_1gb": Row(_review_huge_probabilities, ("review/report.md",), rc=0, max_mb=900),
    "base_metric_is_a_string": Row(_review_base(metric="high"), ("review/report.md",), rc=0),
    "base_confusion_has_an_unknown_label": Row(
        _review_base(confusion="actual,predicted\nnegative,sarcastic\n"), ("review/report.md",), rc=0
    ),
    "base_curve_is_not_a_table": Row(_review_base(curves="\x00\x01 not a tsv"), ("review/report.md",), rc=0),
    "base_curve_step_is_a_float": Row(
        _review_base(curves="step\tloss\n1.5\t0.5\nx\t1e999\n"), ("review/report.md",), rc=0
    ),
    "workspace_probabilities_of_zeros": Row(_review_zero_probabilities, ("review/report.md",), rc=0),
    "out_is_not_writable": Row(_review_out_not_writable, ("--out params.yaml/review",)),
    "base_probabilities_are_not_probabilities": Row(
        _review_base_probabilities("negative,neutral,positive\n" + "0.9,0.9,0.9\n" * 12), ("review/report.md",), rc=0
    ),
    "base_probabilities_of_another_length": Row(
        _review_base_probabilities("negative,neutral,positive\n" + "0.2,0.3,0.5\n" * 5), ("review/report.md",), rc=0
    ),
}
# what the report says of the damaged base file: a note, not silence
REVIEW_NOTES = {
    "base_curve_is_not_a_table": "Note: base: dvclive/train_bert/plots/metrics/val/loss.tsv is not DVCLive's "
    "tab-separated rows; no val/loss curve for bert",
    "base_curve_step_is_a_float": "Note: base: dvclive/train_bert/plots/metrics/val/loss.tsv is not DVCLive's",
    "base_metric_is_a_string": "bert",
    "base_probabilities_are_not_probabilities": "Note: base: predictions/bert/probs_test.csv:2: probabilities sum "
    "to 2.7; expected 1",
    "base_probabilities_of_another_length": "Note: base: predictions/bert/probs_test.csv has 5 rows for 12 test "
    "tweets; not compared",
}


# class 1: a URL's password in params (tune.storage) reaches no error line, log line or file (src/core/secrets.py)
PASSWORD = "S3cretPw0rd"
SECRETS = {
    "sqlite_url_with_password_outside": Row(
        _tune_storage(lambda repo, canary: f"sqlite://u:{PASSWORD}@/{canary}/x.db"),
        ("u:***@", "refusing to read or write there"),
        seconds=30,
    ),
    "server_url_with_password_unreachable": Row(
        _tune_storage(lambda repo, canary: f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1:1/optuna"),
        ("tune.storage: cannot open the database",),
        seconds=30,
    ),
    "server_url_with_password_no_driver": Row(
        _tune_storage(lambda repo, canary: f"mysql+nosuchdriver://u:{PASSWORD}@127.0.0.1:1/optuna"),
        ("tune.storage",),
        seconds=30,
    ),
}


# class 3: each text cut to src.data.preprocess.MAX_TEXT_CHARS before NFC and after emoji became names
COST = {
    "predict_emoji_lines_grow_30x": Row(
        _predict_lines(*["\U0001f602" * 60_000] * 4),
        ('"label"',),
        rc=0,
        max_mb=1000,
        seconds=30,  # ~5 s alone, most of it imports
    ),
    "predict_combining_marks_run": Row(
        _predict_lines("a" + "\u0301" * 60_000),
        ('"label"',),
        rc=0,
        max_mb=1000,
        seconds=30,  # ~5 s alone, most of it imports
    ),
    "predict_numeric_entities_to_emoji": Row(
        _predict_lines("&#128514;" * 7_000),
        ('"label"',),
        rc=0,
        max_mb=1000,
        seconds=30,  # ~5 s alone, most of it imports
    ),
    "ensemble_8_members_grid": Row(
        _params_then(
            module("stages.ensemble"),
            ensemble__members=["bert", "tune_best", "lstm", "tfidf", *(f"bert_seed{n}" for n in range(43, 47))],
        ),
        ("ensemble.members (8 members) with ensemble.grid_step = 0.05: a weight grid of 888,030 points",),
        max_mb=1000,
        seconds=10,
    ),
}


# class 5: values typed but not bounded for what later code assumes. A train_tfidf model is read from
# its arrays' headers first (shape, dtype, declared size; src/models/tfidf.py check_array_headers),
# then checked finite; the engine stops on a NaN or infinite loss (tests below, through the guide's API)
def _tfidf_model(damage: Callable[[dict], dict] | None = None, bomb_bytes: int = 0):
    """models/tfidf trained on the tiny splits, its model.npz rewritten by ``damage(arrays)`` or, with
    ``bomb_bytes``, its coef replaced by that many zero bytes (deflated to ~1/1000)."""
    import zipfile

    import numpy as np

    from src.models import tfidf

    def setup(repo: Path, canary: Path) -> list[str]:
        params = json.loads((repo / "params.yaml").read_text())["tfidf"]
        rows = tiny_splits()["train"]
        model = tfidf.fit([normalize_tweet(t) for t, _ in rows], [y for _, y in rows], params)
        tfidf.save(model, repo / "models/tfidf", list(LABELS), params)
        path = repo / "models/tfidf" / tfidf.MODEL_FILE
        with np.load(path) as npz:
            arrays = dict(npz)
        if damage is not None:
            np.savez_compressed(path, **damage(arrays))
        if bomb_bytes:
            del arrays["coef"]
            np.savez_compressed(path, **arrays)
            with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
                with archive.open("coef.npy", "w", force_zip64=True) as member:
                    rows = bomb_bytes // (8 * 3)
                    np.lib.format.write_array_header_1_0(
                        member, {"descr": "<f8", "fortran_order": False, "shape": (3, rows)}
                    )
                    zeros = bytes(8 << 20)
                    for _ in range(bomb_bytes // len(zeros)):
                        member.write(zeros)
        return module("stages.evaluate", "tfidf")

    return setup


def _with(name: str, value_of: Callable) -> Callable[[dict], dict]:
    return lambda arrays: {**arrays, name: value_of(arrays[name])}


BOUNDS = {
    "predict_argument_not_utf8": Row(
        lambda repo, canary: module("src.predict", "--model", "models/bert", "good \udcff day"),  # byte 0xff
        ('"text": "good \ufffd day"',),
        rc=0,
        seconds=30,
    ),
    "tfidf_coef_nan": Row(
        _tfidf_model(_with("coef", lambda a: a * float("nan"))),
        ("models/tfidf/model.npz: not a train_tfidf model", "coef holds NaN or infinite values"),
    ),
    "tfidf_idf_infinite": Row(
        _tfidf_model(_with("word_idf", lambda a: a * float("inf"))),
        ("word_idf holds NaN or infinite values",),
    ),
    "tfidf_terms_numbers": Row(
        _tfidf_model(_with("word_terms", lambda a: __import__("numpy").arange(len(a)))),
        ("word_terms: int64 of shape", "expected a list of strings"),
    ),
    "tfidf_coef_wrong_shape": Row(
        _tfidf_model(_with("coef", lambda a: a[:, :-1])),
        ("coef: float32 of shape", "expected floats of shape"),
    ),
    "tfidf_coef_600mb_of_zeros": Row(
        _tfidf_model(bomb_bytes=600 << 20),
        ("its arrays declare", "more than 536,870,912"),
        max_mb=1000,
        seconds=30,  # the row writes 600 MB into the archive before; reading it is refused before any inflating
    ),
}


# class 4: what a parser or library raises, as one error line: a journal Optuna cannot replay, weights
# torch refuses to unpickle, DVC's own exceptions (src.core.cli: "error: DVC: ...")
def _journal_with(*records: dict) -> Callable[[Path, Path], list[str]]:
    """The search's journal (where a killed search leaves it): one study, then ``records``."""

    def setup(repo: Path, canary: Path) -> list[str]:
        import optuna
        from optuna.storages.journal import JournalFileBackend

        journal = _tune_work_directory(repo) / "optuna_journal.log"
        journal.parent.mkdir(parents=True)
        optuna.create_study(
            study_name="other", storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
        )
        with open(journal, "a") as handle:
            handle.writelines(json.dumps(record) + "\n" for record in records)
        return module("stages.tune")

    return setup


def _pickled_weights(repo: Path, canary: Path) -> list[str]:
    """model_name: a local model whose pytorch_model.bin unpickles to code (it would touch the canary)."""
    import torch

    directory = write_tiny_bert(repo / "pickled-bert")
    for weights in directory.glob("*.safetensors"):
        weights.unlink()
    torch.save({"weights": _RunsCode(str(canary / "ran"))}, directory / "pytorch_model.bin")
    set_params(repo, model_name="pickled-bert")
    return module("stages.train_bert")


class _RunsCode:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _dvc_config_local(text: str) -> Callable[[Path, Path], list[str]]:
    def setup(repo: Path, canary: Path) -> list[str]:
        (repo / ".dvc/config.local").write_text(text)
        return module("src.pull")

    return setup


def _http_remote(repo: Path, canary: Path) -> list[str]:
    """The default remote: an HTTP server with a password, on a port nothing listens on."""
    (repo / ".dvc/config").write_text(
        f"[core]\n    remote = team\n['remote \"team\"']\n    url = http://u:{PASSWORD}@127.0.0.1:{_free_port()}/dvc\n"
    )
    return module("src.pull")


PARSERS = {
    "pull_from_an_unreachable_http_remote": Row(
        _http_remote, ("remote 'team' (http://u:***@127.0.0.1:", "cannot reach it", "nothing was pulled")
    ),
    "journal_unknown_operation": Row(
        _journal_with({"op_code": 99, "worker_id": "w"}),
        ("optuna_journal.log:2: not an Optuna journal record (op_code 99)", "delete it to start the search over"),
        seconds=60,
    ),
    "journal_record_without_its_fields": Row(
        _journal_with({"op_code": 4, "worker_id": "w"}),
        ("optuna_journal.log: not a journal Optuna", "can replay (KeyError"),
        seconds=60,
    ),
    "model_name_weights_unpickle_to_code": Row(
        _pickled_weights, ("model_name = 'pickled-bert': its weights hold more than tensors",), seconds=60
    ),
    "dvc_config_local_not_ini": Row(_dvc_config_local("[core\nremote = x\n"), ("error: DVC:",)),
    "dvc_config_local_unknown_section": Row(_dvc_config_local("[bogus]\nx = 1\n"), ("error: DVC:",)),
    "review_experiment_name_with_a_slash": Row(
        lambda repo, canary: [*REVIEW, "--exp", "a/../b"], ("--exp a/../b",), seconds=60
    ),
}
CLASSES = {
    "cost": COST,
    "secrets": SECRETS,
    "bounds": BOUNDS,
    "parsers": PARSERS,
    "traceback": TRACEBACK,
    "containment": CONTAINMENT,
    "memory": MEMORY,
    "runaway": RUNAWAY,
    "unclear": UNCLEAR,
    "probabilities": PROBABILITIES,
    "probabilities_memory": PROBABILITIES_MEMORY,
    "all_or_nothing": ALL_OR_NOTHING,
    "readers": READERS,
    "launcher": LAUNCHER,
    "review": REVIEW_ROWS,
}


def run_row(row: Row, template: Path, tmp_path: Path, command: list[str] | None = None, **env: str):
    repo = tmp_path / "repo"
    shutil.copytree(template, repo, symlinks=True)
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "precious.txt").write_text("must stay as it is\n")
    command = command or row.setup(repo, canary)
    if row.outputs is not None:  # temporary files go outside the repository, where leftovers show
        (tmp_path / "tmpdir").mkdir()
        env = {"TMPDIR": str(tmp_path / "tmpdir"), **env}
        repo_before = repo_hash(repo, row.outputs)
    before = tree_hash(tmp_path, skip=repo)
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-c", MEASURE, *command],
            cwd=repo,
            env=run_env(**env),
            capture_output=True,
            text=True,
            timeout=(row.seconds or 300) + 120,
        )
    finally:
        while HELD_SOCKETS:
            HELD_SOCKETS.pop().close()
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    peak_mb = int(output.rsplit("peak_kb=", 1)[1].split()[0]) / 1024
    record(command, result.returncode, output, peak_mb, elapsed)
    assert "Traceback" not in output, output[-5000:]
    assert "ChildFailedError" not in output, output[-5000:]
    assert tree_hash(tmp_path, skip=repo) == before, "something outside the repository changed"
    if row.outputs is not None:
        changed = sorted(k for k in repo_hash(repo, row.outputs).items() ^ repo_before.items())
        assert not changed, f"changed in the repository outside {row.outputs}: {changed[:10]}"
    if row.rc == 0:
        assert result.returncode == 0, output[-5000:]
        for text in row.expected:
            assert text in output, output[-5000:]
    else:
        assert result.returncode != 0, output[-5000:]
        lines = output.splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("error: ")]
        assert len(starts) == 1, output[-5000:]
        # the error, with the "  - key: ..." lines a params.yaml error lists under it
        block = [lines[starts[0]]] + [line for line in lines[starts[0] + 1 : starts[0] + 20] if line.startswith("  - ")]
        errors = ["\n".join(block)]
        for text in row.expected:
            assert text in errors[0], output[-5000:]
        assert len(errors[0]) < 1000, errors[0][:2000]
    if row.max_mb is not None:
        assert peak_mb < row.max_mb, f"peak {peak_mb:.0f} MB"
    assert row.seconds is None or elapsed < row.seconds, f"took {elapsed:.0f} s"
    return repo, output


@pytest.mark.parametrize("klass, name", [(k, n) for k, rows in CLASSES.items() for n in rows])
def test_hostile_input(klass, name, template, tmp_path):
    row = CLASSES[klass][name]
    repo, output = run_row(row, template, tmp_path, **row.env)
    if klass == "secrets":  # in no output line and no file under the repository
        assert PASSWORD not in output, output[-5000:]
        files = [f for f in repo.rglob("*") if f.is_file() and f != repo / "params.yaml"]  # but where the user wrote it
        leaked = [f for f in files if PASSWORD.encode() in f.read_bytes()]
        assert not leaked, leaked
    if name == "csv_header_with_byte_order_mark":
        assert json.loads((repo / "metrics/data.json").read_text())  # the text column was found
    if name == "relative_mirror_path":
        assert (repo / "data/raw/train_text.txt").is_file()
    if name == "committed_manifest_names_a_tracked_file":
        assert (repo / "review/keep.txt").read_text() == "tracked"
    if name in REVIEW_NOTES:
        report = (repo / "review/report.md").read_text()
        assert REVIEW_NOTES[name] in report, report


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SLOW))
def test_hostile_input_slow(name, template, tmp_path):
    repo, _ = run_row(SLOW[name], template, tmp_path)
    if name == "predict_300k_lines":
        assert len((repo / "results.jsonl").read_text().splitlines()) == 300_000
    if name in ("tune_workers_1000", "journal_line_cut_in_the_middle"):
        assert (repo / "metrics/tune.json").is_file()


def test_lost_data_part_from_another_url_is_discarded(template, tmp_path, server):  # noqa: F811
    row = LOST_DATA["part_from_another_url_is_discarded"]
    repo = tmp_path / "stage"
    shutil.copytree(template, repo, symlinks=True)
    set_params(repo, **{"data.base_url": f"{server}/", "data.files": ["file.bin"]})
    command = _part_from_another_url(repo, tmp_path)
    result = subprocess.run(command, cwd=repo, env=run_env(), capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Traceback" not in output, output
    assert row.expected[0] in output, output
    assert (repo / "data/raw/file.bin").read_bytes() == BODY  # not spliced onto the other source's bytes
    assert not (repo / "data/raw/file.bin.part.source").exists()
    assert [r for p, r in DownloadHandler.requests_seen if p == "/file.bin"] == [None]  # no Range: from the start


def test_a_part_from_the_same_url_resumes(template, tmp_path, server):  # noqa: F811
    repo = tmp_path / "stage"
    shutil.copytree(template, repo, symlinks=True)
    set_params(repo, **{"data.base_url": f"{server}/", "data.files": ["file.bin"]})
    (repo / "data/raw").mkdir(parents=True)
    (repo / "data/raw/file.bin.part").write_bytes(BODY[:60_000])
    (repo / "data/raw/file.bin.part.source").write_text(json.dumps({"url": f"{server}/file.bin", "length": len(BODY)}))
    result = subprocess.run(
        module("stages.download_data"), cwd=repo, env=run_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert (repo / "data/raw/file.bin").read_bytes() == BODY
    assert [r for p, r in DownloadHandler.requests_seen if p == "/file.bin"] == ["bytes=60000-"]


# class 4: every parse failure of the one JSON reader (src/core/json_files.py) is one PipelineError naming the file
JSON_PARSE = {
    "integer_of_5000_digits": ('{"n": ' + "9" * 5000 + "}", "not readable JSON (Exceeds the limit"),
    "nested_100000_deep": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "cut_in_the_middle": ('{"a": [1, 2', ":1: not valid JSON"),
    "not_utf8": (b"\xff\xfe{}", "not valid UTF-8"),
}


@pytest.mark.parametrize("name", list(JSON_PARSE))
def test_json_reader_turns_every_parse_failure_into_one_error(name, tmp_path):
    from src.core.errors import PipelineError
    from src.core.json_files import read_json_object

    text, expected = JSON_PARSE[name]
    path = tmp_path / "config.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    started = time.monotonic()
    with pytest.raises(PipelineError) as caught:
        read_json_object(path)
    assert str(path) in str(caught.value) and expected in str(caught.value), str(caught.value)
    assert time.monotonic() - started < 10


# class 6: a value from params shown in report.md (posted as a pull-request comment) is plain text
# (src/review/sections.py md_code): one table row, no heading, image, link or mention markup outside a code span
REPORT_VALUES = {
    "newline_and_heading": "x\n## Approved\n",
    "image": "![i](http://example.com/x.png)",
    "mention": "@org/maintainers please merge",
    "cell_break_and_backticks": "a | b ``` c",
    "long_value": "y" * 100_000,
}


@pytest.mark.parametrize("name", list(REPORT_VALUES))
def test_report_values_are_escaped(name):
    from src.review.sections import MAX_CELL_CHARS, params_table

    value = REPORT_VALUES[name]
    table = params_table({"params.yaml": {"model_name": {"old": "bert", "new": value}}})
    row = table.splitlines()[2]
    assert len(table.splitlines()) == 3, table  # the header, its rule and one row: no line of the value's own
    cell = row.split(" | ", 2)[2].removesuffix(" |")
    assert cell.startswith("`") and cell.endswith("`"), cell  # a code span: markdown inside it is shown as text
    assert "\\|" in cell or "|" not in cell, cell
    assert len(row) < MAX_CELL_CHARS + 100, len(row)


# class 7: src.predict and src.review handle signals as the stages do (src.core.cli.run_command): one line, exit 128+N
SIGNALS = {"predict_sigint": ("SIGINT", 130), "predict_sigterm": ("SIGTERM", 143)}


@pytest.mark.parametrize("name", list(SIGNALS))
def test_predict_waiting_on_stdin_ends_on_a_signal_with_one_line(name, template, tmp_path):
    import signal as signals

    signame, rc = SIGNALS[name]
    repo = tmp_path / "repo"
    shutil.copytree(template, repo, symlinks=True)
    child = subprocess.Popen(
        [*module("src.predict", "--model", "models/bert", "--input", "-")],
        cwd=repo,
        env=run_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cpu, deadline = -1, time.monotonic() + 120
    while time.monotonic() < deadline:  # importing done, waiting on stdin: its CPU time stops growing
        time.sleep(1)
        now = sum(int(f) for f in Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13])
        if now == cpu:
            break
        cpu = now
    child.send_signal(getattr(signals, signame))
    _, err = child.communicate(timeout=30)
    assert child.returncode == rc, err
    assert "Traceback" not in err and f"interrupted by {signame}" in err, err


# class 5, through the engine's Python API (the LSTM training guide's Trainer): the batch formats a
# PyTorch user brings, epoch counts, and a loss that diverges
def _tuple_loaders(n: int = 64):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    return loader, DataLoader(TensorDataset(x, y), batch_size=16)


class _TupleOut(__import__("torch").nn.Module):
    """forward returns (logits, features), as many research models do."""

    def __init__(self, scale: float = 1.0):
        import torch

        super().__init__()
        self.linear, self.scale = torch.nn.Linear(4, 3), scale

    def forward(self, x):
        return self.linear(x) * self.scale, x


@pytest.mark.parametrize("model_of", ["sequential", "tuple_output"])
def test_trainer_trains_on_a_plain_loader_of_tuples(model_of, tmp_path):
    import torch

    from src.training import Trainer

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3)) if model_of == "sequential" else _TupleOut()
    train, val = _tuple_loaders()
    trainer = Trainer(
        model, train, val, torch.optim.Adam(model.parameters(), lr=0.05), checkpoint_dir=tmp_path, progress=False
    )
    history = trainer.train(epochs=3)
    assert len(history["val_losses"]) == 3 and history["val_losses"][-1] < history["val_losses"][0]
    assert (tmp_path / "best_model.pt").is_file()


@pytest.mark.parametrize(
    "batches, expected",
    [
        ([{"x": 1}], "a batch is a dict with the keys ['x']: expected a dict with 'labels'"),
        (["text"], "a batch is str: expected a dict with 'labels' and the model's keyword inputs"),
    ],
)
def test_trainer_names_the_batch_formats_it_takes(batches, expected, tmp_path):
    import torch

    from src.core.errors import PipelineError
    from src.training import Trainer

    model = torch.nn.Linear(4, 3)
    trainer = Trainer(model, batches, batches, torch.optim.SGD(model.parameters(), lr=0.1), checkpoint_dir=tmp_path)
    with pytest.raises(PipelineError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        trainer.train(epochs=1)


@pytest.mark.parametrize("value", [-3, 0, 1.5, True, "2"])
def test_train_refuses_an_epoch_count_that_is_not_a_positive_whole_number(value, tmp_path):
    import torch

    from src.core.errors import PipelineError
    from src.training import Trainer

    model = torch.nn.Linear(4, 3)
    train, val = _tuple_loaders()
    trainer = Trainer(model, train, val, torch.optim.SGD(model.parameters(), lr=0.1), checkpoint_dir=tmp_path)
    with pytest.raises(PipelineError, match=rf"epochs = {value!r}: expected a whole number of at least 1"):
        trainer.train(epochs=value)
    assert not list(tmp_path.iterdir()), "nothing is written"


@pytest.mark.parametrize("scale", [float("nan"), float("inf")])
def test_a_diverged_loss_stops_training_before_a_checkpoint(scale, tmp_path):
    import torch

    from src.core.errors import TrainingDiverged
    from src.training import Trainer

    torch.manual_seed(0)
    model = _TupleOut(scale)
    train, val = _tuple_loaders()
    trainer = Trainer(
        model, train, val, torch.optim.SGD(model.parameters(), lr=0.1), checkpoint_dir=tmp_path, progress=False
    )
    with pytest.raises(TrainingDiverged, match=r"the training loss is nan at epoch 1, step 1: training diverged"):
        trainer.train(epochs=2)
    assert not (tmp_path / "best_model.pt").exists() and not list(tmp_path.glob("checkpoint_epoch_*"))


def test_lone_surrogates_are_dropped_before_the_tokenizer(template):
    from src.models.loading import load_model
    from src.predict import classify

    assert normalize_tweet("good \ud83d day \udcff") == "good day"
    cwd = os.getcwd()
    os.chdir(template)  # the model's links are checked against the working directory
    try:
        rows = list(classify(load_model("models/bert", "cpu"), ["good \ud83d day", "\udcff"], 2, "cpu"))
    finally:
        os.chdir(cwd)
    assert [r["text"] for r in rows] == ["good \ufffd day", "\ufffd"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-3 for r in rows)  # 4 decimals each


def test_links_inside_the_repository_or_its_dvc_cache_still_work(template, tmp_path, monkeypatch):
    """Class 2's rule refuses links by where they resolve: metrics/tfidf linked to a directory of the
    repository, and a file linked into a DVC cache outside it (``cache.dir``, ``cache.type: symlink``),
    pass; train_tfidf writes through the first as users run it."""
    from src.core.containment import check_inside_repository
    from src.core.errors import PipelineError

    repo = tmp_path / "repo"
    shutil.copytree(template, repo, symlinks=True)
    (repo / "elsewhere_inside").mkdir()
    (repo / "metrics").mkdir(exist_ok=True)
    (repo / "metrics/tfidf").symlink_to(repo / "elsewhere_inside", target_is_directory=True)
    result = subprocess.run(module("stages.train_tfidf"), cwd=repo, env=run_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (repo / "elsewhere_inside/train.json").is_file()

    cache = tmp_path / "shared_cache"
    (cache / "files").mkdir(parents=True)
    (cache / "files/ab").write_text("{}")
    (repo / "metrics/data.json").symlink_to(cache / "files/ab")
    monkeypatch.chdir(repo)
    with pytest.raises(PipelineError, match=r"metrics/data.json: a symbolic link to .*, outside "):
        check_inside_repository(["metrics/data.json"], "read it")
    (repo / ".dvc/config").write_text(f"[cache]\n    dir = {cache}\n    type = symlink\n")
    check_inside_repository(["metrics/data.json", "metrics/tfidf/train.json"], "read it")

"""src.review's pieces and the CI workflow that posts its report (.github/workflows/review.yml).

The whole review path on real runs is in tests/test_pipeline_e2e.py::test_review_round_trip; the
workflow cannot run here, so this checks that everything it calls exists and parses.
"""
import importlib.util
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from src.review import _change, metrics_table, params_table

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github/workflows/review.yml"


def workflow_commands() -> list[list[str]]:
    """Every command line of every `run:` step, split like a shell would (continuations and comments dropped)."""
    workflow = YAML(typ="safe", pure=True).load(WORKFLOW.read_text())
    commands = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            for line in step.get("run", "").splitlines():
                words = shlex.split(line, comments=True)
                if words:
                    commands.append(words)
    return commands


def test_workflow_runs_on_pull_requests_and_posts_the_report_with_cml():
    workflow = YAML(typ="safe", pure=True).load(WORKFLOW.read_text())
    assert workflow["on"] == "pull_request"
    commands = [" ".join(words) for words in workflow_commands()]
    order = ["python -m pip install -r requirements.txt", "python -m dvc pull --run-cache",
             "python -m dvc repro", "python -m src.review --base origin/main", "cml comment create report.md"]
    positions = [next(i for i, c in enumerate(commands) if c.startswith(expected)) for expected in order]
    assert positions == sorted(positions), commands


def test_every_python_entry_point_and_dvc_command_of_the_workflow_exists():
    from dvc.cli import parse_args

    for words in workflow_commands():
        if words[:2] != ["python", "-m"]:
            continue
        module, args = words[2], words[3:]
        assert importlib.util.find_spec(module) is not None, f"{WORKFLOW.name}: no module {module}"
        if module == "dvc":
            parse_args(args)   # DVC's own parser: an unknown command or option fails here
        elif module == "pip" and "-r" in args:
            assert (REPO / args[args.index("-r") + 1]).is_file()
        elif module.startswith("src."):
            result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True)
            assert result.returncode == 0, result.stderr
            for option in (a for a in args if a.startswith("--")):
                assert option in result.stdout, f"{module} has no option {option}"


@pytest.mark.skipif(shutil.which("cml") is None, reason="CML (npm @dvcorg/cml) is not installed here")
def test_cml_accepts_the_comment_command():
    result = subprocess.run(["cml", "comment", "create", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_tables_show_base_new_and_change():
    diff = {"metrics/bert/test.json": {"macro_recall": {"old": 0.43, "new": 0.6426, "diff": 0.2126},
                                       "accuracy": {"old": 0.5, "new": 0.5, "diff": 0}},
            "metrics/bert/train.json": {"val.macro_recall": {"new": 0.58}}}
    table, changed = metrics_table("bert", diff)
    assert changed
    assert "| test macro-recall | 0.4300 | 0.6426 | +0.2126 |" in table
    assert "| test accuracy | 0.5000 | 0.5000 | 0 |" in table
    assert "| val macro-recall (best epoch) | – | 0.5800 | – |" in table   # new in this change
    assert metrics_table("lstm", diff) == ("", False)
    assert _change(0.5, 0.25) == "-0.2500"
    assert params_table({}) == "No params changed.\n"
    assert "| `learning_rate` | 2e-05 | 3e-05 |" in params_table(
        {"params.yaml": {"learning_rate": {"old": 2e-05, "new": 3e-05}}})


def test_an_unknown_base_is_one_error_line(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    result = subprocess.run([sys.executable, "-m", "src.review", "--base", "no-such-rev"], cwd=tmp_path,
                            capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: --base no-such-rev: not a git revision here "
                                     "(fetch it first, e.g. `git fetch origin main`)")

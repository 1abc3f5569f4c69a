"""Every entry point answers an unknown flag with a usage error (exit 2) and writes nothing; `--help` everywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = sorted(p.stem for p in (REPO / "stages").glob("*.py") if p.stem != "__init__")
# (module, arguments before the unknown flag): evaluate needs its model, the rest nothing
ENTRY_POINTS = [(f"stages.{name}", ["tfidf"] if name == "evaluate" else []) for name in STAGES]
# the command lines: argparse's usage error (a missing required option may be named before the unknown one)
CLIS = ["src.predict", "src.evaluation", "src.review", "src.launch", "scripts.train", "scripts.tune"]


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    """A scratch copy of params.yaml and the code, so a stage that ran anyway would write here."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def _run(workdir: Path, module: str, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(("module", "args"), ENTRY_POINTS, ids=[m for m, _ in ENTRY_POINTS])
def test_unknown_flag_is_a_usage_error_and_writes_nothing(workdir: Path, module: str, args: list[str]) -> None:
    before = _snapshot(workdir)
    result = _run(workdir, module, [*args, "--bogus"])
    assert result.returncode == 2, result.stderr
    assert "unrecognized arguments: --bogus" in result.stderr
    assert _snapshot(workdir) == before


@pytest.mark.parametrize("module", CLIS)
def test_cli_unknown_flag_is_a_usage_error_and_writes_nothing(workdir: Path, module: str) -> None:
    before = _snapshot(workdir)
    result = _run(workdir, module, ["--bogus"])
    assert result.returncode == 2, result.stderr
    assert "usage:" in result.stderr
    assert _snapshot(workdir) == before


@pytest.mark.parametrize("module", [*(m for m, _ in ENTRY_POINTS), "src.pull", *CLIS])
def test_help_prints_usage_and_writes_nothing(workdir: Path, module: str) -> None:
    before = _snapshot(workdir)
    result = _run(workdir, module, ["--help"])
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    assert _snapshot(workdir) == before

"""pyproject.toml's [project.scripts]: every console script's target imports and is callable."""

import importlib
import tomllib
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
SCRIPTS = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]


def test_the_command_lines_are_declared():
    targets = set(SCRIPTS.values())
    for module in ("src.predict", "src.evaluation", "src.review.report", "src.pull", "src.launch"):
        assert f"{module}:main" in targets
    assert {"scripts.train:main", "scripts.tune:main", "src.training.train_model:main"} <= targets


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_each_console_script_target_imports_and_is_callable(name):
    module, _, attribute = SCRIPTS[name].partition(":")
    target = getattr(importlib.import_module(module), attribute)
    assert callable(target)

"""The declared pins (pyproject.toml) and the hashed locks (requirements.txt, requirements-cuda.txt) agree,
everything the code imports is declared, and `pip install .` pulls no dev tool. `make lock` regenerates the locks."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCKS = ("requirements.txt", "requirements-cuda.txt")
LOCAL = {"src", "stages", "scripts", "tests", "benchmarks"}
DEV_TOOLS = {"pytest", "ruff", "hypothesis", "accelerate", "matplotlib", "psycopg"}


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        if "==" in requirement:
            pins[_name(requirement)] = requirement.split("==", 1)[1].split(";")[0].strip()
    return pins


PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
RUNTIME = _pins(PROJECT["dependencies"])
EXTRAS = {extra: _pins(reqs) for extra, reqs in PROJECT["optional-dependencies"].items()}
DECLARED = {**RUNTIME, **{name: v for pins in EXTRAS.values() for name, v in pins.items()}}


def _lock(path: str) -> dict[str, tuple[str, list[str]]]:
    """{package: (version, hashes)} of a `uv pip compile --generate-hashes` file."""
    entries, text = {}, (REPO / path).read_text()
    for block in re.split(r"\n(?=\S)", text):
        match = re.match(r"([A-Za-z0-9._\-\[\]]+)==(\S+)", block)
        if match:
            entries[_name(match.group(1))] = (match.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return entries


@pytest.mark.parametrize("lock", LOCKS)
def test_every_declared_pin_is_locked_at_its_version_and_every_locked_file_has_a_hash(lock):
    entries = _lock(lock)
    assert len(entries) > 100  # the whole resolved set, transitive packages included
    drift = {name: (version, entries.get(name, ("missing",))[0]) for name, version in DECLARED.items()}
    drift = {name: pair for name, pair in drift.items() if pair[0] != pair[1]}
    assert not drift, f"{lock} drifted from pyproject.toml's pins (declared, locked): {drift}; run `make lock`"
    assert not [name for name, (_, hashes) in entries.items() if not hashes], f"{lock}: entries without a hash"


def test_the_cpu_and_cuda_locks_resolve_the_same_versions_of_everything_both_hold():
    cpu, cuda = _lock(LOCKS[0]), _lock(LOCKS[1])
    differ = {n: (cpu[n][0], cuda[n][0]) for n in cpu.keys() & cuda.keys() if cpu[n][0] != cuda[n][0]}
    assert not differ, differ
    assert cpu["torch"][1] != cuda["torch"][1]  # the same release, other builds: the hashes pick the build


def _third_party_imports(folders: tuple[str, ...]) -> dict[str, str]:
    """{top-level module: a file importing it} over ``folders``, standard library and local packages left out."""
    found = {}
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in LOCAL:
                        found.setdefault(top, str(path.relative_to(REPO)))
    return found


def _distributions(module: str) -> set[str]:
    return {_name(d) for d in packages_distributions().get(module, [module])}


def test_everything_the_product_imports_is_a_declared_runtime_or_extra_dependency():
    undeclared = {
        module: where
        for module, where in _third_party_imports(("src", "stages", "scripts")).items()
        if not _distributions(module) & DECLARED.keys()
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_everything_the_tests_and_benchmarks_import_is_in_the_dev_extra():
    dev = set(DECLARED)  # dev = runtime + review + postgres + the tools
    undeclared = {
        module: where
        for module, where in _third_party_imports(("tests", "benchmarks")).items()
        if not _distributions(module) & dev
    }
    assert not undeclared, f"imported by tests/benchmarks but not declared: {undeclared}"


def test_pip_install_dot_pulls_no_dev_tool():
    assert not DEV_TOOLS & RUNTIME.keys(), f"runtime dependencies hold dev tools: {DEV_TOOLS & RUNTIME.keys()}"
    assert DEV_TOOLS <= EXTRAS["dev"].keys() | EXTRAS["review"].keys() | EXTRAS["postgres"].keys()

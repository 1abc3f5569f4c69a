"""dvc.yaml's code deps are exactly the modules each stage imports, derived from the code.

Starting at the stage's script (``python -m stages.X`` in its cmd), every ``import`` of a ``src``
module is followed transitively, function-level imports included (they run when the stage runs),
together with the ``__init__.py`` of each package on the way (Python executes them). A package whose
``__init__`` exports names lazily (PEP 562) lists them in ``_EXPORTS``: ``from src.training import
create_trainer`` imports ``src/training/trainer.py`` and nothing else of that package.

The rule for shared plumbing: ``PLUMBING`` below loads and validates params, prints errors, writes
files atomically, handles signals and resolves package exports (src/core/lazy.py). It decides how a
stage fails, never what a successful run computes, so no stage lists it:
a schema change must not re-train the models. To keep that honest,
plumbing may import only plumbing.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CODE_ROOTS = ("src", "stages")
PLUMBING = {
    "src/__init__.py",
    "stages/__init__.py",
    "src/core/__init__.py",  # package markers
    "src/core/params.py",
    "src/core/params_schema.py",
    "src/core/cli.py",
    "src/core/errors.py",
    "src/core/atomic.py",
    "src/core/containment.py",  # declared inputs and outputs stay inside the repository, links resolved
    "src/core/interrupts.py",
    "src/core/lazy.py",
    "src/core/secrets.py",  # redacts what errors and logs print
    "src/launch.py",
}
STAGE_SCRIPT = re.compile(r"(?:-m\s+|\b)stages[./](\w+)")


def module_file(name: str) -> str | None:
    """``src.a.b`` -> ``src/a/b.py`` or ``src/a/b/__init__.py`` (repo-relative), None outside the repo."""
    if name.split(".")[0] not in CODE_ROOTS:
        return None
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path.relative_to(REPO).as_posix()
    return None


def module_name(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _lazy_exports(package_file: str) -> dict[str, str]:
    """A package ``__init__``'s ``_EXPORTS = {name: module}`` table, if it has one."""
    for node in ast.parse((REPO / package_file).read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets):
                return ast.literal_eval(node.value)
    return {}


def _with_parents(name: str) -> list[str]:
    """``src.a.b`` -> [src, src.a, src.a.b]: importing a module runs its packages' ``__init__``."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def direct_imports(path: str, source: str | None = None) -> set[str]:
    """The repo files that ``path`` imports (anywhere in it but under ``if TYPE_CHECKING:``)."""
    if source is None:
        source = (REPO / path).read_text(encoding="utf-8")
    tree = ast.parse(source, filename=path)
    skipped = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and _is_type_checking(block)
        for stmt in block.body
        for n in ast.walk(stmt)
    }
    this = module_name(path)
    package = this if path.endswith("__init__.py") else this.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.update(_with_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            names.update(_with_parents(origin))
            exports = _lazy_exports(init) if (init := module_file(origin)) and init.endswith("__init__.py") else {}
            for alias in node.names:
                if module_file(f"{origin}.{alias.name}"):
                    names.add(f"{origin}.{alias.name}")  # a submodule
                elif alias.name in exports:
                    names.update(_with_parents(exports[alias.name]))
    return {file for name in names if (file := module_file(name)) and file != path}


def stage_code(script: str) -> dict[str, list[str]]:
    """Every non-plumbing file the script imports, transitively: {file: import chain from the script}."""
    chains = {script: [script]}
    queue = deque([script])
    while queue:
        current = queue.popleft()
        for imported in sorted(direct_imports(current)):
            if imported not in chains and imported not in PLUMBING:
                chains[imported] = chains[current] + [imported]
                queue.append(imported)
    return chains


def dvc_stages() -> dict[str, tuple[str, list[str]]]:
    """{stage name (foreach expanded): (cmd, dep paths)} as DVC itself resolves dvc.yaml."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        return {
            stage.addressing: (stage.cmd, [dep.def_path for dep in stage.deps])
            for stage in repo.index.stages
            if stage.cmd
        }


def listed_code(deps: list[str]) -> dict[str, str]:
    """{code file: the dep entry that covers it}; a directory dep covers every .py file under it."""
    covered = {}
    for dep in deps:
        if dep.split("/")[0] not in CODE_ROOTS:
            continue
        path = REPO / dep
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            covered[file.relative_to(REPO).as_posix()] = dep
    return covered


def deps_problems(stage: str, cmd: str, deps: list[str]) -> list[str]:
    match = STAGE_SCRIPT.search(cmd)
    assert match, f"dvc.yaml stage '{stage}': cmd {cmd!r} does not run a stages/<name>.py script"
    script = f"stages/{match.group(1)}.py"
    needed = stage_code(script)
    listed = listed_code(deps)
    problems = [
        f"add `- {file}` (imported via {' -> '.join(chain)})"
        for file, chain in sorted(needed.items())
        if file not in listed
    ]
    unused: dict[str, list[str]] = {}
    for file, dep in sorted(listed.items()):
        if file in PLUMBING:
            problems.append(f"remove `- {dep}`: {file} is shared plumbing (see tests/test_stage_deps.py)")
        elif file not in needed:
            unused.setdefault(dep, []).append(file)
    for dep, files in unused.items():
        problems.append(
            f"remove `- {dep}` ({dep}, which the stage never imports)"
            if files == [dep]
            else f"remove `- {dep}` (the stage never imports {', '.join(files)}: list the modules it imports)"
        )
    return sorted(set(problems))


def test_every_stage_lists_exactly_the_code_it_imports():
    report = []
    for stage, (cmd, deps) in dvc_stages().items():
        report += [f"dvc.yaml stage '{stage}': {problem}" for problem in deps_problems(stage, cmd, deps)]
    assert not report, "code deps in dvc.yaml differ from what the stages import:\n" + "\n".join(report)


def test_plumbing_exists_and_imports_only_plumbing():
    for file in sorted(PLUMBING):
        assert (REPO / file).is_file(), f"{file} is listed as plumbing in tests/test_stage_deps.py but does not exist"
        leaks = direct_imports(file) - PLUMBING
        assert not leaks, (
            f"plumbing module {file} imports {sorted(leaks)}: a stage's result would then depend on "
            "code no dvc.yaml deps list; move that code out of the plumbing or remove it from PLUMBING"
        )


def test_training_does_not_import_the_downloader_or_the_other_model():
    assert "src/data/download.py" not in stage_code("stages/train_lstm.py")
    bert = stage_code("stages/train_bert.py")
    assert not {"src/training/glove_loader.py", "src/models/lstm_model.py", "src/data/glove.py"} & set(bert)


def test_scoring_does_not_import_the_training_engine():
    """The evaluate stages and the tools that load a trained model read its files only: a change to
    the training loop must not re-score every model."""
    for script in ("stages/evaluate.py", "stages/ensemble.py"):
        engine = sorted(file for file in stage_code(script) if file.startswith("src/training/"))
        assert not engine, f"{script} imports the training engine: {engine}"
    for shared in ("src/core/runtime.py", "src/models/loading.py", "src/checkpoints/files.py", "src/data/batching.py"):
        assert not [file for file in direct_imports(shared) if file.startswith("src/training/")], shared


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from src.training import create_trainer", {"src/training/__init__.py", "src/training/factory.py"}),
        ("from src.training import GloVeLoader", {"src/training/__init__.py", "src/training/glove_loader.py"}),
        ("from src.models import training", {"src/models/__init__.py", "src/models/training.py"}),
        ("import src.training.history", {"src/training/__init__.py", "src/training/history.py"}),
        ("def f():\n    from src.data.vocab import Vocabulary", {"src/data/__init__.py", "src/data/vocab.py"}),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from src.data.vocab import Vocabulary", set()),
    ],
)
def test_import_resolution(source, expected):
    assert direct_imports("stages/probe.py", source) - {"src/__init__.py"} == expected


def test_a_missing_and_a_needless_dep_are_named():
    deps = ["stages/train_lstm.py", "src/data/download.py", "src/core/cli.py"]
    problems = "\n".join(deps_problems("train_lstm", "python -m stages.train_lstm", deps))
    assert "add `- src/training/trainer.py` (imported via stages/train_lstm.py -> " in problems
    assert "remove `- src/data/download.py` (src/data/download.py, which the stage never imports)" in problems
    assert "remove `- src/core/cli.py`: src/core/cli.py is shared plumbing" in problems

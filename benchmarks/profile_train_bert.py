"""Where `dvc repro train_bert` spends its time, end to end: prints JSON, seconds per phase.

    HF_HOME=../shared/hf HF_HUB_OFFLINE=1 python -m benchmarks.profile_train_bert --train-samples 4000 \
        -S num_epochs=1

Runs the real stage through DVC and the launcher in a throwaway copy of the repository (its files
that git does not ignore, params.yaml with the ``-S key=value`` overrides, and a stratified subset of
data/processed/train.jsonl; run `dvc repro preprocess` first). The stage's process runs under
cProfile (``python -m src.launch profiled_train_bert.py`` in the copy's dvc.yaml, a script that runs
``stages.train_bert`` under cProfile), which gives the phases inside it; what the process does not
account for is DVC's and the launcher's own time (start-up, hashing and caching the outputs), which
the script also splits out by timing src.launch launching an empty module and `dvc status` of the
finished stage.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.stage_copy import copy_repository

# phase -> the functions whose cumulative time it is (file suffix, function name); none calls another,
# except the per-step log inside the training loop: subtracted from it (TRAIN_STEPS_WITHOUT_LOG)
PHASES = {
    "params: read and validate": [("src/core/params.py", "load_params")],
    "tokenizer load (imports transformers)": [("src/models/bert_model.py", "load_tokenizer")],
    "tokenisation (train and val)": [("src/models/bert_data.py", "__init__")],
    "model load (from_pretrained)": [("src/models/bert_model.py", "__init__")],
    "training steps": [("src/training/trainer.py", "train_epoch")],
    "DVCLive: a row per step": [("src/training/live.py", "log_step")],
    "DVCLive: epoch rows, summary, close": [("src/training/live.py", "log_epoch"), ("src/training/live.py", "close")],
    "validation": [("src/training/trainer.py", "evaluate_model")],
    "checkpoint each epoch (model, optimizer, scheduler, RNG)": [("src/training/run_state.py", "save_checkpoint")],
    "publish: best_model.pt, history, save_pretrained export": [("src/training/run_state.py", "_publish_best")],
}
LAUNCHER_ROW = "src.launch: params and layout checks, starting the stage"
TRAIN_STEPS_WITHOUT_LOG = ("training steps", "DVCLive: a row per step")
# the stage's module under cProfile, run by src.launch as a script (as torchrun takes one)
PROFILED_STAGE = """import cProfile
import runpy

cProfile.run("runpy.run_module('stages.train_bert', run_name='__main__')", "train_bert.prof")
"""


def _profile_the_stage(work: Path) -> None:
    """The copy's train_bert command runs the stage under cProfile."""
    dvc_yaml = (work / "dvc.yaml").read_text()
    assert "-m src.launch stages.train_bert" in dvc_yaml
    (work / "profiled_train_bert.py").write_text(PROFILED_STAGE)
    (work / "dvc.yaml").write_text(
        dvc_yaml.replace("-m src.launch stages.train_bert", "-m src.launch profiled_train_bert.py")
    )


def _wall(command: list[str], cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def _phase_seconds(profile: Path) -> tuple[dict, float]:
    stats = pstats.Stats(str(profile)).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    by_function = {}
    for (filename, _, name), (_, _, _, cumulative, _) in stats.items():
        by_function.setdefault((filename.replace(os.sep, "/"), name), 0.0)
        by_function[(filename.replace(os.sep, "/"), name)] += cumulative
    total = max(ct for (_, _, name), (_, _, _, ct, _) in stats.items() if name == "<module>")

    def seconds(targets):
        return sum(
            t
            for (filename, name), t in by_function.items()
            for suffix, target in targets
            if filename.endswith(suffix) and name == target
        )

    phases = {phase: seconds(targets) for phase, targets in PHASES.items()}
    steps, per_step_log = TRAIN_STEPS_WITHOUT_LOG
    phases[steps] -= phases[per_step_log]
    return phases, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-samples", type=int, default=4000, help="0: the whole train split")
    parser.add_argument(
        "-S",
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="params.yaml override, as `dvc exp run -S`",
    )
    parser.add_argument("--keep", action="store_true", help="keep the throwaway copy (its path goes to stderr)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": ""}
    if env.get("HF_HOME"):  # the copy lives elsewhere: a relative cache path must still find the cache
        env["HF_HOME"] = str(Path(env["HF_HOME"]).resolve())
    work = Path(tempfile.mkdtemp(prefix="profile_train_bert_"))
    try:
        copy_repository(work, args.train_samples or None, args.overrides)
        _profile_the_stage(work)
        python_start = _wall([sys.executable, "-c", "pass"], work, env)
        # the stage's launcher with the default distributed params, starting a worker that does nothing
        launcher_start = _wall([sys.executable, "-m", "src.launch", "platform"], work, env) - _wall(
            [sys.executable, "-m", "platform"], work, env
        )
        total = _wall(["dvc", "repro", "-s", "-f", "train_bert"], work, env)
        dvc_status = _wall(["dvc", "status", "train_bert"], work, env)
        phases, process = _phase_seconds(work / "train_bert.prof")
    finally:
        if args.keep:
            print(work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    accounted = sum(phases.values())
    rows = {
        "DVC: start-up, dependency and params checks (dvc status)": dvc_status,
        "DVC: hashing and caching the outputs, lock file (the rest of dvc's time)": total
        - process
        - launcher_start
        - python_start
        - dvc_status,
        # one process: the checks and torch's import (the stage then finds torch imported); several:
        # torchrun's agent, rendezvous and worker start too
        LAUNCHER_ROW: launcher_start,
        "Python interpreter start-up": python_start,
        **phases,
        # the stage process under cProfile: its <module> total minus the phases
        "imports at start-up (torch, src) and the rest": process - accounted,
    }
    print(
        json.dumps(
            {
                "train_samples": args.train_samples,
                "overrides": args.overrides,
                "total_s": round(total, 1),
                "phases_s": {name: round(value, 2) for name, value in rows.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

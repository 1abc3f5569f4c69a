"""What logging every optimizer step with DVCLive costs: src.training.live.DVCLiveLog against
DVCLive's plain ``log_metric`` + ``next_step()`` per step, in a scratch directory.

    python -m benchmarks.dvclive_overhead [--steps 5000] [--every 500]

Prints JSON: milliseconds per step over the whole run and over the last ``--every`` steps, for each
way. ``next_step()`` re-reads every row logged so far (for DVC Studio, even when Studio is not
configured), so its cost per step grows with the run; DVCLiveLog appends one row per step and
rewrites metrics.json every few seconds and at each epoch (here: every ``--every`` steps).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def plain_next_step(directory: Path, steps: int, every: int) -> list[float]:
    from dvclive import Live

    live = Live(dir=str(directory), dvcyaml=False, save_dvc_exp=False, report=None)
    times = []
    for step in range(1, steps + 1):
        started = time.perf_counter()
        live.log_metric("train/loss", 1.0 / step)
        if step % every == 0:
            live.log_metric("val/loss", 1.0 / step)
        live.next_step()
        times.append(time.perf_counter() - started)
    live.end()
    return times


def project_log(directory: Path, steps: int, every: int) -> list[float]:
    from src.training.live import DVCLiveLog

    log = DVCLiveLog(directory)
    metrics = {f"val_{name}": 0.5 for name in ("loss", "accuracy", "macro_recall", "macro_f1")}
    times = []
    for step in range(1, steps + 1):
        started = time.perf_counter()
        log.log_step(step, 1.0 / step)
        if step % every == 0:
            log.log_epoch(step, step // every, metrics)
        times.append(time.perf_counter() - started)
    log.close()
    return times


def summary(times: list[float], every: int) -> dict:
    return {
        "ms_per_step": round(1000 * sum(times) / len(times), 3),
        "ms_per_step_last": round(1000 * sum(times[-every:]) / len(times[-every:]), 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dvclive_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--every", type=int, default=500, help="steps per epoch")
    args = parser.parse_args(argv)
    report = {"steps": args.steps, "steps_per_epoch": args.every}
    with tempfile.TemporaryDirectory() as scratch:
        for name, run in (("next_step_per_step", plain_next_step), ("dvclive_log", project_log)):
            report[name] = summary(run(Path(scratch) / name, args.steps, args.every), args.every)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

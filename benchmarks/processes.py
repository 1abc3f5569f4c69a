"""A benchmark's runs, each in a fresh process timed from launch to exit."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def timed_run(command: list[str], cwd: Path, label: str, env: dict | None = None) -> tuple[float, str]:
    """(wall seconds, stdout) of ``command``; a failure ends the benchmark with one ``error:`` line and the
    run's stderr."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"error: {label} failed:\n{done.stderr[-4000:]}")
    return wall, done.stdout

"""CPU threads without the user setting variables: idle OpenMP threads spin briefly, then sleep (set before
torch loads), torch uses the cores this process may run on, shared among torchrun's processes on the machine."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from src.core.runtime import available_cpu_cores, use_all_cpu_cores
from tests.fixtures import REPO

PROBE = "import src, os, torch; print(os.environ['GOMP_SPINCOUNT'], os.environ['KMP_BLOCKTIME'])"


def probe(**env) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env={**environment, **env}, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_importing_the_package_makes_idle_openmp_threads_spin_briefly_then_sleep_unless_the_user_says_otherwise():
    assert probe() == "10000 1"
    assert probe(GOMP_SPINCOUNT="300000", KMP_BLOCKTIME="200") == "300000 200"


@pytest.mark.parametrize(("workers", "share"), [(None, 1), ("1", 1), ("2", 2), ("64", None)])
def test_threads_are_the_cores_available_shared_among_torchruns_processes(monkeypatch, workers, share):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    if workers is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", workers)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))  # a machine (or taskset) of 8 cores
    threads = torch.get_num_threads()
    try:
        use_all_cpu_cores()
        assert available_cpu_cores() == 8
        assert torch.get_num_threads() == (8 // share if share else 1)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's setting wins: torch is left as it is
        torch.set_num_threads(5)
        use_all_cpu_cores()
        assert torch.get_num_threads() == 5
    finally:
        torch.set_num_threads(threads)

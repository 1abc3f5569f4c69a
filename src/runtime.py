"""Process-wide set-up shared by the training and evaluation entry points: CPU threads and seeds."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def use_all_cpu_cores() -> None:
    """All cores for torch unless OMP_NUM_THREADS says otherwise.

    On a CPU shared with other jobs, OMP_NUM_THREADS=1 is much faster: oversubscribed OpenMP
    threads spin-wait on each other (measured 8x slower with 2 threads here).
    """
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(os.cpu_count() or 1)


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch (CPU and CUDA) random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too

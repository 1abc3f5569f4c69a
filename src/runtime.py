"""Process-wide set-up shared by the training and evaluation entry points: CPU threads, seeds, OOM."""
from __future__ import annotations

import contextlib
import functools
import os
import random
from typing import Any, Callable, Iterator

import numpy as np
import torch

from src.errors import PipelineError
from src.training.trainer import evaluate


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


def _raised_in(exc: BaseException, function) -> bool:
    """Whether ``function`` is on the traceback of ``exc``."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is function.__code__:
            return True
        tb = tb.tb_next
    return False


def _lower_batch_size(key: str, value: int | list[int]) -> str:
    """Advice naming ``key``; a list is a tuning search space of batch sizes."""
    largest = max(value) if isinstance(value, list) else value
    if largest <= 1:
        return f"{key} is already 1: lower max_length, use a smaller model_name or a larger GPU"
    if isinstance(value, list):
        return f"{key} = {value} holds sizes too large for this GPU: keep sizes up to {largest // 2}"
    return f"{key} = {value} is too large for this GPU: try {key}={largest // 2}"


@contextlib.contextmanager
def explain_out_of_memory(key: str, value: int | list[int], eval_key: str | None = None,
                          eval_value: int | None = None) -> Iterator[None]:
    """Turn a GPU out-of-memory error into a PipelineError naming the batch size to lower.

    With ``eval_key``, an OOM raised inside validation (``src.training.trainer.evaluate``) names
    the evaluation batch size instead.
    """
    try:
        yield
    except torch.OutOfMemoryError as exc:
        if eval_key is not None and _raised_in(exc, evaluate):
            key, value = eval_key, eval_value
        raise PipelineError(f"out of GPU memory: {_lower_batch_size(key, value)}") from None


def _lookup(params: dict, dotted_keys: tuple[str, ...]) -> tuple[str, Any]:
    """The first of ``dotted_keys`` present in ``params``, with its value."""
    for dotted in dotted_keys:
        node = params
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            return dotted, node
    raise KeyError(dotted_keys)


def out_of_memory_names(batch_size_keys: tuple[str, ...], eval_key: str | None = None):
    """Decorate a stage's ``main(params)`` with ``explain_out_of_memory`` on its batch-size keys.

    ``batch_size_keys``: where the training batch size comes from, the first one present wins
    (tune: the search space when it searches batch sizes, else the top-level ``batch_size``).
    """
    def decorate(main: Callable[[dict], None]) -> Callable[[dict], None]:
        @functools.wraps(main)
        def run(params: dict) -> None:
            key, value = _lookup(params, batch_size_keys)
            eval_value = _lookup(params, (eval_key,))[1] if eval_key else None
            with explain_out_of_memory(key, value, eval_key, eval_value):
                main(params)
        return run
    return decorate

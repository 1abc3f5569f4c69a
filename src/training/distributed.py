"""Data-parallel training under torchrun: joining the process group, who writes, and the few
collectives the engine needs besides DDP's gradient all-reduce.

torchrun starts the processes and tells each one its place through environment variables (RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, ...). Without a process group (``python -m stages.train_bert``,
the tests, tune, or torchrun with one process) every helper here answers "one process, rank 0"
and the engine runs exactly as it does without torchrun.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from src.core.errors import PipelineError

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h


# ---- where this process stands -----------------------------------------------------------------------
def is_distributed() -> bool:
    """True in a process group of two or more processes."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main_process() -> bool:
    """Rank 0: the one process that writes checkpoints, metrics, plots and the export, and logs."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ and "LOCAL_RANK" in os.environ


# ---- joining and leaving ----------------------------------------------------------------------------------
@contextlib.contextmanager
def process_group(device: torch.device, timeout_s: float = 600.0) -> Iterator[torch.device]:
    """Join torchrun's process group for the block and yield this process's device.

    NCCL with one GPU per process (``cuda:LOCAL_RANK``) when ``device`` is CUDA, gloo on CPU.
    ``timeout_s`` bounds every collective: a rank that hangs (or a node that vanished) ends the run
    with an error after that long instead of blocking it forever. Outside torchrun, or with one
    process, nothing is set up and ``device`` comes back unchanged.
    """
    if launched_by_torchrun():
        _stop_with_the_launcher()
    if not launched_by_torchrun() or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        try:
            yield device
        except KeyboardInterrupt:
            if launched_by_torchrun():
                _ignore_further_interrupts()
            raise
        return
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise PipelineError(
                f"distributed.nproc_per_node = {os.environ.get('LOCAL_WORLD_SIZE')}: this machine "
                f"has {torch.cuda.device_count()} GPU(s); start one process per GPU"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend, timeout=datetime.timedelta(seconds=timeout_s), device_id=device if device.type == "cuda" else None
    )
    if not is_main_process():  # one log for the run, rank 0's; the others show only their errors
        logging.getLogger().setLevel(logging.ERROR)
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers is imported
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    log.info("data-parallel: %d processes (%s), this is rank %d on %s", world_size(), backend, rank(), device)
    try:
        yield device
    except KeyboardInterrupt:  # SIGINT / SIGTERM (from torchrun, or torchrun's death): already stopping
        _ignore_further_interrupts()
        raise
    except RuntimeError as exc:
        if not isinstance(exc, dist.DistError) and "gloo" not in str(exc) and "NCCL" not in str(exc):
            raise
        # a collective failed: another rank died (it reports its own error) or hung
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f"rank {rank()}/{world_size()}"
        if "timed out" in str(exc).lower():
            raise PipelineError(
                f"{where}: a collective waited longer than distributed.timeout_s = {timeout_s:g} s; "
                f"another process of this run hung ({detail})"
            ) from None
        raise PipelineError(
            f"{where}: stopped because another process of this run failed (its error is above): {detail}"
        ) from None
    finally:
        dist.destroy_process_group()


def signal_when_parent_dies(signum: int, parent_pid: int) -> bool:
    """Linux: ask the kernel to send ``signum`` to this process when its parent, ``parent_pid``, dies
    (PR_SET_PDEATHSIG), so that a SIGKILLed launcher leaves no process training, and writing, on its own.

    Returns False when the parent is gone already: it died before the request took effect, so the
    signal will never come and the caller must stop itself. Elsewhere than on Linux only that check.
    """
    if sys.platform.startswith("linux"):
        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
            log.warning(
                "could not ask for %s when the parent process dies (prctl errno %d)",
                signal.Signals(signum).name,
                ctypes.get_errno(),
            )
    return os.getppid() == parent_pid


def _stop_with_the_launcher() -> None:
    """SIGTERM this process when torchrun dies.

    torchrun forwards SIGINT / SIGTERM to its workers, but a SIGKILL (the OOM killer, `kill -9` on
    `dvc repro`'s stage) ends torchrun alone and would leave the workers training, and writing, on
    their own. With the parent-death signal they stop like after a SIGTERM: a save in progress
    completes, and the next `dvc repro` resumes from the last checkpoint.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()  # 1 already: torchrun died and init adopted this process
    if parent == 1 or not signal_when_parent_dies(signal.SIGTERM, parent):
        os.kill(os.getpid(), signal.SIGTERM)  # torchrun died before the request took effect


def _ignore_further_interrupts() -> None:
    """Once a worker is stopping, a second SIGTERM (torchrun's, after its own) must not interrupt
    the exit itself: that would only add tracebacks from atexit handlers."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def main_process_first(function: Callable) -> Callable:
    """Run ``function`` on rank 0 first; the other ranks start it once rank 0 has finished (resume:
    rank 0 cleans the checkpoint directory up, the others then read the same files it kept)."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        if not is_distributed():
            return function(*args, **kwargs)
        if not is_main_process():
            dist.barrier()
        try:
            return function(*args, **kwargs)
        finally:
            if is_main_process():
                dist.barrier()

    return run


# ---- collectives ------------------------------------------------------------------------------------------
def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """``values`` summed over the ranks (a new tensor on ``values``' device); itself with one process."""
    if not is_distributed():
        return values
    summed = values.detach().to(_collective_device(), copy=True)
    dist.all_reduce(summed)
    return summed.to(values.device)


def gather_objects(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (picklable objects; small ones)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def check_same_run(fingerprint: dict | None) -> None:
    """Every rank reads its own params.yaml, data and code (on other machines, other copies): they
    must be rank 0's (the run fingerprints agree), or the ranks would train different runs in step."""
    from src.checkpoints.resume import describe_change

    reason = describe_change(gather_objects(fingerprint)[0], fingerprint)
    if reason is not None:
        raise PipelineError(f"rank {rank()} does not train what rank 0 trains: {reason}")


def epoch_seed(base_seed: int, epoch: int) -> int:
    """The torch seed of one rank's epoch: a function of (seed, epoch, rank) only, so a run resumed
    at an epoch boundary draws the same dropout masks on every rank as an uninterrupted one."""
    return int(np.random.SeedSequence([base_seed, epoch, rank()]).generate_state(1)[0])

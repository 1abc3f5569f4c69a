"""Workers beyond the one process: worker processes on this machine, and workers on other machines
that join a search kept in a database.

``run_search`` starts ``tune.workers`` processes, each running ``src.tuning.search.run_worker`` on
the shared storage. ``join_search`` runs more of them on another machine (``python -m stages.tune
--worker``). ``finish_search`` is what the machine that started the search does once its own workers
stop: it waits for the trials still running elsewhere, re-runs those whose machine stopped sending
heartbeats (failed and queued again by the storage), and fetches the best trial's directory from the
artifact store when another machine trained it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from typing import Any

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from src.core.errors import PipelineError
from src.core.secrets import configure_logging
from src.training.distributed import signal_when_parent_dies
from src.tuning.results import trained_trials
from src.tuning.search import Search, make_search, run_worker
from src.tuning.storage import check_artifact_store, fail_stale_trials, fetch_trial_dir

log = logging.getLogger(__name__)


class Progress:
    """A tqdm bar over the search's trained trials: drawn on a terminal, silent in a log (disable=None)."""

    def __init__(self, n_trials: int):
        self.bar = tqdm(total=n_trials, desc="tune", unit="trial", disable=None)

    def update(self, study: optuna.Study) -> None:
        self.bar.n = len(trained_trials(study))
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def worker_count(workers: int, n_trials: int) -> int:
    """``tune.workers``, capped (saying so) at one per trial and one per CPU core this process may use:
    more would only start processes that find no trial left, or fight over the cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    capped = max(1, min(workers, n_trials, cores))
    if capped < workers:
        log.warning(
            "tune.workers = %d: running %d worker(s) (at most one per trial, tune.n_trials = %d, and one "
            "per CPU core, %d here)",
            workers,
            capped,
            n_trials,
            cores,
        )
    return capped


def worker_devices(device: str, workers: int) -> list[str]:
    """Worker i gets ``cuda:(i % GPUs)`` when ``device`` is ``cuda``/``auto`` on a GPU machine; an
    explicit ``cuda:K`` or ``cpu`` is shared by all workers."""
    import torch

    from src.core.runtime import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is None:
        return [f"cuda:{i % torch.cuda.device_count()}" for i in range(workers)]
    return [str(resolved)] * workers


def _worker_process(
    search: Search, run_trial, device: str, worker: int, adopt: list[int], threads: int | None, parent_pid: int
) -> None:
    # a SIGKILLed tune must not leave workers writing into its output directory
    if not signal_when_parent_dies(signal.SIGKILL, parent_pid):
        os._exit(1)
    configure_logging()  # as logging.basicConfig, a URL's password redacted
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    run_worker(search, run_trial, device, worker, adopt)


def run_search(
    search: Search, run_trial, device: str, workers: int, adopt: list[int] = (), progress: Progress | None = None
) -> None:
    """Run the search with ``workers`` processes (one: in this process). Worker i first trains
    ``adopt[i::workers]`` (interrupted trials), then takes the next trial from the shared study
    until the search is done; a failed worker fails the search. ``progress`` follows the trials."""
    workers = worker_count(workers, search.n_trials)
    devices = worker_devices(device, workers)
    if workers == 1:
        run_worker(search, run_trial, devices[0], 0, list(adopt), progress.update if progress else None)
        return
    # CPU workers split the cores unless OMP_NUM_THREADS says otherwise
    threads = (
        None if "OMP_NUM_THREADS" in os.environ or devices[0] != "cpu" else max(1, (os.cpu_count() or 1) // workers)
    )
    context = multiprocessing.get_context("spawn")  # no forked CUDA or OpenMP state
    processes = [
        context.Process(
            target=_worker_process,
            name=f"tune-worker-{i}",
            args=(search, run_trial, devices[i], i, list(adopt[i::workers]), threads, os.getpid()),
        )
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    study = search.open() if progress else None
    try:
        for process in processes:
            while process.is_alive():
                process.join(timeout=2)
                if study is not None:
                    progress.update(study)
    finally:
        for process in processes:  # an interrupted tune stops its workers too
            if process.is_alive():
                process.terminate()
                process.join()
    failed = [f"{p.name} exited {p.exitcode}" for p in processes if p.exitcode != 0]
    if failed:
        raise PipelineError(f"tune: {', '.join(failed)} (see its log above); rerun to resume the search")


def join_search(
    train_loader,
    val_loader,
    output_dir: str | os.PathLike,
    hyperparameters,
    device: str = "auto",
    *,
    workers: int = 1,
    **options: Any,
) -> None:
    """Run ``workers`` more workers for the search that ``tune`` (same arguments) started in the RDB
    ``storage``; each trial's directory is written here, under ``output_dir``."""
    if options.get("storage") is None:
        raise PipelineError(
            "tune.storage = null: a worker on another machine needs an RDB URL that every machine "
            "reaches (e.g. postgresql://user@host/optuna)"
        )
    if options.get("artifact_store") is None:
        raise PipelineError(
            "tune.artifact_store = null: a worker on another machine needs a directory every machine reaches "
            "(e.g. an NFS mount), where its trials' models go for the machine that runs evaluate"
        )
    check_artifact_store(options["artifact_store"])
    search, trainer, _ = make_search(train_loader, val_loader, output_dir, hyperparameters, **options)
    try:
        search.open()
    except KeyError:
        raise PipelineError(
            f"no study {search.name} in tune.storage: start the search first (dvc repro tune), "
            "with the same params, data and code"
        ) from None
    run_search(search, trainer, device, workers)


def finish_search(
    study: optuna.Study, search: Search, run_trial, device: str, workers: int, progress: Progress | None = None
) -> None:
    """With a database: wait until no trial runs or waits anywhere, running here the trials queued
    again after their machine stopped sending heartbeats; then bring the best trial's directory
    here from the artifact store if another machine trained it. Nothing to do with the journal."""
    if search.storage is None:
        return
    waited = False
    while True:
        fail_stale_trials(study)  # a trial without a heartbeat for grace_s: failed and queued again
        unfinished = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
        if not unfinished:
            break
        if any(t.state == TrialState.WAITING for t in unfinished):
            run_search(search, run_trial, device, workers, progress=progress)
            continue
        if not waited:
            log.info(
                "waiting for trial(s) %s, running on other machines",
                ", ".join(str(t.number) for t in unfinished),
            )
            waited = True
        if progress is not None:
            progress.update(study)
        time.sleep(min(search.heartbeat_s, 5))
    if any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        best = study.best_trial
        fetch_trial_dir(search.artifact_store, best, search.output_dir / f"config_{best.number}")

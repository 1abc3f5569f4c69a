"""Launch a training stage, after checking what can be checked first: in this process for one process on
one machine, under torchrun's elastic agent for more.

    python -m src.launch stages.train_bert      (dvc.yaml's cmd for train_bert and train_lstm)
    python -m src.launch SCRIPT.py ARGS...      (a script instead of a module, as torchrun takes)

Before any process starts: params.yaml is loaded and validated (a bad param is one ``error:`` line,
not one per rank followed by the launcher's report), and the process layout in ``distributed`` is
checked against this machine: ``nproc_per_node`` processes need as many GPUs (CUDA) or CPU cores
(gloo), and several machines need a rendezvous endpoint the others can reach. The rendezvous waits
at most ``distributed.timeout_s`` for the other machines.

One process on one machine (``distributed``'s default) needs no agent, rendezvous or second
interpreter: the stage runs here, as ``python -m stages.X`` would run it, with the same exit status
and signals (4 s less per run on a 2-core CPU: torch is imported once, no worker process starts;
docs/decisions.md). Several processes run under the agent: when a process fails, its own
``error:`` line (already on stderr) is the message; the launcher adds a line only when a process died
without one (killed by a signal), and never prints a traceback. The processes stop with the launcher
(src/training/distributed.py sets their parent-death signal).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time

from src.core.cli import pipeline_errors_exit
from src.core.containment import check_declared_paths
from src.core.errors import PipelineError
from src.core.params import load_params

# torch's launcher logs each failure (and its traceback) itself; the child's own line says it better
LOG_DIR_PREFIX = "sentiment-launch-"  # + the launcher's PID + "-": torchrun's log directory for one launch
LAUNCHER_LOGGERS = ("torch.distributed.elastic", "torch.distributed.launcher", "torch.distributed.run")


def cpu_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_layout(distributed: dict, device: str) -> None:
    """A PipelineError when this machine cannot host ``distributed``'s processes, or other machines
    could not find the rendezvous."""
    import torch

    nproc, nnodes = distributed["nproc_per_node"], distributed["nnodes"]
    gpus = torch.cuda.device_count() if device != "cpu" else 0
    if device == "cuda" and gpus == 0:
        return  # the stage itself reports "cuda without a GPU", naming its key
    if gpus and nproc > gpus:
        raise PipelineError(
            f"distributed.nproc_per_node = {nproc}: this machine has {gpus} GPU(s); "
            f"start at most one process per GPU (nproc_per_node <= {gpus})"
        )
    if not gpus and nproc > cpu_cores():
        raise PipelineError(
            f"distributed.nproc_per_node = {nproc}: this machine has {cpu_cores()} CPU core(s) and "
            f"no GPU; start at most one process per core (nproc_per_node <= {cpu_cores()})"
        )
    host, _, port = distributed["rdzv_endpoint"].rpartition(":")
    if nnodes > 1 and int(port) == 0:
        raise PipelineError(
            f"distributed.nnodes = {nnodes} with distributed.rdzv_endpoint = "
            f"{distributed['rdzv_endpoint']}: expected a host:port with a fixed port that the other "
            "machines reach (port 0 picks a free port only this machine knows)"
        )


def check_port_free(distributed: dict) -> None:
    """A PipelineError when the rendezvous port is on this machine and another program holds it.

    torch's store would otherwise connect to that program as if it were the rendezvous and wait on it
    until the port is freed. An endpoint on another machine (its address cannot be bound here) or
    port 0 (a free port, chosen by torch) is left to torch."""
    host, _, port = distributed["rdzv_endpoint"].rpartition(":")
    if int(port) == 0:
        return
    try:
        family, _, _, _, address = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError):
        return  # torch names a host that does not resolve
    for bind_to in (address, ("", int(port))):  # this machine's address, then every address as torch's store binds
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the store does: TIME_WAIT is free
            try:
                probe.bind(bind_to)
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:
                    return  # the endpoint is another machine's
                if exc.errno == errno.EADDRINUSE:
                    raise PipelineError(
                        f"distributed.rdzv_endpoint = {distributed['rdzv_endpoint']}: port {port} is in use by "
                        "another program on this machine; choose a free port (or localhost:0 on a single machine: "
                        "a free port is picked)"
                    ) from None
                return


def torchrun_args(distributed: dict, target: list[str]) -> list[str]:
    """torchrun's command line for ``target`` (a module, or a script and its arguments)."""
    timeout = max(1, int(distributed["timeout_s"]))
    args = [
        f"--nnodes={distributed['nnodes']}",
        f"--nproc-per-node={distributed['nproc_per_node']}",
        f"--rdzv-backend={distributed['rdzv_backend']}",
        f"--rdzv-endpoint={distributed['rdzv_endpoint']}",
        # how long to wait for the other machines: c10d reads join_timeout, static reads timeout
        f"--rdzv-conf=join_timeout={timeout},timeout={timeout}",
    ]
    return args + (target if target[0].endswith(".py") else ["-m", *target])


def _describe_failure(error) -> str | None:
    """A line for a process that died without saying why (a signal); None when it printed its error."""
    rank, failure = error.get_first_failure()
    if failure.exitcode >= 0:
        return None
    name = failure.signal_name()
    hint = (
        " (the out-of-memory killer sends SIGKILL: lower the batch size or nproc_per_node)" if name == "SIGKILL" else ""
    )
    return f"{error.name}: process of rank {rank} was killed by {name}{hint}"


def run_here(target: list[str]) -> None:
    """Run ``target`` (a module or a script, and its arguments) in this process, as ``python -m`` would."""
    import runpy

    name, *arguments = target
    sys.argv = [name, *arguments]
    if name.endswith(".py"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(name)))
        runpy.run_path(name, run_name="__main__")
    else:
        runpy.run_module(name, run_name="__main__", alter_sys=True)


def remove_stale_log_dirs(parent: str | None = None) -> list[str]:
    """Remove the log directories of launchers that no longer run (killed with SIGKILL, so their own
    cleanup never ran): ours by name, by owner and by a dead PID, never a link. The removed paths."""
    parent = parent or tempfile.gettempdir()
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        match = re.fullmatch(re.escape(LOG_DIR_PREFIX) + r"(\d{1,10})-\w+", entry.name)
        if (
            not match
            or not entry.is_dir(follow_symlinks=False)
            or entry.stat(follow_symlinks=False).st_uid != os.getuid()
        ):
            continue
        try:
            os.kill(int(match[1]), 0)
            continue  # that launcher still runs
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue  # alive under another user, or no such PID can exist
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.path)
    return removed


def launch(target: list[str], params_path: str = "params.yaml") -> int:
    """Validate, then run ``target`` (here, or under torchrun for several processes); the exit status of
    the first failed process (0 if none)."""
    params = load_params(params_path)
    # before any process starts: no declared input or output of the stage is (under) a link out of the repository
    module = target[0].removesuffix(".py").replace("/", ".") if target[0].endswith(".py") else target[0]
    check_declared_paths(module, target[1:], params)
    device = params["bert"]["device"] if any("train_bert" in part for part in target) else "auto"
    check_layout(params["distributed"], device)
    check_port_free(params["distributed"])
    if params["distributed"]["nnodes"] == 1 and params["distributed"]["nproc_per_node"] == 1:
        run_here(target)
        return 0
    from torch.distributed.run import config_from_args, parse_args

    for name in LAUNCHER_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if "OMP_NUM_THREADS" not in os.environ:  # torchrun would give each process 1 thread: give it its share
        os.environ["OMP_NUM_THREADS"] = str(max(1, cpu_cores() // params["distributed"]["nproc_per_node"]))
    # torchrun's logs and error files go to a directory of ours, removed afterwards (its own default is a
    # torchelastic_* directory in /tmp that is never removed); a SIGKILLed launcher's is removed next time
    remove_stale_log_dirs()
    prefix = f"{LOG_DIR_PREFIX}{os.getpid()}-"
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as log_dir:
        args = parse_args([f"--log-dir={log_dir}", *torchrun_args(params["distributed"], target)])
        if args.master_port is None:  # as torchrun's run() does
            args.master_port = 29500
        config, entrypoint, entry_args = config_from_args(args)
        return _run_agent(config, entrypoint, entry_args, params["distributed"])


def _run_agent(config, entrypoint, entry_args, distributed: dict) -> int:
    """Run torch's elastic agent; the exit status of the first failed process (0 if none)."""
    from torch.distributed import DistError
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous import RendezvousError
    from torch.distributed.launcher.api import elastic_launch

    started = time.monotonic()
    try:
        elastic_launch(config=config, entrypoint=entrypoint)(*entry_args)
    except ChildFailedError as exc:
        message = _describe_failure(exc)
        if message is not None:
            print(f"error: {message}", file=sys.stderr)
            return 1
        return exc.get_first_failure()[1].exitcode or 1
    except SignalException as exc:  # SIGTERM / SIGINT: the agent has stopped the processes, which said so
        return 128 + int(exc.sigval)
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except (RendezvousError, DistError) as exc:  # a rendezvous that does not answer, machines that never join
        # torch's store errors carry C++ stack frames after "Exception raised from": the first line says it
        detail = " ".join(str(exc).split("Exception raised from")[0].split())[:300] or type(exc).__name__
        raise PipelineError(
            f"distributed.rdzv_endpoint = {distributed['rdzv_endpoint']}: the rendezvous of "
            f"{distributed['nnodes']} machine(s) did not complete within distributed.timeout_s"
            f" = {distributed['timeout_s']:g} s (gave up after {time.monotonic() - started:.0f} s: {detail})"
        ) from None
    return 0


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv  # the `sentiment-launch` console script passes none
    usage = "usage: python -m src.launch MODULE | SCRIPT.py [ARGS...]"
    if argv and argv[0] in ("-h", "--help"):  # the launcher's own help; `MODULE --help` reaches MODULE
        print(f"{usage}\n\n{(__doc__ or '').strip()}")
        sys.exit(0)
    if not argv or argv[0].startswith("-"):
        print(usage, file=sys.stderr)
        sys.exit(2)
    with pipeline_errors_exit():
        sys.exit(launch(argv))


if __name__ == "__main__":
    main(sys.argv[1:])

"""Entry point shared by every stage script: load + validate params, run, turn errors into exit codes."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from src.core.containment import check_declared_paths, running_module
from src.core.errors import PipelineError
from src.core.interrupts import install_interrupt_handlers
from src.core.params import load_params
from src.core.secrets import configure_logging, redact

# OSErrors that mean "this path cannot be written (or read) as it stands": a user fixes them
# (permissions, a read-only mount, a file where a directory belongs), so one line, not a traceback.
_PATH_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENAMETOOLONG,
    errno.ELOOP,
}


def path_error_message(exc: OSError) -> str | None:
    """``PATH: what went wrong`` for an OSError about a path the user can fix, else None."""
    if exc.errno not in _PATH_ERRNOS or exc.filename is None:
        return None
    path = Path(str(exc.filename))
    if path.name.startswith(".") and path.name.endswith(".tmp"):  # atomic_open's temp file: name the directory
        path = path.parent
    if exc.errno in {errno.ENOTDIR, errno.EEXIST}:  # name the file that stands where a directory belongs
        path = next((p for p in [path, *path.parents] if p.is_file()), path)
        if path.is_file():
            return f"{path}: a file is where a directory belongs"
    hint = {
        errno.EACCES: "check its permissions",
        errno.EPERM: "check its permissions",
        errno.EROFS: "it is on a read-only file system",
    }.get(exc.errno)
    return f"{path}: {exc.strerror}" + (f" ({hint})" if hint else "")


@contextlib.contextmanager
def pipeline_errors_exit() -> Iterator[None]:
    """A PipelineError (bad params, bad data, failed download) prints one ``error: …`` line and
    exits 1: no traceback for problems the user fixes. So does an OSError naming a path that cannot
    be written (permissions, a read-only file system, a file where a directory should be).
    Shared by the stages and the CLIs."""
    try:
        yield
    except PipelineError as exc:
        print(redact(f"error: {exc}"), file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        message = path_error_message(exc)
        if message is None and exc.errno in (errno.ENOSPC, errno.EDQUOT):  # a write that names no file
            message = f"{exc.strerror} while writing; free space and run again"
        if message is None:
            raise
        print(redact(f"error: {message}"), file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        if not _from_dvc(exc):
            raise
        # DVC's own (a .dvc/config it cannot read, an experiment name it refuses): its words, one line
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        print(redact(f"error: DVC: {detail}"), file=sys.stderr)
        sys.exit(1)


def _from_dvc(exc: BaseException) -> bool:
    """An exception of DVC or its git layer (dvc, dvc_data, scmrepo), which say what is wrong."""
    return type(exc).__module__.split(".")[0] in ("dvc", "dvc_data", "dvc_objects", "scmrepo")


def print_lines(lines: Iterable[str]) -> None:
    """Write a CLI's results to stdout. A closed stdout or a reader that went away (broken pipe) is a
    PipelineError, so results are never lost silently nor end in a traceback."""
    if sys.stdout is None:
        raise PipelineError("<stdout>: closed; nothing was written (redirect it to a file instead)")
    try:
        for line in lines:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that flush cannot fail too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise PipelineError("<stdout>: the reader closed it (broken pipe); not every result was written") from None


def positive_int_option(value: str, option: str) -> int:
    """A command-line option that must be an integer >= 1 (``--batch-size``); else a PipelineError."""
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise PipelineError(f"{option} = {value!r}: expected a whole number >= 1")
    return int(value)


def run_command(work: Callable[[], None]) -> None:
    """Run a command line's ``work()``: logging to stderr, a PipelineError as one ``error: …`` line
    (exit 1), Ctrl-C (SIGINT) exit 130 and SIGTERM 143 with one line saying what was saved."""
    configure_logging()  # as logging.basicConfig, a URL's password redacted
    install_interrupt_handlers()
    try:
        with pipeline_errors_exit():
            work()
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        detail = f": {exc}" if str(exc) else ""
        print(f"interrupted by {signal.Signals(signum).name}{detail}", file=sys.stderr)
        sys.exit(128 + signum)


def answer_help(argv: list[str], usage: str) -> None:
    """``-h``/``--help`` among ``argv``: print ``usage`` and exit 0, doing nothing else."""
    if "-h" in argv or "--help" in argv:
        print(usage)
        sys.exit(0)


def stage_usage() -> str:
    """The running stage's usage: ``python -m stages.NAME`` and its module docstring."""
    name, doc = _stage_name_and_doc()
    return (
        f"usage: python -m {name}\n\n{doc}\n\n"
        "Reads params.yaml (run from the repository root); `dvc repro` runs it as a stage of dvc.yaml."
    )


def _stage_name_and_doc() -> tuple[str, str]:
    """The running stage's module name and docstring."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = spec.name if spec is not None else Path(sys.argv[0]).stem
    return name, (getattr(main, "__doc__", None) or "").strip()


def parse_stage_argv(argv: list[str], flags: Sequence[str] = ()) -> argparse.Namespace:
    """Parse a stage's command line: ``--help`` and the on/off ``flags`` it takes, nothing else.

    An unknown flag or a stray argument is a usage error (exit 2) before anything is read or written:
    a stage that ran anyway once rewrote data/processed for `--bogus`.
    """
    name, doc = _stage_name_and_doc()
    parser = argparse.ArgumentParser(
        prog=f"python -m {name}",
        description=doc,
        epilog="Reads params.yaml (run from the repository root); `dvc repro` runs it as a stage of dvc.yaml.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for flag in flags:
        parser.add_argument(flag, action="store_true")
    return parser.parse_args(argv)


def run_stage(
    main: Callable[[dict], None],
    params_path: str = "params.yaml",
    *,
    argv: Sequence[str] | None = None,
    flags: Sequence[str] = (),
) -> None:
    """Validate params.yaml, then call ``main(params)``; ``--help`` prints the stage's usage instead.

    ``argv`` (a stage's ``sys.argv[1:]``) may hold ``--help`` and ``flags`` only (argparse: anything
    else exits 2, nothing written); None is for a caller that parsed its own arguments already.
    A PipelineError (bad params, bad data, failed download) prints one clear message and exits 1:
    no traceback for problems the user fixes. Ctrl-C (SIGINT) exits 130 and SIGTERM 143, with one
    line saying what was saved (training: the last checkpoint, from which a rerun resumes).
    """
    if argv is not None:
        parse_stage_argv(list(argv), flags)
    else:
        answer_help(sys.argv[1:], stage_usage())

    def work() -> None:
        params = load_params(params_path)
        # before any work: no declared input or output is (under) a link out of the repository
        check_declared_paths(running_module(), sys.argv[1:], params)
        main(params)

    run_command(work)

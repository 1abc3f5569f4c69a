"""Entry point shared by every stage script: load + validate params, run, turn errors into exit codes."""
from __future__ import annotations

import contextlib
import logging
import signal
import sys
from typing import Callable, Iterator

from src.errors import PipelineError
from src.interrupts import install_interrupt_handlers
from src.params import load_params


@contextlib.contextmanager
def pipeline_errors_exit() -> Iterator[None]:
    """A PipelineError (bad params, bad data, failed download) prints one ``error: …`` line and
    exits 1: no traceback for problems the user fixes. Shared by the stages and the CLIs."""
    try:
        yield
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


def run_stage(main: Callable[[dict], None], params_path: str = "params.yaml") -> None:
    """Validate params.yaml, then call ``main(params)``.

    A PipelineError (bad params, bad data, failed download) prints one clear message and exits 1:
    no traceback for problems the user fixes. Ctrl-C (SIGINT) exits 130 and SIGTERM 143, with one
    line saying what was saved (training: the last checkpoint, from which a rerun resumes).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    install_interrupt_handlers()
    try:
        with pipeline_errors_exit():
            params = load_params(params_path)
            main(params)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        detail = f": {exc}" if str(exc) else ""
        print(f"interrupted by {signal.Signals(signum).name}{detail}", file=sys.stderr)
        sys.exit(128 + signum)

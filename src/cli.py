"""Entry point shared by every stage script: load + validate params, run, turn errors into exit codes."""
from __future__ import annotations

import logging
import signal
import sys
from typing import Callable

from src.errors import PipelineError
from src.interrupts import install_interrupt_handlers
from src.params import load_params


def run_stage(main: Callable[[dict], None], params_path: str = "params.yaml") -> None:
    """Validate params.yaml, then call ``main(params)``.

    A PipelineError (bad params, bad data, failed download) prints one clear message and exits 1:
    no traceback for problems the user fixes. Ctrl-C (SIGINT) exits 130 and SIGTERM 143, with one
    line saying what was saved (training: the last checkpoint, from which a rerun resumes).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    install_interrupt_handlers()
    try:
        params = load_params(params_path)
        main(params)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        detail = f": {exc}" if str(exc) else ""
        print(f"interrupted by {signal.Signals(signum).name}{detail}", file=sys.stderr)
        sys.exit(128 + signum)

"""SIGINT / SIGTERM as an exception that unwinds the stack, and deferring them while a file is written.

Python's default SIGTERM handler ends the process on the spot; turned into ``Interrupted`` it
unwinds like Ctrl-C instead, so temp files are removed and the stage can say where its last
checkpoint is before exiting 128 + signal number (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``str()`` is what was saved before stopping (may be empty)."""

    def __init__(self, signum: int = signal.SIGINT, message: str = ""):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


def install_interrupt_handlers() -> None:
    """SIGINT and SIGTERM raise ``Interrupted`` in the main thread (the stage runner installs this)."""
    for signum in HANDLED:
        signal.signal(signum, _raise_interrupted)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT / SIGTERM until the block is done, then deliver them to the handlers in place before.

    Wrapped around checkpoint writes: a save is either not started or complete when the process
    stops. Only the main thread receives signals; elsewhere this is a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum)) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    if received:
        signal.raise_signal(received[0])

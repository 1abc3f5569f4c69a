"""Progress of a long loop: a tqdm bar on a terminal, a log line every minute in a log.

tqdm draws nothing when its output is not a terminal (``disable=None``), so `dvc repro` in CI, under
``nohup`` or piped to a file showed nothing for a whole train_bert epoch (17 min on a 2-core CPU).
There the same loop logs ``epoch 1: 1,200/5,692 batches (21%), 3m40s, about 13m40s left, loss=0.8123``
every PROGRESS_EVERY_S seconds.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 60.0


def progress(
    iterable: Iterable,
    desc: str,
    unit: str = "batch",
    enabled: bool = True,
    every_s: float | None = None,
) -> Any:
    """``iterable`` with progress: a tqdm bar when stderr is a terminal, else a LoggedProgress; nothing
    when not ``enabled`` (other ranks under torchrun). Each has ``set_postfix(**values)``."""
    if not enabled:
        return tqdm(iterable, disable=True)
    if sys.stderr is not None and sys.stderr.isatty():
        return tqdm(iterable, desc=desc, unit=unit, leave=False)
    return LoggedProgress(iterable, desc, unit, PROGRESS_EVERY_S if every_s is None else every_s)


class LoggedProgress:
    """Iterates ``iterable``, logging how far it got every ``every_s`` seconds (none for a short loop)."""

    def __init__(self, iterable: Iterable, desc: str, unit: str, every_s: float):
        self.iterable, self.desc, self.unit, self.every_s = iterable, desc, unit, every_s
        self.total = len(iterable) if hasattr(iterable, "__len__") else None
        self.postfix: dict[str, Any] = {}

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values

    def __iter__(self) -> Iterator:
        started = last = time.monotonic()
        for done, item in enumerate(self.iterable, 1):
            yield item
            now = time.monotonic()
            if now - last >= self.every_s:
                last = now
                log.info("%s", self.line(done, now - started))

    def line(self, done: int, elapsed: float) -> str:
        """``desc: done/total units (pct%), elapsed, about eta left, postfix``."""
        text = f"{self.desc}: {done:,}"
        if self.total:
            text += f"/{self.total:,} {self.unit}es" if self.unit.endswith("ch") else f"/{self.total:,} {self.unit}s"
            text += f" ({100 * done / self.total:.0f}%), {_duration(elapsed)}"
            text += f", about {_duration(elapsed / done * (self.total - done))} left"
        else:
            text += f" {self.unit}s, {_duration(elapsed)}"
        return text + "".join(f", {k}={v}" for k, v in self.postfix.items())


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"

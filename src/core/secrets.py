"""One rule for secrets in params: a URL's password is shown as ``***`` wherever params are printed.

A database URL such as ``postgresql://user:PASSWORD@host/db`` (``tune.storage``) carries its
password in its user-info part. :func:`redact` rewrites every such URL in a text, and
:func:`redact_params` every string of a params tree, so that an ``error:`` line, a log line or a
report names the URL without the password.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"
# scheme://user:password@ : the password is everything up to the last "@" before the host part
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]*:)(?P<secret>[^\s/]*)@")


def redact(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` URL replaced by ``***``."""
    return _USERINFO.sub(lambda m: f"{m['head']}{MASK}@", text)


def redact_params(value: Any) -> Any:
    """A copy of a params tree (dicts, lists, strings) with every string passed through :func:`redact`."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_params(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_params(v) for v in value)
    return value


class RedactingFormatter(logging.Formatter):
    """A logging formatter whose every line passes through :func:`redact` (a URL's password: ``***``)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging() -> None:
    """INFO lines to stderr, ``HH:MM:SS name: message``, with URL passwords redacted (every entry point)."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(handler)
        root.setLevel(logging.INFO)

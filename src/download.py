"""The project's one downloader: retries, resume, sha256 pinning, atomic writes, offline mirror.

Offline mirror: when ``$SENTIMENT_MIRROR`` names a directory, ``https://HOST/PATH`` is read from
``$SENTIMENT_MIRROR/HOST/PATH`` (the layout ``wget -x`` writes) when that file exists.

A full disk is an error naming the file: an HTTP download keeps its ``.part`` file, so the next
run resumes it once space is freed; a partial mirror copy is removed (copying starts over anyway).
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests
from tqdm import tqdm

from src.atomic import full_disk_reported
from src.checksum import sha256_of  # noqa: F401  (also src.download.sha256_of, as before)
from src.errors import DownloadError

log = logging.getLogger(__name__)

MIRROR_ENV = "SENTIMENT_MIRROR"
# Small chunks: a dropped connection loses at most the chunk in flight, the rest is resumed.
CHUNK_SIZE = 1 << 14
# Status codes worth another try; any other 4xx is final (a wrong URL does not get better).
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


def mirror_path(url: str, mirror: str | os.PathLike | None = None) -> Path | None:
    """Where ``url`` lives in the mirror (``MIRROR/HOST/PATH``), or None when no mirror is set."""
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    if not mirror:
        return None
    parts = urlsplit(url)
    return Path(mirror) / parts.netloc / parts.path.lstrip("/")


def _verify(path: Path, sha256: str | None, url: str) -> None:
    if sha256 is None:
        return
    actual = sha256_of(path)
    if actual.lower() != sha256.lower():
        path.unlink(missing_ok=True)
        raise DownloadError(f"{url}: sha256 mismatch (expected {sha256.lower()}, got {actual}); the file was removed")


class _TransferBroken(Exception):
    """The connection dropped or the body was short: resume from what we have."""


def _fetch_once(session: requests.Session, url: str, part: Path, timeout: float, progress: bool) -> None:
    """One HTTP attempt, appending to ``part`` from its current size (HTTP Range resume)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with session.get(url, stream=True, timeout=timeout, headers=headers) as response:
            if response.status_code == 416 and have:  # we already hold the whole body
                return
            if response.status_code in RETRYABLE_STATUS:
                raise _TransferBroken(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                raise DownloadError(f"{url}: HTTP {response.status_code} {response.reason}")
            if have and response.status_code != 206:  # server ignored Range: start again
                have = 0
            length = response.headers.get("Content-Length")
            expected = have + int(length) if length is not None else None
            mode = "ab" if have else "wb"
            with open(part, mode) as handle, tqdm(
                total=expected, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=Path(urlsplit(url).path).name, disable=not progress, leave=False,
            ) as bar:
                for chunk in response.iter_content(CHUNK_SIZE):
                    handle.write(chunk)
                    bar.update(len(chunk))
                handle.flush()
                os.fsync(handle.fileno())
            got = part.stat().st_size
            if expected is not None and got < expected:
                raise _TransferBroken(f"short body: {got} of {expected} bytes")
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise _TransferBroken(str(exc)) from exc


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    retries: int = 5,
    timeout: float = 30.0,
    backoff: float = 1.0,
    mirror: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Fetch ``url`` to ``dest`` and return ``dest``.

    The body goes to ``dest.part`` and is renamed onto ``dest`` only when complete and verified,
    so an interrupted download never leaves a file that looks complete; a later call resumes it.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")

    local = mirror_path(url, mirror)
    if local is not None and local.is_file():
        log.info("mirror hit: %s -> %s", local, dest)
        with full_disk_reported(dest, "the partial copy was removed", cleanup=lambda: part.unlink(missing_ok=True)):
            shutil.copyfile(local, part)
        _verify(part, sha256, url)
        os.replace(part, dest)
        return dest

    if urlsplit(url).scheme == "file":
        raise DownloadError(f"{url}: no such file")

    session = requests.Session()
    for attempt in range(retries + 1):
        try:
            with full_disk_reported(dest, f"{part} is kept and the next run resumes it (delete it to start over)"):
                _fetch_once(session, url, part, timeout, progress)
            break
        except _TransferBroken as exc:
            if attempt == retries:
                where = (
                    f"{MIRROR_ENV} has no copy at {local}" if local is not None else f"{MIRROR_ENV} is not set"
                )
                raise DownloadError(
                    f"could not download {url} after {retries + 1} attempts ({exc}). No network? {where}; "
                    f"point {MIRROR_ENV} at an offline mirror laid out as HOST/PATH "
                    f"(e.g. SENTIMENT_MIRROR=../shared/mirror)"
                ) from None
            wait = backoff * 2**attempt
            log.warning("%s: %s; retry %d/%d in %.1fs", url, exc, attempt + 1, retries, wait)
            time.sleep(wait)
    _verify(part, sha256, url)
    os.replace(part, dest)
    log.info("downloaded %s -> %s (%d bytes)", url, dest, dest.stat().st_size)
    return dest

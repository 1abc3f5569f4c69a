"""The project's one downloader: retries, resume, sha256 pinning, atomic writes, offline mirror.

Offline mirror: when ``$SENTIMENT_MIRROR`` names a directory, ``https://HOST/PATH`` is read from
``$SENTIMENT_MIRROR/HOST/PATH`` (the layout ``wget -x`` writes) when that file exists. A URL whose
host or path would lead out of the mirror (``..`` segments, percent-encoded or not) is refused.
A ``file://`` URL is a local file, copied like a mirror hit.

Containment: with ``within``, the destination must lie inside that directory (the stage's output).
With ``reuse``, a destination already downloaded from the same URL (and matching the pinned sha256)
is kept: switching ``glove.dimension`` extracts again without downloading the archive again.

A full disk is an error naming the file: an HTTP download keeps its ``.part`` file, so the next
run resumes it once space is freed; a partial mirror copy is removed (copying starts over anyway).
A ``.part`` is resumed only from the URL it came from (``X.part.source`` records it, with the
server's ETag / Last-Modified and length): one left by another URL is discarded, with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import requests
from tqdm import tqdm

from src.core.atomic import atomic_open, full_disk_reported
from src.core.errors import DownloadError, PipelineError
from src.core.paths import ensure_inside
from src.data.checksum import sha256_of  # noqa: F401  (also src.data.download.sha256_of, as before)

log = logging.getLogger(__name__)

MIRROR_ENV = "SENTIMENT_MIRROR"
# Small chunks: a dropped connection loses at most the chunk in flight, the rest is resumed.
CHUNK_SIZE = 1 << 14
# Status codes worth another try; any other 4xx is final (a wrong URL does not get better).
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


def _url_segments(url: str) -> list[str]:
    """The host and the percent-decoded path segments of ``url``; one that could leave a directory
    (``..``, ``.``, a decoded ``/`` or ``\\``, NUL) is a DownloadError naming the URL."""
    parts = urlsplit(url)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    for segment in [parts.netloc, *segments]:
        if segment in {".", ".."} or any(c in segment for c in "/\\\0"):
            raise DownloadError(
                f"{url}: the URL has a segment {segment!r} that would lead outside the mirror "
                "or destination; refusing it"
            )
    return [parts.netloc, *segments]


def mirror_path(url: str, mirror: str | os.PathLike | None = None) -> Path | None:
    """Where ``url`` lives in the mirror (``MIRROR/HOST/PATH``), or None when no mirror is set.

    The path never leaves the mirror: ``..`` segments (also as ``%2e%2e``) are refused, and so is a
    mirror file whose symlinks resolve outside it.
    """
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    if not mirror:
        return None
    root = Path(mirror).resolve()  # a relative mirror (../shared/mirror) may hold '..'; the URL's segments may not
    path = root.joinpath(*_url_segments(url))
    if path.exists():
        try:
            ensure_inside(path, root, MIRROR_ENV)
        except PipelineError as exc:
            raise DownloadError(f"{url}: {exc}") from None
    return path


def local_file(url: str) -> Path | None:
    """The local path of a ``file://`` URL (``file:///abs/path`` or ``file://localhost/...``), else None."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        return None
    if parts.netloc not in {"", "localhost"}:
        raise DownloadError(f"{url}: a file:// URL must name a local file (file:///path), not host {parts.netloc!r}")
    _url_segments(url)  # no '..' segments: the base URL is the directory files are read from
    return Path(url2pathname(parts.path))


def _verify(path: Path, sha256: str | None, url: str) -> None:
    if sha256 is None:
        return
    actual = sha256_of(path)
    if actual.lower() != sha256.lower():
        path.unlink(missing_ok=True)
        _part_record(path).unlink(missing_ok=True)
        raise DownloadError(f"{url}: sha256 mismatch (expected {sha256.lower()}, got {actual}); the file was removed")


class _TransferBroken(Exception):
    """The connection dropped or the body was short: resume from what we have."""


def _part_record(part: Path) -> Path:
    """Beside ``X.part``: where its bytes come from (URL, ETag, Last-Modified, full length), so that
    it is resumed only from the same source and version."""
    return part.with_name(part.name + ".source")


def _read_part_record(part: Path) -> dict:
    try:
        record = json.loads(_part_record(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def discard_foreign_part(part: Path, url: str) -> None:
    """Remove ``part`` (saying so) unless its record says it was downloaded from ``url``: resuming
    it from another source would splice two files into one."""
    if not part.exists():
        _part_record(part).unlink(missing_ok=True)
        return
    origin = _read_part_record(part).get("url")
    if origin != url:
        log.warning(
            "%s: discarding this partial download: it came from %s, not %s; downloading from the start",
            part,
            origin or "an unrecorded source",
            url,
        )
        part.unlink()
        _part_record(part).unlink(missing_ok=True)


def _start_part(part: Path, url: str, response: requests.Response) -> None:
    """Record where a new ``part`` comes from, before its first byte is written."""
    headers = response.headers
    length = headers.get("Content-Length")
    record = {
        "url": url,
        "etag": headers.get("ETag"),
        "last_modified": headers.get("Last-Modified"),
        "length": int(length) if length is not None and length.isdigit() else None,
    }
    with atomic_open(_part_record(part)) as handle:
        handle.write(json.dumps(record) + "\n")


def _resume_headers(have: int, record: dict) -> dict:
    """Range from ``have`` bytes; If-Range makes a server whose file changed since send it whole (200)."""
    headers = {"Range": f"bytes={have}-"}
    validator = (
        record.get("etag")
        if record.get("etag") and not str(record["etag"]).startswith("W/")
        else record.get("last_modified")
    )
    if validator:
        headers["If-Range"] = validator
    return headers


def _same_length(response: requests.Response, record: dict) -> bool:
    """A 206's total length (Content-Range: bytes a-b/TOTAL) is the recorded one, when both are known."""
    total = response.headers.get("Content-Range", "").rpartition("/")[2]
    return not (total.isdigit() and record.get("length") is not None and int(total) != record["length"])


def _fetch_once(session: requests.Session, url: str, part: Path, timeout: float, progress: bool) -> None:
    """One HTTP attempt, appending to ``part`` from its current size (HTTP Range resume) when ``part``
    comes from this URL and the server's file has not changed."""
    have = part.stat().st_size if part.exists() else 0
    record = _read_part_record(part) if have else {}
    headers = _resume_headers(have, record) if have else {}
    try:
        with session.get(url, stream=True, timeout=timeout, headers=headers) as response:
            if response.status_code == 416 and have:  # we already hold the whole body
                return
            if response.status_code in RETRYABLE_STATUS:
                raise _TransferBroken(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                raise DownloadError(f"{url}: HTTP {response.status_code} {response.reason}")
            if have and response.status_code == 206 and not _same_length(response, record):
                log.warning("%s: the file at %s changed size since this partial download; starting over", part, url)
                part.unlink()
                raise _TransferBroken("the file changed on the server")
            if have and response.status_code != 206:  # server ignored Range, or its file changed: start again
                have = 0
            if not have:
                _start_part(part, url, response)
            length = response.headers.get("Content-Length")
            expected = have + int(length) if length is not None else None
            mode = "ab" if have else "wb"
            with (
                open(part, mode) as handle,
                tqdm(
                    total=expected,
                    initial=have,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=Path(urlsplit(url).path).name,
                    disable=not progress,
                    leave=False,
                ) as bar,
            ):
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


def _source_record(dest: Path) -> Path:
    return dest.with_name(dest.name + ".source")


def _reusable(dest: Path, url: str, sha256: str | None) -> bool:
    """``dest`` was downloaded whole from ``url`` (its ``.source`` record says so) and matches ``sha256``."""
    record = _source_record(dest)
    if not dest.is_file() or not record.is_file():
        return False
    if record.read_text(encoding="utf-8", errors="replace").strip() != url:
        log.info("%s came from another URL: downloading %s", dest, url)
        return False
    if sha256 is not None and sha256_of(dest).lower() != sha256.lower():
        log.info("%s does not match the pinned sha256: downloading again", dest)
        return False
    return True


def _copy_local(source: Path, url: str, dest: Path, part: Path, sha256: str | None) -> Path:
    """A mirror hit or a file:// URL: copy to ``part``, verify, rename onto ``dest``."""
    log.info("copying %s -> %s", source, dest)
    with full_disk_reported(dest, "the partial copy was removed", cleanup=lambda: part.unlink(missing_ok=True)):
        try:
            shutil.copyfile(source, part)
        except (IsADirectoryError, PermissionError) as exc:
            raise DownloadError(f"{url}: cannot read {source} ({exc.strerror})") from None
    _verify(part, sha256, url)
    os.replace(part, dest)
    _part_record(part).unlink(missing_ok=True)
    return dest


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    retries: int = 5,
    timeout: float = 30.0,
    backoff: float = 1.0,
    mirror: str | os.PathLike | None = None,
    progress: bool = True,
    within: str | os.PathLike | None = None,
    reuse: bool = False,
) -> Path:
    """Fetch ``url`` to ``dest`` and return ``dest``.

    The body goes to ``dest.part`` and is renamed onto ``dest`` only when complete and verified,
    so an interrupted download never leaves a file that looks complete; a later call resumes it.
    ``dest`` never has a ``..`` component; with ``within`` it must resolve inside that directory.
    With ``reuse``, a ``dest`` already downloaded whole from the same ``url`` (and matching ``sha256``,
    when pinned) is returned as it is; ``dest.source`` records the URL it came from.
    """
    dest = Path(dest)
    try:
        ensure_inside(dest, within if within is not None else dest.parent, "download destination")
    except PipelineError as exc:
        raise DownloadError(f"{url}: {exc}") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if reuse and _reusable(dest, url, sha256):
        log.info("already downloaded: %s (from %s)", dest, url)
        return dest
    _source_record(dest).unlink(missing_ok=True)
    discard_foreign_part(part, url)
    fetched = _fetch(url, dest, part, sha256, retries, timeout, backoff, mirror, progress)
    if reuse:
        with atomic_open(_source_record(dest)) as handle:
            handle.write(url + "\n")
    return fetched


def _fetch(
    url: str,
    dest: Path,
    part: Path,
    sha256: str | None,
    retries: int,
    timeout: float,
    backoff: float,
    mirror: str | os.PathLike | None,
    progress: bool,
) -> Path:
    local = mirror_path(url, mirror)
    if local is not None and local.is_file():
        log.info("mirror hit: %s", local)
        return _copy_local(local, url, dest, part, sha256)

    source = local_file(url)
    if source is not None:
        if not source.is_file():
            where = f" (nor at {local} in {MIRROR_ENV})" if local is not None else ""
            raise DownloadError(f"{url}: no such file {source}{where}")
        return _copy_local(source, url, dest, part, sha256)

    session = requests.Session()
    for attempt in range(retries + 1):
        try:
            with full_disk_reported(dest, f"{part} is kept and the next run resumes it (delete it to start over)"):
                _fetch_once(session, url, part, timeout, progress)
            break
        except _TransferBroken as exc:
            if attempt == retries:
                where = f"{MIRROR_ENV} has no copy at {local}" if local is not None else f"{MIRROR_ENV} is not set"
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
    _part_record(part).unlink(missing_ok=True)
    log.info("downloaded %s -> %s (%d bytes)", url, dest, dest.stat().st_size)
    return dest

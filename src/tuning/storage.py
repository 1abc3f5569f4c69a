"""Where a search is kept: the journal file of one machine, or a database and an artifact store that
workers on several machines share.

- **Journal** (``tune.storage: null``): ``optuna_journal.log`` in the output directory
  (JournalStorage); the processes of one machine share it through file locks, and
  ``repair_journal`` undoes what a SIGKILL can leave in it.
- **Database** (``tune.storage``: an RDB URL such as ``postgresql://user@host/optuna``): every
  machine reaches it; its workers send heartbeats, so that the trial of a worker that stopped
  (machine lost, SIGKILL) is failed after ``grace_s`` and queued again with its configuration.
- **Artifact store** (``tune.artifact_store``: a directory every machine reaches, e.g. an NFS
  mount): each completed trial's directory is uploaded there as one tar file
  (``optuna.artifacts.FileSystemArtifactStore``), so the machine that writes the results gets the
  best trial's model without copying anything by hand.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
import tempfile
import warnings
from pathlib import Path

import optuna
from optuna.storages.journal._storage import JournalOperation
from optuna.trial import FrozenTrial

from src.core.errors import PipelineError
from src.core.paths import extract_inside
from src.core.secrets import redact

log = logging.getLogger(__name__)

JOURNAL_NAME = "optuna_journal.log"
# a worker that stops sending heartbeats (killed machine) has its trial failed and queued again
HEARTBEAT_S, GRACE_S = 60, 180
ARTIFACT_ATTR = "artifact"  # trial user attr: the artifact id of its uploaded directory

# database servers a user may name (SQLAlchemy dialects, any driver): they live outside the repository
# by design, on a host the user chose; SQLite is a file and must live in the stage's output directory
SERVER_DIALECTS = ("postgresql", "mysql", "mariadb", "oracle", "mssql", "cockroachdb")
CONNECT_TIMEOUT_S = 30  # a database server that does not answer fails the stage after this long


def check_storage(storage: str | None, output_dir: Path) -> None:
    """A PipelineError naming ``tune.storage`` unless it is null (the journal in ``output_dir``), an
    SQLite file inside ``output_dir`` (the stage's declared output), or a database server's URL."""
    if storage is None:
        journal = output_dir / JOURNAL_NAME
        if journal.is_symlink() or journal.exists():
            _inside(journal, output_dir, "the Optuna journal")
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    shown = redact(storage)  # the password never reaches an error line
    shown = shown if len(shown) <= 200 else shown[:197] + "..."
    try:
        url = make_url(storage)
    except (ArgumentError, ValueError) as exc:
        raise PipelineError(f"tune.storage = {shown!r}: not a database URL ({exc})") from None
    dialect = url.get_backend_name()
    if dialect in SERVER_DIALECTS:
        return
    expected = (
        f"expected sqlite:///{output_dir.as_posix()}/NAME.db (a file in the stage's output) or a database "
        f"server's URL ({', '.join(d + '://' for d in SERVER_DIALECTS[:2])}...)"
    )
    if dialect != "sqlite":
        raise PipelineError(f"tune.storage = {shown!r}: a {dialect!r} database is not supported; {expected}")
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("uri"):
        raise PipelineError(f"tune.storage = {shown!r}: an in-memory or URI-named SQLite database; {expected}")
    _inside(Path(database), output_dir, f"tune.storage = {shown!r}", expected)


def _inside(path: Path, output_dir: Path, what: str, expected: str = "") -> None:
    """``path`` (symlinks resolved) lies inside ``output_dir``; else a PipelineError naming ``what``."""
    resolved = path.resolve() if path.is_absolute() else (Path.cwd() / path).resolve()
    if not resolved.is_relative_to((Path.cwd() / output_dir).resolve()):
        link = f" (through a symbolic link, to {resolved})" if resolved != Path(os.path.abspath(path)) else ""
        raise PipelineError(
            f"{what}: {path}{link} is outside {output_dir}, the stage's output; refusing to read or "
            f"write there" + (f" ({expected})" if expected else "")
        )


def open_storage(
    storage: str | None, output_dir: Path, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S
) -> optuna.storages.BaseStorage:
    """``None``: a journal file in ``output_dir`` (one machine, any number of processes). Otherwise
    an RDB URL, with a heartbeat every ``heartbeat_s``, so that a trial whose worker sent none for
    ``grace_s`` (a dead machine) is failed and queued again."""
    if storage is None:
        check_storage(None, output_dir)  # the journal is no link out of the output (the stage checks a URL)
        from optuna.storages.journal import JournalFileBackend

        output_dir.mkdir(parents=True, exist_ok=True)
        # absolute: Optuna's lock is a symlink to this path, and a relative one would dangle
        journal = (output_dir / JOURNAL_NAME).resolve()
        try:
            return optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
        except (AssertionError, KeyError, TypeError, ValueError, IndexError) as exc:  # Optuna replays every record
            raise PipelineError(
                f"{output_dir / JOURNAL_NAME}: not a journal Optuna {optuna.__version__} can replay "
                f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); {_START_OVER}"
            ) from None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    dialect = make_url(storage).get_backend_name()
    connect_args = {"timeout": CONNECT_TIMEOUT_S} if dialect == "sqlite" else {"connect_timeout": CONNECT_TIMEOUT_S}
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since v2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(
                storage,
                engine_kwargs={"connect_args": connect_args},
                heartbeat_interval=heartbeat_s,
                grace_period=grace_s,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
            )
        except (SQLAlchemyError, ImportError, ValueError, optuna.exceptions.StorageInternalError) as exc:
            detail = redact(" ".join(str(exc).split()))[:300]
            raise PipelineError(f"tune.storage: cannot open the database ({type(exc).__name__}: {detail})") from None


_START_OVER = "it is the search's own resume state: delete it to start the search over"
_JOURNAL_OPERATIONS = {operation.value for operation in JournalOperation}


def repair_journal(path: Path) -> None:
    """Undo what a SIGKILL can leave in a journal that only this stage's workers write (call it
    while none runs): the lock file of a worker killed while appending, which every later append
    would wait for, and a line cut short, which would corrupt the next one appended (or, in the
    middle of the file, stop Optuna from reading it): the journal is cut before the first such line,
    and the trials recorded after it run again."""
    lock = Path(f"{path.resolve()}.lock")  # optuna's JournalFileSymlinkLock
    if lock.is_symlink() or lock.exists():
        log.warning("removing %s, left by a worker killed while writing the journal", lock)
        lock.unlink()
    if not path.is_file() or not path.stat().st_size:
        return
    keep = 0
    with open(path, "rb") as handle:
        for line_no, line in enumerate(handle, 1):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("cut short")
                record = json.loads(line)
            except ValueError:
                log.warning(
                    "%s:%d: not a whole JSON record (cut short by a kill?): dropping it and every line "
                    "after it; the trials they recorded run again",
                    path,
                    line_no,
                )
                break
            # a whole line that is no record of this Optuna's would end the replay in an AssertionError
            if not (isinstance(record, dict) and record.get("op_code") in _JOURNAL_OPERATIONS):
                shown = record.get("op_code") if isinstance(record, dict) else type(record).__name__
                raise PipelineError(
                    f"{path}:{line_no}: not an Optuna journal record (op_code {shown!r}); {_START_OVER}"
                )
            keep += len(line)
    if keep < path.stat().st_size:
        with open(path, "r+b") as handle:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail the RUNNING trials whose worker sent no heartbeat for ``grace_s``; the storage's
    ``RetryHeartbeatStaleTrialCallback`` queues each again with its configuration."""
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since v2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


# ---- the artifact store: trial directories between machines -------------------------------------------
# the search writes only into this directory of the store, never beside what else the mount holds
ARTIFACT_SUBDIR = "sentiment-tune-trials"
# directories of the operating system: a store there (or in them) would write trial files among its own
SYSTEM_DIRS = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/boot", "/proc", "/sys", "/dev", "/run")


def artifact_dir(artifact_store: str) -> Path:
    """The directory of ``tune.artifact_store`` the search owns (uploads and downloads go there only)."""
    return Path(artifact_store) / ARTIFACT_SUBDIR


def check_artifact_store(artifact_store: str | None) -> None:
    """A PipelineError naming ``tune.artifact_store`` unless it is null or a directory this machine can
    create and write (a mount every machine reaches: it lives outside the repository by design), other
    than a file system root, a top-level directory (``/``, ``/var``, ``/home``) or a system directory
    (``/etc``, ``/usr``, ...), links resolved. The search writes only in its ``ARTIFACT_SUBDIR`` there."""
    if artifact_store is None:
        return
    for named in (Path(artifact_store), artifact_dir(artifact_store)):  # the search's directory may be a link
        resolved = Path(os.path.abspath(named)).resolve()
        system = next((d for d in SYSTEM_DIRS if resolved.is_relative_to(d)), None)
        if len(resolved.parts) < 3 or system is not None:
            where = f"inside {system}, a system directory" if system else "a file system root or top-level directory"
            link = f" ({named} resolves to {resolved})" if str(resolved) != os.path.abspath(named) else ""
            raise PipelineError(
                f"tune.artifact_store = {artifact_store!r}{link}: {where}; refusing to write trial directories "
                "there: expected a directory of its own every machine reaches (e.g. /mnt/shared/tune-artifacts)"
            )
    path = artifact_dir(artifact_store)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-")
        probe.close()
    except OSError as exc:
        raise PipelineError(
            f"tune.artifact_store = {artifact_store!r}: not a directory this machine can write ({exc.strerror}); "
            "expected a directory every machine reaches (e.g. an NFS mount)"
        ) from None


def upload_trial_dir(artifact_store: str, trial: optuna.Trial, directory: Path) -> None:
    """Upload ``directory`` (a trial's ``config_X/``) as one tar file and record its artifact id on ``trial``."""
    from optuna.artifacts import FileSystemArtifactStore, upload_artifact

    with tempfile.TemporaryDirectory(prefix="tune-upload-") as scratch:
        archive = Path(scratch) / f"{directory.name}.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(directory, arcname=".")
        artifact_id = upload_artifact(
            artifact_store=FileSystemArtifactStore(str(artifact_dir(artifact_store))),
            file_path=str(archive),
            study_or_trial=trial,
            mimetype="application/x-tar",
        )
    trial.set_user_attr(ARTIFACT_ATTR, artifact_id)


def fetch_trial_dir(artifact_store: str | None, trial: FrozenTrial, directory: Path) -> None:
    """Make ``directory`` hold ``trial``'s uploaded directory unless it holds it already (the trial ran
    here). Extracted next to it, then renamed into place; tar members that would land outside it
    (absolute paths, ``..``, links out) are refused (``extract_inside``)."""
    if (directory / "trial.json").is_file():
        return
    worker = trial.user_attrs.get("worker", {})
    where = f"trial {trial.number} ran on {worker.get('host', 'another machine')}"
    if artifact_store is None or ARTIFACT_ATTR not in trial.user_attrs:
        raise PipelineError(
            f"{directory}: missing; {where} and no artifact store holds its model: set tune.artifact_store "
            "to a directory every machine reaches and rerun the search"
        )
    from optuna.artifacts import FileSystemArtifactStore, download_artifact

    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{directory.name}-", dir=directory.parent) as scratch:
        archive = Path(scratch) / "trial.tar"
        download_artifact(
            artifact_store=FileSystemArtifactStore(str(artifact_dir(artifact_store))),
            file_path=str(archive),
            artifact_id=trial.user_attrs[ARTIFACT_ATTR],
        )
        unpacked = Path(scratch) / "trial"
        with tarfile.open(archive) as tar:
            extract_inside(tar, unpacked, f"{where}: its uploaded directory")
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(unpacked, directory)
    log.info("%s: fetched from the artifact store (%s)", directory, where)

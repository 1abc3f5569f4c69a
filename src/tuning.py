"""tune: the BERT hyperparameter search on Optuna, from the search space to tuning_results.json.

``tune(...)`` runs a search and writes its results (the tune stage, scripts.tune, and the seed's
``src.models.training.hyperparameter_tuning``, which also loads the best model); ``join_search(...)``
adds workers on another machine to a search kept in a database. A trial goes ``tune`` ->
``run_search`` (the worker processes) -> ``run_worker`` (ask, skip or train, tell) ->
``TrialTrainer`` -> ``src.models.training.train_model``: one study, N worker processes sharing its
storage, median pruning.

- **Search space**: ``{name: [values]}`` (the sampler combines them) or named configurations
  (``{name: {hyperparameter: value}}`` or a list of such dicts: the sampler picks a name). Only
  ``TUNABLE`` names; the others come from ``base_hyperparameters`` over the seed's ``RECOMMENDED``.
- **Samplers** (``method``): ``grid`` (GridSampler: trial n takes grid point n of a seeded
  shuffle), ``random`` (RandomSampler) and ``tpe`` (TPESampler). Random and TPE draw from a sampler
  seeded with (seed, trial number), so trial n gets the same draw whichever worker runs it.
- **No configuration runs twice.** A trial whose configuration an earlier trial already holds is
  skipped (recorded as a FAIL with user attr ``skipped``; it is never trained and not counted), and
  so is one asked for after ``n_trials`` trials were handed out.
- **Storage**: a journal file (JournalStorage) in the output directory by default, or an RDB URL
  (``sqlite:///...``, ``postgresql://...``) for workers on several machines.
- **Resume**: trials a killed run left RUNNING (or an interrupted one left FAILed) are queued again
  with the same configuration; completed and pruned trials are kept. The study is named after a
  fingerprint of everything that shapes a trial's result, so a changed search space, data or code
  starts a new study; so does a rerun after a finished one (as ``Trainer.resume`` does).
- **Outputs** in the output directory: ``config_X/`` per trial (X: its number; ``trial.json``, and
  unless pruned ``training_history.json`` and the ``model/`` export), ``tuning_results.json``,
  ``best_hyperparameters.json`` and the journal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from src.checkpoints.resume import describe_change, run_fingerprint
from src.core.atomic import write_json
from src.core.errors import PipelineError
from src.models.bert_data import with_batch_size
from src.models.training import RECOMMENDED, remove_checkpoints, train_model
from src.scoring.metrics import higher_is_better
from src.training.distributed import signal_when_parent_dies
from src.training.early_stopping import BestTracker

log = logging.getLogger(__name__)

METHODS = ("grid", "random", "tpe")
JOURNAL_NAME = "optuna_journal.log"
# trials that hold a configuration: done, running, or queued to run
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
# an RDB worker that stops sending heartbeats (killed machine) has its trial failed and queued again
HEARTBEAT_S, GRACE_S = 60, 180


class SkippedTrial(Exception):
    """A trial that is not trained: its configuration is held by an earlier trial, or the budget is spent."""


# ---- the search: what tune runs -----------------------------------------------------------------------
TUNABLE = tuple(RECOMMENDED)  # what a search may set: train_model's hyperparameters and the batch size
NAMED = "configuration"  # the one searched name when hyperparameters are named configurations


def tune(
    train_loader,
    val_loader,
    output_dir: str | os.PathLike,
    hyperparameters,
    device: str = "auto",
    *,
    workers: int = 1,
    **options: Any,
) -> dict[str, Any]:
    """Search ``hyperparameters`` and return what it writes to ``tuning_results.json``.

    ``hyperparameters``: ``{name: [values to try]}`` or named configurations (see the module's
    docstring). ``options``: ``make_search``'s, i.e. ``method``: ``grid`` (every combination, or the
    first ``n_trials`` of a seeded shuffle), ``random`` or ``tpe``; ``n_trials`` trials (default:
    every combination), no configuration trained twice; ``pruning``
    (``{"enabled", "startup_trials", "warmup_epochs"}``) stops a trial whose validation ``monitor``
    after an epoch is below the median of the finished trials; ``storage`` (default: a journal file
    in ``output_dir``; or an RDB URL); ``fingerprint`` (default: these arguments), under which a
    rerun after a kill resumes the study; untuned values from ``base_hyperparameters``; ``seed``;
    and train_model's keyword arguments. ``workers`` processes run trials at once; on a GPU machine
    worker i trains on ``cuda:(i % GPUs)``. Trials are scored on ``val_loader`` only.
    """
    search, trainer, fingerprint = make_search(train_loader, val_loader, output_dir, hyperparameters, **options)
    study, interrupted = prepare_study(search, fingerprint)
    run_search(search, trainer, device, workers, adopt=interrupted)
    return write_results(study, search, trainer.train_kwargs["monitor"])


def join_search(
    train_loader,
    val_loader,
    output_dir: str | os.PathLike,
    hyperparameters,
    device: str = "auto",
    *,
    workers: int = 1,
    **options: Any,
) -> None:
    """Run ``workers`` more workers for the search that ``tune`` (same arguments) started in the RDB
    ``storage``; each trial's directory is written here, under ``output_dir``."""
    if options.get("storage") is None:
        raise PipelineError(
            "tune.storage = null: a worker on another machine needs an RDB URL that every machine "
            "reaches (e.g. postgresql://user@host/optuna)"
        )
    search, trainer, _ = make_search(train_loader, val_loader, output_dir, hyperparameters, **options)
    try:
        search.open()
    except KeyError:
        raise PipelineError(
            f"no study {search.name} in tune.storage: start the search first (dvc repro tune), "
            "with the same params, data and code"
        ) from None
    run_search(search, trainer, device, workers)


def named_configurations(hyperparameters) -> dict[str, dict] | None:
    """Named configurations as ``{name: {hyperparameter: value}}``: from a dict of dicts, or a list of
    dicts (named config_1, config_2, ...); None for a grid (``{name: [values]}``)."""
    if isinstance(hyperparameters, (list, tuple)):
        if not hyperparameters or not all(isinstance(c, dict) for c in hyperparameters):
            raise PipelineError("hyperparameters: a list must hold configurations ({name: value} dicts)")
        return {f"config_{i}": dict(c) for i, c in enumerate(hyperparameters, 1)}
    if hyperparameters and all(isinstance(v, dict) for v in hyperparameters.values()):
        return {str(k): dict(v) for k, v in hyperparameters.items()}
    return None


def make_search(
    train_loader,
    val_loader,
    output_dir: str | os.PathLike,
    hyperparameters,
    *,
    base_hyperparameters: dict | None = None,
    method: str = "grid",
    n_trials: int | None = None,
    seed: int = 42,
    pruning: dict | None = None,
    storage: str | None = None,
    fingerprint: dict | None = None,
    **train_kwargs: Any,
) -> tuple[Search, TrialTrainer, dict]:
    """The checked search space as a ``Search`` (the study's description), the ``TrialTrainer``
    that trains its trials, and the study's fingerprint (default: these arguments)."""
    named = named_configurations(hyperparameters)
    if (
        named is None
        and not isinstance(hyperparameters, dict)
        or named is None
        and not all(isinstance(values, (list, tuple)) and values for values in hyperparameters.values())
    ):
        raise PipelineError(
            "hyperparameters: expected {name: [values to try]}, {config name: {name: value}} "
            f"or a list of {{name: value}} configurations, got {hyperparameters!r}"
        )
    unknown = sorted((set().union(*named.values()) if named else set(hyperparameters)) - set(TUNABLE))
    if unknown:
        raise PipelineError(f"tune.search_space: cannot tune {', '.join(unknown)} (tunable: {', '.join(TUNABLE)})")
    if method not in METHODS:
        raise PipelineError(f"tune.method = {method!r}: expected one of {', '.join(METHODS)}")
    base = {**RECOMMENDED, **(base_hyperparameters or {})}
    # a trial's .pt files also hold the optimizer (~3x the model) and are never resumed: not kept
    train_kwargs = {
        "monitor": "val_macro_recall",
        "progress": False,
        "keep_checkpoints": False,
        "max_checkpoints": 1,
        **train_kwargs,
    }
    space = {NAMED: list(named)} if named else {name: list(values) for name, values in hyperparameters.items()}
    if fingerprint is None:
        plain = {
            k: v for k, v in train_kwargs.items() if isinstance(v, (str, int, float, bool, list, tuple, type(None)))
        }
        fingerprint = run_fingerprint(
            {
                "search_space": space,
                "method": method,
                "seed": seed,
                "base": base,
                "pruning": pruning or {},
                "train": plain,
                "batches": [len(train_loader), len(val_loader)],
            }
        )
    monitor = train_kwargs["monitor"]
    search = Search(
        Path(output_dir),
        storage,
        study_name(fingerprint),
        space,
        method,
        seed,
        n_trials or space_size(space),
        "maximize" if higher_is_better(monitor) else "minimize",
        pruning,
    )
    trainer = TrialTrainer(train_loader, val_loader, Path(output_dir), base, seed, train_kwargs, named)
    return search, trainer, fingerprint


# ---- samplers and pruner -----------------------------------------------------------------------------
class TrialSeededSampler(BaseSampler):
    """A fresh ``make(seed)`` sampler per trial, seeded from (seed, trial number).

    A sampler's random state lives in its process, so N workers seeded alike would all draw the same
    first configuration, and the draw a trial gets would depend on which worker asked. Seeding per
    trial number makes trial n's draw the same with 1 or N workers (TPE still adapts to the trials
    finished when it asks, which depends on timing when trials run at once).
    """

    def __init__(self, make: Callable[[int], BaseSampler], seed: int):
        self._make, self._seed, self._samplers = make, seed, {}

    def _for(self, trial: FrozenTrial) -> BaseSampler:
        if trial.number not in self._samplers:
            digest = hashlib.sha256(f"{self._seed}:{trial.number}".encode()).digest()
            self._samplers[trial.number] = self._make(int.from_bytes(digest[:4], "little"))
        return self._samplers[trial.number]

    def infer_relative_search_space(self, study, trial):
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial):
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self._for(trial).after_trial(study, trial, state, values)
        self._samplers.pop(trial.number, None)


def make_sampler(method: str, space: dict[str, list], seed: int) -> BaseSampler:
    if method == "grid":
        return GridSampler(space, seed=seed)
    if method == "random":
        return TrialSeededSampler(lambda s: RandomSampler(seed=s), seed)
    if method == "tpe":
        return TrialSeededSampler(lambda s: TPESampler(seed=s), seed)
    raise PipelineError(f"tune.method = {method!r}: expected one of {', '.join(METHODS)}")


def make_pruner(pruning: dict | None) -> optuna.pruners.BasePruner:
    """MedianPruner: stop a trial whose value after an epoch is below the median of the finished
    trials at that epoch, once ``startup_trials`` trials have finished."""
    if not pruning or not pruning.get("enabled", True):
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=pruning.get("startup_trials", 2), n_warmup_steps=pruning.get("warmup_epochs", 0)
    )


def space_size(space: dict[str, list]) -> int:
    size = 1
    for values in space.values():
        size *= len(set(map(json.dumps, values)))
    return size


# ---- storage and study -------------------------------------------------------------------------------
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

    shown = storage if len(storage) <= 200 else storage[:197] + "..."
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


def open_storage(storage: str | None, output_dir: Path) -> optuna.storages.BaseStorage:
    """``None``: a journal file in ``output_dir`` (one machine, any number of processes). Otherwise
    an RDB URL, with heartbeats so that trials of a dead machine are failed and queued again."""
    if storage is None:
        check_storage(None, output_dir)  # the journal is no link out of the output (the stage checks a URL)
        from optuna.storages.journal import JournalFileBackend

        output_dir.mkdir(parents=True, exist_ok=True)
        # absolute: Optuna's lock is a symlink to this path, and a relative one would dangle
        return optuna.storages.JournalStorage(JournalFileBackend(str((output_dir / JOURNAL_NAME).resolve())))
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
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
            )
        except (SQLAlchemyError, ImportError, ValueError, optuna.exceptions.StorageInternalError) as exc:
            detail = " ".join(str(exc).split())[:300]
            raise PipelineError(f"tune.storage: cannot open the database ({type(exc).__name__}: {detail})") from None


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
                json.loads(line)
            except ValueError:
                log.warning(
                    "%s:%d: not a whole JSON record (cut short by a kill?): dropping it and every line "
                    "after it; the trials they recorded run again",
                    path,
                    line_no,
                )
                break
            keep += len(line)
    if keep < path.stat().st_size:
        with open(path, "r+b") as handle:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())


def study_name(fingerprint: dict) -> str:
    return "tune-" + hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Search:
    """What every worker needs to open the study and run trials (picklable: workers are spawned)."""

    output_dir: Path
    storage: str | None
    name: str
    space: dict[str, list]
    method: str
    seed: int
    n_trials: int
    direction: str
    pruning: dict | None

    def open(self) -> optuna.Study:
        return optuna.load_study(
            study_name=self.name,
            storage=open_storage(self.storage, self.output_dir),
            sampler=make_sampler(self.method, self.space, self.seed),
            pruner=make_pruner(self.pruning),
        )


def prepare_study(search: Search, fingerprint: dict) -> tuple[optuna.Study, list[int]]:
    """Create the study, or resume the one a killed run left (same fingerprint, not finished);
    also returns the numbers of the trials that run left RUNNING, for the workers to train again.

    With the default journal, the journal and the trial directories of any other study are removed
    first: the journal lives in the stage's output directory and holds this stage's one study.
    """
    search.output_dir.mkdir(parents=True, exist_ok=True)
    if search.storage is None:
        repair_journal(search.output_dir / JOURNAL_NAME)
    storage = open_storage(search.storage, search.output_dir)
    previous = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if search.name in previous and not previous[search.name].user_attrs.get("finished"):
        log.info("resuming the unfinished study %s", search.name)
    else:
        if search.name in previous:
            reason = "the search that wrote it had finished"
            if search.storage is not None:
                optuna.delete_study(study_name=search.name, storage=storage)
        elif search.storage is None and previous:
            old = next(iter(previous.values())).user_attrs.get("fingerprint")
            reason = describe_change(old, fingerprint) or "the search changed"
        else:
            reason = None
        if reason:
            log.info(
                "not resuming the study in %s: %s; searching from scratch",
                search.storage or search.output_dir / JOURNAL_NAME,
                reason,
            )
        clear_output_dir(search.output_dir)  # trial directories of another search, or of none
        if search.storage is None:
            storage = open_storage(None, search.output_dir)  # a new, empty journal
    # this handle only keeps the books (the workers sample): a GridSampler here would stop the study
    # when failing an interrupted trial exhausts the grid, which only works inside optimize()
    study = optuna.create_study(
        study_name=search.name,
        storage=storage,
        load_if_exists=True,
        direction=search.direction,
        sampler=RandomSampler(seed=search.seed),
    )
    study.set_user_attr("fingerprint", fingerprint)
    return study, recover_interrupted(study, search)


RESULT_FILES = ("tuning_results.json", "best_hyperparameters.json", JOURNAL_NAME)


def clear_output_dir(output_dir: Path) -> None:
    """Remove what a search writes (trial directories, results, the journal), nothing else."""
    for path in output_dir.glob("config_*"):
        shutil.rmtree(path)
    for name in RESULT_FILES:
        (output_dir / name).unlink(missing_ok=True)


def config_of(trial: FrozenTrial) -> dict:
    """The configuration a trial holds (a queued one has its fixed params only)."""
    return dict(trial.params) or dict(trial.system_attrs.get("fixed_params", {}))


def recover_interrupted(study: optuna.Study, search: Search) -> list[int]:
    """What a killed or interrupted run left unfinished. Returns the trials to train again under
    their own numbers: RUNNING trials in our own journal (no worker of ours is alive now), so that
    the resumed search holds the same trials as an uninterrupted one. Trials failed by a signal
    (SIGTERM, Ctrl-C), and with an RDB those of dead workers (no heartbeat for GRACE_S), are queued
    again under a new number. Partial trial directories are removed.
    """
    adopt = []
    if search.storage is None:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            adopt.append(trial.number)
            log.info("trial %d was interrupted: training it again", trial.number)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    held = [config_of(t) for t in trials if t.state in COUNTED]
    for trial in trials:
        # "worker" is set once a trial passed its budget and duplicate check and started training
        if trial.state == TrialState.FAIL and "worker" in trial.user_attrs and trial.params not in held:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            held.append(dict(trial.params))
            log.info("trial %d was interrupted: queued again", trial.number)
        if trial.state == TrialState.FAIL or trial.number in adopt:
            shutil.rmtree(search.output_dir / f"config_{trial.number}", ignore_errors=True)
    return adopt


# ---- one trial ------------------------------------------------------------------------------------------
@dataclass
class TrialTrainer:
    """Trains one trial's configuration with ``train_model`` into ``config_<trial number>/`` and
    returns its best validation ``monitor`` value; reports that value after each epoch to the pruner.

    Picklable, so that spawned workers receive it. Every trial is seeded with the same ``seed``
    (model head, dropout, batch order): its result depends on its configuration only, not on the
    worker or the trials before it.
    """

    train_loader: Any
    val_loader: Any
    output_dir: Path
    base: dict  # the untuned hyperparameters
    seed: int
    train_kwargs: dict  # train_model's keyword arguments, monitor included
    named: dict[str, dict] | None = None  # named configurations: the search picks a name (NAMED), this holds its values

    def __call__(self, trial: optuna.Trial, sampled: dict, device: str) -> float:
        config = {**self.base, **(self.named[sampled[NAMED]] if self.named else sampled)}
        directory = self.output_dir / f"config_{trial.number}"
        shutil.rmtree(directory, ignore_errors=True)  # what a killed attempt left
        loader = (
            with_batch_size(self.train_loader, config["batch_size"], self.seed)
            if hasattr(self.train_loader, "dataset")
            else self.train_loader
        )
        monitor = self.train_kwargs["monitor"]
        epochs: list[dict] = []  # each epoch's metrics, as the engine reports them

        def report(epoch: int, metrics: dict) -> None:
            epochs.append(metrics)
            with warnings.catch_warnings():  # a retried trial reports its epochs again: the same values
                warnings.simplefilter("ignore")
                trial.report(metrics[monitor], epoch)
            if epoch < config["num_epochs"] and trial.should_prune():  # after the last epoch: nothing to save
                raise optuna.TrialPruned(
                    f"{monitor} {metrics[monitor]:.4f} after epoch {epoch} is below the median of the finished trials"
                )

        started = time.perf_counter()
        pruned = None
        try:
            _, history = train_model(
                loader,
                self.val_loader,
                directory,
                config["num_epochs"],
                config["learning_rate"],
                config["weight_decay"],
                config["warmup_ratio"],
                device,
                dropout_prob=config["dropout_prob"],
                seed=self.seed,
                on_epoch_end=report,
                **self.train_kwargs,
            )
            best_epoch = history["best_epoch"]
        except optuna.TrialPruned as exc:
            pruned = exc
            remove_checkpoints(directory)  # a pruned trial keeps its record only
            # no history comes back from a raise: the reported epochs decide, by the Trainer's own rule
            tracker = BestTracker(monitor)
            for epoch, metrics in enumerate(epochs, 1):
                tracker.record(metrics[monitor], epoch)
            best_epoch = tracker.best_epoch or 1
        best = epochs[best_epoch - 1]
        record = {
            "params": sampled,
            "hyperparameters": config,
            "epochs_run": len(epochs),
            "best_epoch": best_epoch,
            **{key: best[key] for key in ("val_loss", "val_accuracy", "val_macro_recall", "val_macro_f1")},
            "time_s": round(time.perf_counter() - started, 2),
        }
        write_json(
            directory / "trial.json", {"trial": trial.number, "state": "pruned" if pruned else "complete", **record}
        )
        trial.set_user_attr("result", record)
        if pruned is not None:
            raise pruned
        return float(best[monitor])


# ---- the worker loop ----------------------------------------------------------------------------------
def search_done(study: optuna.Study, search: Search) -> bool:
    trials = study.get_trials(deepcopy=False, states=COUNTED)
    if any(t.state == TrialState.WAITING for t in trials):
        return False
    held = {json.dumps(config_of(t), sort_keys=True) for t in trials}
    return len(trials) >= search.n_trials or len(held) >= space_size(search.space)


def skip_reason(study: optuna.Study, trial: optuna.Trial, config: dict, n_trials: int) -> str | None:
    """Why ``trial`` must not train: an earlier trial holds ``config``, or ``n_trials`` earlier trials
    exist (a queued retry replaces a trial and is never over budget). Decided by trial number, so
    that two workers asking at once cannot both run a configuration."""
    trials = study.get_trials(deepcopy=False)
    earlier = [t for t in trials if t.state in COUNTED and t.number < trial.number and "skipped" not in t.user_attrs]
    me = next(t for t in trials if t.number == trial.number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = (
            "retry_of" in me.user_attrs
            or optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(me) is not None
        )
    for other in earlier:
        if config_of(other) == config:
            return f"duplicate of trial {other.number}"
    if not retry and len(earlier) >= n_trials:
        return "over budget"
    return None


def run_worker(
    search: Search,
    run_trial: Callable[[optuna.Trial, dict, str], float],
    device: str,
    worker: int = 0,
    adopt: list[int] = (),
) -> None:
    """Train the interrupted trials in ``adopt``, then ask, train and tell new trials until the
    search is done (the body of every worker process)."""
    study = search.open()
    # our own log says what runs where and what is skipped; Optuna would report a skip as a failure,
    # and a real failure is raised (and reported by the stage) anyway
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def objective(trial: optuna.Trial) -> float:
        config = {name: trial.suggest_categorical(name, values) for name, values in search.space.items()}
        reason = skip_reason(study, trial, config, search.n_trials)
        if reason is not None:
            log.info("worker %d: trial %d %s skipped: %s", worker, trial.number, config, reason)
            trial.set_user_attr("skipped", reason)
            raise SkippedTrial(reason)
        trial.set_user_attr(
            "worker", {"host": socket.gethostname(), "pid": os.getpid(), "index": worker, "device": device}
        )
        log.info("worker %d (%s): trial %d %s", worker, device, trial.number, config)
        return run_trial(trial, config, device)

    if adopt:
        # An interrupted trial keeps its number, so its configuration is the one an uninterrupted
        # search gives it: the params it holds, or the sampler's draw for that number (a kill can
        # land between ask and the first suggestion). It is told through a study without the
        # GridSampler, whose stop() only works inside optimize().
        books = optuna.load_study(
            study_name=search.name, storage=open_storage(search.storage, search.output_dir), sampler=RandomSampler()
        )
        frozen = {t.number: t for t in study.get_trials(deepcopy=False)}
        for number in adopt:
            study.sampler.before_trial(study, frozen[number])  # GridSampler: assigns grid point `number`
            trial = optuna.trial.Trial(study, frozen[number]._trial_id)
            try:
                books.tell(number, objective(trial))
            except (optuna.TrialPruned, SkippedTrial):
                books.tell(number, state=TrialState.FAIL if "skipped" in trial.user_attrs else TrialState.PRUNED)
            except BaseException:
                books.tell(number, state=TrialState.FAIL)
                raise

    def stop_when_done(study: optuna.Study, trial: FrozenTrial) -> None:
        if search_done(study, search):
            study.stop()

    if not search_done(study, search):
        study.optimize(objective, catch=(SkippedTrial,), callbacks=[stop_when_done])


def worker_count(workers: int, n_trials: int) -> int:
    """``tune.workers``, capped (saying so) at one per trial and one per CPU core this process may use:
    more would only start processes that find no trial left, or fight over the cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    capped = max(1, min(workers, n_trials, cores))
    if capped < workers:
        log.warning(
            "tune.workers = %d: running %d worker(s) (at most one per trial, tune.n_trials = %d, and one "
            "per CPU core, %d here)",
            workers,
            capped,
            n_trials,
            cores,
        )
    return capped


def worker_devices(device: str, workers: int) -> list[str]:
    """Worker i gets ``cuda:(i % GPUs)`` when ``device`` is ``cuda``/``auto`` on a GPU machine; an
    explicit ``cuda:K`` or ``cpu`` is shared by all workers."""
    import torch

    from src.core.runtime import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is None:
        return [f"cuda:{i % torch.cuda.device_count()}" for i in range(workers)]
    return [str(resolved)] * workers


def _worker_process(
    search: Search, run_trial, device: str, worker: int, adopt: list[int], threads: int | None, parent_pid: int
) -> None:
    # a SIGKILLed tune must not leave workers writing into its output directory
    if not signal_when_parent_dies(signal.SIGKILL, parent_pid):
        os._exit(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    run_worker(search, run_trial, device, worker, adopt)


def run_search(search: Search, run_trial, device: str, workers: int, adopt: list[int] = ()) -> None:
    """Run the search with ``workers`` processes (one: in this process). Worker i first trains
    ``adopt[i::workers]`` (interrupted trials), then takes the next trial from the shared study
    until the search is done; a failed worker fails the search."""
    workers = worker_count(workers, search.n_trials)
    devices = worker_devices(device, workers)
    if workers == 1:
        run_worker(search, run_trial, devices[0], 0, list(adopt))
        return
    # CPU workers split the cores unless OMP_NUM_THREADS says otherwise
    threads = (
        None if "OMP_NUM_THREADS" in os.environ or devices[0] != "cpu" else max(1, (os.cpu_count() or 1) // workers)
    )
    context = multiprocessing.get_context("spawn")  # no forked CUDA or OpenMP state
    processes = [
        context.Process(
            target=_worker_process,
            name=f"tune-worker-{i}",
            args=(search, run_trial, devices[i], i, list(adopt[i::workers]), threads, os.getpid()),
        )
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    finally:
        for process in processes:  # an interrupted tune stops its workers too
            if process.is_alive():
                process.terminate()
                process.join()
    failed = [f"{p.name} exited {p.exitcode}" for p in processes if p.exitcode != 0]
    if failed:
        raise PipelineError(f"tune: {', '.join(failed)} (see its log above); rerun to resume the search")


# ---- results ----------------------------------------------------------------------------------------------
def trained_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Every trial that trained (completed or pruned), by trial number."""
    return sorted(
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)), key=lambda t: t.number
    )


def skipped_count(study: optuna.Study) -> int:
    return sum("skipped" in t.user_attrs for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))


def trial_record(trial: FrozenTrial) -> dict[str, Any]:
    worker = {key: value for key, value in trial.user_attrs.get("worker", {}).items() if key != "pid"}
    return {
        "trial": trial.number,
        "state": trial.state.name.lower(),
        **trial.user_attrs.get("result", {}),
        "worker": worker,
    }


def write_results(study: optuna.Study, search: Search, monitor: str) -> dict[str, Any]:
    """Write ``tuning_results.json`` (every trained trial, the best) and ``best_hyperparameters.json``,
    mark the study finished, and return the results."""
    trials = trained_trials(study)
    if not any(t.state == TrialState.COMPLETE for t in trials):
        raise PipelineError(f"tune: no trial completed in {search.output_dir} (every one was pruned)")
    best = study.best_trial
    best_hyperparameters = best.user_attrs["result"]["hyperparameters"]
    results = {
        "monitor": monitor,
        "method": search.method,
        "search_space": search.space,
        "n_trials": search.n_trials,
        "trials": [trial_record(t) for t in trials],
        "best_trial": best.number,
        "best_hyperparameters": best_hyperparameters,
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "skipped": skipped_count(study),
    }
    write_json(search.output_dir / "tuning_results.json", results)
    write_json(search.output_dir / "best_hyperparameters.json", best_hyperparameters)
    study.set_user_attr("finished", True)  # a rerun starts a new search (as a finished training run does)
    return results

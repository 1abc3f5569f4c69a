"""The search in one process, top to bottom: the search space, samplers and pruner, the study and its
resume, one trial's training, the worker loop (ask, skip or train, tell), the results.

A trial goes ``run_worker`` (ask, skip or train, tell) -> ``TrialTrainer`` ->
``src.models.training.train_model``. Worker processes and workers on other machines
(``src.tuning.workers``) run this same loop on a shared storage (``src.tuning.storage``).

- **Search space**: ``{name: [values]}`` (the sampler combines them) or named configurations
  (``{name: {hyperparameter: value}}`` or a list of such dicts: the sampler picks a name). Only
  ``TUNABLE`` names; the others come from ``base_hyperparameters`` over the BERT fine-tuning guide's
  ``RECOMMENDED``.
- **Samplers** (``method``): ``grid`` (GridSampler: trial n takes grid point n of a seeded
  shuffle), ``random`` (RandomSampler) and ``tpe`` (TPESampler). Random and TPE draw from a sampler
  seeded with (seed, trial number), so trial n gets the same draw whichever worker runs it.
- **No configuration runs twice.** A trial whose configuration an earlier trial already holds is
  skipped (recorded as a FAIL with user attr ``skipped``; it is never trained and not counted), and
  so is one asked for after ``n_trials`` trials were handed out.
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
import os
import shutil
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

from src.checkpoints.remove import remove_checkpoints
from src.checkpoints.resume import describe_change, run_fingerprint
from src.core.atomic import write_json
from src.core.errors import PipelineError
from src.core.secrets import redact
from src.models.bert_data import with_batch_size
from src.models.bert_hyperparameters import RECOMMENDED
from src.scoring.metrics import higher_is_better
from src.training.early_stopping import BestTracker
from src.tuning.storage import (
    GRACE_S,
    HEARTBEAT_S,
    JOURNAL_NAME,
    fail_stale_trials,
    open_storage,
    repair_journal,
    upload_trial_dir,
)

log = logging.getLogger(__name__)

METHODS = ("grid", "random", "tpe")
# trials that hold a configuration: done, running, or queued to run
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


class SkippedTrial(Exception):
    """A trial that is not trained: its configuration is held by an earlier trial, or the budget is spent."""


# ---- the search: what tune runs -----------------------------------------------------------------------
TUNABLE = tuple(RECOMMENDED)  # what a search may set: train_model's hyperparameters and the batch size
NAMED = "configuration"  # the one searched name when hyperparameters are named configurations


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
    artifact_store: str | None = None,
    heartbeat_s: int = HEARTBEAT_S,
    grace_s: int = GRACE_S,
    fingerprint: dict | None = None,
    train: Callable | None = None,
    **train_kwargs: Any,
) -> tuple[Search, TrialTrainer, dict]:
    """The checked search space as a ``Search`` (the study's description), the ``TrialTrainer``
    that trains its trials with ``train`` (the BERT fine-tuning guide's ``train_model``: the caller
    passes it, so the search engine imports no model code), and the study's fingerprint (default:
    these arguments)."""
    if train is None:
        raise PipelineError("make_search: train, the function that trains a trial (train_model), is required")
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
        artifact_store,
        heartbeat_s,
        grace_s,
    )
    trainer = TrialTrainer(train, train_loader, val_loader, Path(output_dir), base, seed, train_kwargs, named)
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


# ---- the study ---------------------------------------------------------------------------------------
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
    artifact_store: str | None = None  # a directory every machine reaches: trial directories travel there
    heartbeat_s: int = HEARTBEAT_S  # an RDB worker's heartbeat; a trial without one for grace_s is retried
    grace_s: int = GRACE_S

    def storage_handle(self) -> optuna.storages.BaseStorage:
        return open_storage(self.storage, self.output_dir, self.heartbeat_s, self.grace_s)

    def open(self) -> optuna.Study:
        return optuna.load_study(
            study_name=self.name,
            storage=self.storage_handle(),
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
    storage = search.storage_handle()
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
                redact(search.storage) if search.storage else search.output_dir / JOURNAL_NAME,
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
        fail_stale_trials(study)
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
    """Trains one trial's configuration with ``train`` (``train_model``) into ``config_<trial number>/`` and
    returns its best validation ``monitor`` value; reports that value after each epoch to the pruner.

    Picklable, so that spawned workers receive it. Every trial is seeded with the same ``seed``
    (model head, dropout, batch order): its result depends on its configuration only, not on the
    worker or the trials before it.
    """

    train: Callable  # src.models.training.train_model, or a function with its signature
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
            _, history = self.train(
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
    on_trial_end: Callable[[optuna.Study], None] | None = None,
) -> None:
    """Train the interrupted trials in ``adopt``, then ask, train and tell new trials until the
    search is done (the body of every worker process); ``on_trial_end(study)`` after each trial.
    With an artifact store, each completed trial's directory is uploaded there."""
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
        value = run_trial(trial, config, device)
        directory = search.output_dir / f"config_{trial.number}"
        if search.artifact_store is not None and directory.is_dir():
            upload_trial_dir(search.artifact_store, trial, directory)
        return value

    if adopt:
        # An interrupted trial keeps its number, so its configuration is the one an uninterrupted
        # search gives it: the params it holds, or the sampler's draw for that number (a kill can
        # land between ask and the first suggestion). It is told through a study without the
        # GridSampler, whose stop() only works inside optimize().
        books = optuna.load_study(study_name=search.name, storage=search.storage_handle(), sampler=RandomSampler())
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
        if on_trial_end is not None:
            on_trial_end(study)
        if search_done(study, search):
            study.stop()

    if not search_done(study, search):
        study.optimize(objective, catch=(SkippedTrial,), callbacks=[stop_when_done])


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

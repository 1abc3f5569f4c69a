"""The search in one process, top to bottom: the checked search space, the study and its resume, the
worker loop (ask, skip or train, tell). Space, samplers and pruner: ``src.tuning.space``; one trial:
``src.tuning.trial``; results: ``src.tuning.results``.

A trial goes ``run_worker`` (ask, skip or train, tell) -> ``TrialTrainer`` -> ``train`` (the tune stage's
``TrialRun``, a config through ``fine_tune``; or the guide's ``train_model``). Worker processes and
workers on other machines (``src.tuning.workers``) run this same loop on a shared storage
(``src.tuning.storage``).

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
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.samplers import RandomSampler
from optuna.trial import FrozenTrial, TrialState

from src.checkpoints.resume import describe_change, run_fingerprint
from src.core.errors import PipelineError
from src.core.secrets import redact
from src.models.bert_hyperparameters import RECOMMENDED
from src.scoring.metrics import higher_is_better
from src.tuning.space import METHODS, NAMED, TUNABLE, make_pruner, make_sampler, named_configurations, space_size
from src.tuning.storage import (
    GRACE_S,
    HEARTBEAT_S,
    JOURNAL_NAME,
    fail_stale_trials,
    open_storage,
    repair_journal,
    upload_trial_dir,
)
from src.tuning.trial import TrialTrainer

log = logging.getLogger(__name__)

# trials that hold a configuration: done, running, or queued to run
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


class SkippedTrial(Exception):
    """A trial that is not trained: its configuration is held by an earlier trial, or the budget is spent."""


# ---- the search: what tune runs -----------------------------------------------------------------------
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

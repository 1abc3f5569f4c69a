"""tune: the BERT hyperparameter search on Optuna, from the search space to tuning_results.json.

``tune(...)`` runs a search and writes its results (the tune stage, scripts.tune, and the BERT
fine-tuning guide's ``src.models.training.hyperparameter_tuning``, which also loads the best model);
``join_search(...)`` adds workers on another machine to a search kept in a database.

- ``src.tuning.search``: the search in one process, top to bottom (the study, its resume, the worker
  loop), over ``src.tuning.space`` (space, samplers, pruner), ``src.tuning.trial`` (one trial) and
  ``src.tuning.results``.
- ``src.tuning.workers``: worker processes, workers on other machines, waiting for them.
- ``src.tuning.storage``: the journal file, the database with heartbeats, the artifact store.
"""

from __future__ import annotations

import os
from typing import Any

from src.tuning.results import trained_trials, write_results
from src.tuning.search import Search, make_search, prepare_study, study_name
from src.tuning.space import METHODS, NAMED, TUNABLE
from src.tuning.storage import JOURNAL_NAME, check_artifact_store, check_storage, open_storage
from src.tuning.trial import TrialTrainer
from src.tuning.workers import Progress, finish_search, join_search, run_search

__all__ = [
    "JOURNAL_NAME",
    "METHODS",
    "NAMED",
    "TUNABLE",
    "Search",
    "TrialTrainer",
    "check_artifact_store",
    "check_storage",
    "join_search",
    "make_search",
    "open_storage",
    "prepare_study",
    "run_search",
    "study_name",
    "trained_trials",
    "tune",
]


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

    ``hyperparameters``: ``{name: [values to try]}`` or named configurations (see
    ``src.tuning.search``). ``options``: ``make_search``'s, i.e. ``method``: ``grid`` (every
    combination, or the first ``n_trials`` of a seeded shuffle), ``random`` or ``tpe``; ``n_trials``
    trials (default: every combination), no configuration trained twice; ``pruning``
    (``{"enabled", "startup_trials", "warmup_epochs"}``) stops a trial whose validation ``monitor``
    after an epoch is below the median of the finished trials; ``storage`` (default: a journal file
    in ``output_dir``; or an RDB URL), ``artifact_store`` (a directory every machine reaches) and
    ``heartbeat_s``/``grace_s`` for workers on several machines; ``fingerprint`` (default: these
    arguments), under which a rerun after a kill resumes the study; untuned values from
    ``base_hyperparameters``; ``seed``; ``train``, the function that trains a trial (the BERT
    fine-tuning guide's ``train_model``, passed in so that the search imports no model code); and
    train_model's keyword arguments. ``workers`` processes
    run trials at once; on a GPU machine worker i trains on ``cuda:(i % GPUs)``. Trials are scored
    on ``val_loader`` only.
    """
    check_artifact_store(options.get("artifact_store"))
    search, trainer, fingerprint = make_search(train_loader, val_loader, output_dir, hyperparameters, **options)
    study, interrupted = prepare_study(search, fingerprint)
    progress = Progress(search.n_trials)
    try:
        run_search(search, trainer, device, workers, adopt=interrupted, progress=progress)
        finish_search(study, search, trainer, device, workers, progress)  # trials on other machines
        progress.update(study)
    finally:
        progress.close()
    return write_results(study, search, trainer.train_kwargs["monitor"])

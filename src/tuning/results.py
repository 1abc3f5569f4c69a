"""A search's results: the trained trials, tuning_results.json and best_hyperparameters.json."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from src.core.atomic import write_json
from src.core.errors import PipelineError
from src.tuning.search import Search


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

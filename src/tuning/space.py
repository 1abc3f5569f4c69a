"""The search space, its samplers and the pruner: what a search may set and how trials draw from it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import optuna
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial

from src.core.errors import PipelineError
from src.models.bert_hyperparameters import RECOMMENDED

METHODS = ("grid", "random", "tpe")
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

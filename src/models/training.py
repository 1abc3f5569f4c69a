"""BERT fine-tuning (seed 000): train_epoch, evaluate, train_model, hyperparameter_tuning.

Every function runs on the project's one training engine (``src.training.Trainer``): the loop,
checkpointing and early stopping live there, not here. This module adds what is BERT-specific:
AdamW without weight decay on biases and LayerNorm weights, linear warmup then linear decay
stepped per batch, and the pretrained model's export.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from src.atomic import fsync_tree, full_disk_reported, write_json
from src.errors import PipelineError
from src.metrics import higher_is_better, is_improvement
from src.runtime import seed_everything
from src.models.bert_data import with_batch_size
from src.models.bert_model import LABEL_NAMES, BertSentimentClassifier
from src.models.dropout import register_attention, use_rand_dropout
from src.training import Trainer, distributed
from src.training.checkpoint_manager import MODEL_ID_FILE, load_checkpoint_file
from src.training.history import seed_history
from src.training.resume import run_fingerprint
from src.training.trainer import build_scheduler as engine_scheduler
from src.training.trainer import evaluate as run_evaluation
from src.training.trainer import resolve_device

log = logging.getLogger(__name__)

TUNABLE = ("learning_rate", "num_epochs", "batch_size", "weight_decay", "warmup_ratio", "dropout_prob")
NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "LayerNorm.bias")


def build_optimizer(model: nn.Module, learning_rate: float, weight_decay: float,
                    device: torch.device | str = "cpu") -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only: biases and LayerNorm weights are not decayed."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if any(nd in name for nd in NO_DECAY) else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # Fused: one kernel per step instead of a pass per tensor; on 2 CPU cores it cut MiniLM's
    # optimizer step from 0.10 s to 0.02 s (the forward and backward take 0.16 s).
    fused = torch.device(device).type in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=learning_rate, fused=fused or None)


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    """BERT's schedule, stepped per batch: the engine's linear warmup, then linear decay to zero."""
    return engine_scheduler(optimizer, "linear_warmup", total_steps=total_steps, warmup_ratio=warmup_ratio)


def _engine(model, train_loader, val_loader, optimizer, scheduler, device, checkpoint_dir="checkpoints",
            gradient_clip: float | None = 1.0, class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0,
            **trainer_kwargs) -> Trainer:
    """The shared Trainer, with BERT's per-step scheduler and cross-entropy loss (weighted per class
    with ``class_weights``, targets smoothed by ``label_smoothing``)."""
    criterion = nn.CrossEntropyLoss(weight=None if class_weights is None else class_weights.to(device),
                                    label_smoothing=label_smoothing)
    return Trainer(model, train_loader, val_loader, optimizer, criterion, scheduler, gradient_clip,
                   checkpoint_dir, scheduler_interval="step", device=device, **trainer_kwargs)


def train_epoch(model, data_loader, optimizer, scheduler, device, *, mixed_precision: bool = True) -> float:
    """Train ``model`` for one epoch; returns the average training loss."""
    return _engine(model, data_loader, None, optimizer, scheduler, device, mixed_precision=mixed_precision,
                   progress=False).train_epoch()


def evaluate(model, data_loader, device, *, mixed_precision: bool = True) -> tuple[float, float, list[int]]:
    """Returns (average loss, accuracy, predictions) of ``model`` on ``data_loader``."""
    result = run_evaluation(model, data_loader, resolve_device(device), nn.CrossEntropyLoss(), mixed_precision)
    return result["loss"], result["accuracy"], result["predictions"]


def _remove(path: Path) -> None:
    """Remove a file or a directory tree; a symbolic link is removed itself, never followed."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _export(model: BertSentimentClassifier, tokenizer, directory: Path, model_id: str | None = None) -> None:
    """save_pretrained into a temp directory, synced to disk, then swapped in by two renames: a kill
    never leaves half an export (between the renames there is none, and the stage has not finished).
    ``model_id`` (of the best_model.pt it is made from) goes into ``MODEL_ID_FILE`` inside it."""
    tmp, old = directory.with_name(f".{directory.name}.tmp"), directory.with_name(f".{directory.name}.old")
    for leftover in (tmp, old):  # from a run killed while exporting (a link there would lead the export out)
        _remove(leftover)
    with full_disk_reported(directory, "the partial export was removed", cleanup=lambda: _remove(tmp)):
        model.save_pretrained(tmp, tokenizer)
        if model_id is not None:
            write_json(tmp / MODEL_ID_FILE, {"model_id": model_id, "weights": "best_model.pt"})
        fsync_tree(tmp)
    if directory.exists() or directory.is_symlink():
        os.replace(directory, old)
    os.replace(tmp, directory)
    _remove(old)


def train_model(
    train_loader,
    val_loader,
    model_save_dir: str | os.PathLike,
    num_epochs: int = 4,
    learning_rate: float = 2e-5,
    weight_decay: float = 0.01,
    warmup_ratio: float = 0.1,
    device: str = "auto",
    model_name: str = "bert-base-uncased",
    num_classes: int = 3,
    *,
    dropout_prob: float = 0.1,
    gradient_clip: float | None = 1.0,
    monitor: str = "val_macro_recall",
    early_stopping_patience: int | None = None,
    seed: int = 42,
    tokenizer=None,
    label_names=LABEL_NAMES,
    mixed_precision: bool = True,
    compile_model: bool = False,
    max_checkpoints: int | None = None,
    keep_checkpoints: bool = True,
    progress: bool = True,
    class_weights: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    resume: bool = False,
    fingerprint: dict | None = None,
    on_epoch_end=None,
    training_log=None,
) -> tuple[BertSentimentClassifier, dict]:
    """Fine-tune ``model_name`` and return (the best epoch's model, history).

    Writes into ``model_save_dir``: ``checkpoint_epoch_X.pt`` after each epoch (the newest with
    optimizer, scheduler and RNG state for resuming, older ones the model alone), ``best_model.pt``
    (the model of the best ``monitor`` epoch on validation), ``training_history.json``, and ``model/``
    (save_pretrained weights, config with label names, tokenizer) for inference without this code.
    ``best_model.pt`` and ``model/`` are replaced only when training finishes, both stamped with the
    same model id, so the directory holds the previous complete model until then. With
    ``keep_checkpoints=False`` (tuning trials) the ``.pt`` files are removed once the best weights
    are exported.

    ``resume=True`` continues from the newest good checkpoint in ``model_save_dir`` when it was
    written by an unfinished run with the same ``fingerprint``, and otherwise clears the old
    checkpoints and starts fresh (see ``Trainer.resume``). ``fingerprint`` defaults to this call's
    training arguments; a stage passes ``run_fingerprint`` of its params, input files and code.
    ``on_epoch_end(epoch, metrics)`` is the engine's per-epoch hook (tune's pruner reports there).
    ``training_log`` is the engine's live log (train_bert passes src.training.live.DVCLiveLog).
    ``class_weights`` (one per class) weighs the cross-entropy loss; None, the seed's, weighs none.
    ``label_smoothing`` spreads that share of each target over all classes (0: the seed's loss).
    """
    seed_everything(seed)  # the head's init and dropout are reproducible
    model_save_dir = Path(model_save_dir)
    device = resolve_device(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    # The same model, computed faster on a CPU (README, "Where the time goes"): attention the eager
    # way, as PyTorch's fused kernel (sdpa, transformers' default) takes a slower path there when
    # attention dropout is on; dropout masks drawn with torch.rand rather than bernoulli_.
    attention = register_attention() if device.type == "cpu" else None
    model = BertSentimentClassifier(model_name, num_classes, dropout_prob, label_names, attention)
    if device.type == "cpu":
        use_rand_dropout(model)
    if compile_model:
        model.compile()  # in place: state_dict keys stay the same
    optimizer = build_optimizer(model, learning_rate, weight_decay, device)
    scheduler = build_scheduler(optimizer, num_epochs * len(train_loader), warmup_ratio)
    if fingerprint is None:
        fingerprint = run_fingerprint({
            "num_epochs": num_epochs, "learning_rate": learning_rate, "weight_decay": weight_decay,
            "warmup_ratio": warmup_ratio, "model_name": str(model_name), "num_classes": num_classes,
            "dropout_prob": dropout_prob, "gradient_clip": gradient_clip, "monitor": monitor,
            "early_stopping_patience": early_stopping_patience, "seed": seed, "label_names": list(label_names),
            "mixed_precision": mixed_precision, "batches_per_epoch": len(train_loader),
            "class_weights": None if class_weights is None else class_weights.tolist(),
            "label_smoothing": label_smoothing})

    def export_best(published: dict) -> None:
        """Once best_model.pt is in place: its weights into ``model``, the history, the export."""
        best = load_checkpoint_file(model_save_dir / "best_model.pt", map_location=device)
        model.load_state_dict(best["model_state_dict"])
        write_json(model_save_dir / "training_history.json", seed_history(trainer.history))
        _export(model, tokenizer, model_save_dir / "model", published["model_id"])

    trainer = _engine(model, train_loader, val_loader, optimizer, scheduler, device, model_save_dir,
                      gradient_clip=gradient_clip, class_weights=class_weights, label_smoothing=label_smoothing,
                      monitor=monitor,
                      mixed_precision=mixed_precision, max_checkpoints=max_checkpoints or num_epochs, progress=progress,
                      fingerprint=fingerprint, on_publish=export_best, on_epoch_end=on_epoch_end,
                      training_log=training_log)
    if resume:
        trainer.resume()
    history = seed_history(trainer.train(num_epochs, early_stopping_patience, save_best=True, save_every=1))
    if not distributed.is_main_process():  # under torchrun rank 0 alone publishes and writes the results
        return model, history
    if trainer.model_id is None:  # no epoch ever improved on the monitored metric (NaN losses)
        raise PipelineError(f"{model_save_dir}: no best model to export ({monitor} never improved)")
    if not keep_checkpoints:
        for checkpoint in [*model_save_dir.glob("*.pt"), model_save_dir / "checkpoint_registry.json"]:
            checkpoint.unlink(missing_ok=True)
    return model, history


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


class _TrialTrainer:
    """Trains one trial's configuration with ``train_model`` into ``config_<trial number>/``.

    Picklable, so that spawned tune workers receive it. Every trial is seeded with the same ``seed``
    (model head, dropout, batch order): its result depends on its configuration only, not on the
    worker or the trials before it. Reports the monitored value after each epoch to the pruner.
    """

    def __init__(self, train_loader, val_loader, output_dir: Path, base: dict, seed: int, train_kwargs: dict,
                 named: dict[str, dict] | None = None):
        self.train_loader, self.val_loader, self.output_dir = train_loader, val_loader, output_dir
        self.base, self.seed, self.train_kwargs = base, seed, train_kwargs
        self.named = named  # named configurations: the search picks a name (NAMED), this holds its values

    def __call__(self, trial, sampled: dict, device: str) -> float:
        import optuna

        config = {**self.base, **(self.named[sampled[NAMED]] if self.named else sampled)}
        directory = self.output_dir / f"config_{trial.number}"
        shutil.rmtree(directory, ignore_errors=True)  # what a killed attempt left
        loader = with_batch_size(self.train_loader, config["batch_size"], self.seed) \
            if hasattr(self.train_loader, "dataset") else self.train_loader
        monitor = self.train_kwargs["monitor"]
        epochs: list[dict] = []

        def report(epoch: int, metrics: dict) -> None:
            epochs.append(metrics)
            with warnings.catch_warnings():  # a retried trial reports its epochs again: the same values
                warnings.simplefilter("ignore")
                trial.report(metrics[monitor], epoch)
            if epoch < config["num_epochs"] and trial.should_prune():  # after the last epoch: nothing to save
                raise optuna.TrialPruned(f"{monitor} {metrics[monitor]:.4f} after epoch {epoch} is below the "
                                         "median of the finished trials")

        started = time.perf_counter()
        pruned = None
        try:
            train_model(loader, self.val_loader, directory, config["num_epochs"], config["learning_rate"],
                        config["weight_decay"], config["warmup_ratio"], device, dropout_prob=config["dropout_prob"],
                        seed=self.seed, on_epoch_end=report, **self.train_kwargs)
        except optuna.TrialPruned as exc:
            pruned = exc
            for checkpoint in [*directory.glob("*.pt"), directory / "checkpoint_registry.json"]:
                checkpoint.unlink(missing_ok=True)  # a pruned trial keeps its record only
        best_index = 0
        for index, metrics in enumerate(epochs):
            if is_improvement(metrics[monitor], epochs[best_index][monitor] if index else None, monitor):
                best_index = index
        best = epochs[best_index]
        record = {"params": sampled, "hyperparameters": config, "epochs_run": len(epochs),
                  "best_epoch": best_index + 1, **{key: best[key] for key in
                                                  ("val_loss", "val_accuracy", "val_macro_recall", "val_macro_f1")},
                  "time_s": round(time.perf_counter() - started, 2)}
        write_json(directory / "trial.json", {"trial": trial.number, "state": "pruned" if pruned else "complete",
                                              **record})
        trial.set_user_attr("result", record)
        if pruned is not None:
            raise pruned
        return float(best[monitor])


def _search(train_loader, val_loader, output_dir, hyperparameters, base_hyperparameters, method, n_trials, seed,
            pruning, storage, fingerprint, train_kwargs):
    """The study's description and the trial trainer that hyperparameter_tuning and join_search share."""
    from src import tuning

    named = named_configurations(hyperparameters)
    if named is None and not isinstance(hyperparameters, dict) or named is None and not all(
            isinstance(values, (list, tuple)) and values for values in hyperparameters.values()):
        raise PipelineError("hyperparameters: expected {name: [values to try]}, {config name: {name: value}} "
                            f"or a list of {{name: value}} configurations, got {hyperparameters!r}")
    unknown = sorted((set().union(*named.values()) if named else set(hyperparameters)) - set(TUNABLE))
    if unknown:
        raise PipelineError(f"tune.search_space: cannot tune {', '.join(unknown)} (tunable: {', '.join(TUNABLE)})")
    if method not in tuning.METHODS:
        raise PipelineError(f"tune.method = {method!r}: expected one of {', '.join(tuning.METHODS)}")
    base = {"num_epochs": 4, "learning_rate": 2e-5, "batch_size": 16, "weight_decay": 0.01,
            "warmup_ratio": 0.1, "dropout_prob": 0.1, **(base_hyperparameters or {})}
    monitor = train_kwargs.setdefault("monitor", "val_macro_recall")
    train_kwargs.setdefault("progress", False)
    train_kwargs.setdefault("keep_checkpoints", False)  # each .pt also holds the optimizer: ~3x the model
    train_kwargs.setdefault("max_checkpoints", 1)
    space = {NAMED: list(named)} if named else {name: list(values) for name, values in hyperparameters.items()}
    if fingerprint is None:
        plain = {k: v for k, v in train_kwargs.items() if isinstance(v, (str, int, float, bool, list, tuple, type(None)))}
        fingerprint = run_fingerprint({"search_space": space, "method": method, "seed": seed, "base": base,
                                       "pruning": pruning or {}, "train": plain,
                                       "batches": [len(train_loader), len(val_loader)]})
    search = tuning.Search(Path(output_dir), storage, tuning.study_name(fingerprint), space, method, seed,
                           n_trials or tuning.space_size(space), "maximize" if higher_is_better(monitor) else "minimize",
                           pruning)
    return search, _TrialTrainer(train_loader, val_loader, Path(output_dir), base, seed, train_kwargs,
                                 named), fingerprint


def join_search(train_loader, val_loader, output_dir, hyperparameters, device="auto", *, base_hyperparameters=None,
                method="grid", n_trials=None, seed=42, pruning=None, workers=1, storage=None, fingerprint=None,
                **train_kwargs) -> None:
    """Run ``workers`` more workers for the search that ``hyperparameter_tuning`` (same arguments)
    started in the RDB ``storage``; each trial's directory is written here, under ``output_dir``."""
    from src import tuning

    if storage is None:
        raise PipelineError("tune.storage = null: a worker on another machine needs an RDB URL that every machine "
                            "reaches (e.g. postgresql://user@host/optuna)")
    search, trainer, _ = _search(train_loader, val_loader, output_dir, hyperparameters, base_hyperparameters, method,
                                 n_trials, seed, pruning, storage, fingerprint, train_kwargs)
    try:
        search.open()
    except KeyError:
        raise PipelineError(f"no study {search.name} in tune.storage: start the search first (dvc repro tune), "
                            "with the same params, data and code") from None
    tuning.run_search(search, trainer, device, workers)


def hyperparameter_tuning(
    train_loader,
    val_loader,
    test_loader,
    output_dir: str | os.PathLike,
    hyperparameters: dict[str, list],
    device: str = "auto",
    *,
    base_hyperparameters: dict[str, Any] | None = None,
    method: str = "grid",
    n_trials: int | None = None,
    seed: int = 42,
    pruning: dict | None = None,
    workers: int = 1,
    storage: str | None = None,
    fingerprint: dict | None = None,
    **train_kwargs: Any,
) -> tuple[BertSentimentClassifier, dict]:
    """Search ``hyperparameters`` with Optuna and return (best model, best hyperparameters).

    ``hyperparameters`` maps each tuned name to the values to try, or names configurations to try
    (``{"config_1": {"learning_rate": 2e-5, ...}, ...}`` or a list of such dicts). ``method``: ``grid`` (every
    combination, or the first ``n_trials`` of a seeded shuffle), ``random`` or ``tpe``, ``n_trials``
    trials (default: every combination); no configuration is trained twice. ``pruning``
    (``{"enabled", "startup_trials", "warmup_epochs"}``) stops a trial whose validation ``monitor``
    after an epoch is below the median of the finished trials. ``workers`` processes run trials at
    once, sharing the study's ``storage`` (default: a journal file in ``output_dir``; or an RDB URL);
    on a GPU machine worker i trains on ``cuda:(i % GPUs)``. A rerun after a kill resumes the study
    when its ``fingerprint`` (default: this call's arguments) is unchanged (see ``src.tuning``).

    Untuned values come from ``base_hyperparameters``. Trials are scored on ``val_loader`` only:
    ``test_loader`` is accepted for the seed's signature and never read, so nothing is selected
    on test. Writes ``config_X/`` per trial (X: the trial number), ``tuning_results.json`` (every
    trained trial; the best) and ``best_hyperparameters.json``.
    """
    from src import tuning

    del test_loader  # see docstring: selection never sees test data
    search, trainer, fingerprint = _search(train_loader, val_loader, output_dir, hyperparameters,
                                           base_hyperparameters, method, n_trials, seed, pruning, storage,
                                           fingerprint, train_kwargs)
    output_dir, monitor, space = search.output_dir, train_kwargs["monitor"], search.space
    study, interrupted = tuning.prepare_study(search, fingerprint)
    tuning.run_search(search, trainer, device, workers, adopt=interrupted)

    trials = tuning.trained_trials(study)
    if not any(t.state.name == "COMPLETE" for t in trials):
        raise PipelineError(f"tune: no trial completed in {output_dir} (every one was pruned)")
    best = study.best_trial
    best_hyperparameters = best.user_attrs["result"]["hyperparameters"]
    write_json(output_dir / "tuning_results.json", {
        "monitor": monitor, "method": method, "search_space": space, "n_trials": search.n_trials,
        "trials": [tuning.trial_record(t) for t in trials], "best_trial": best.number,
        "best_hyperparameters": best_hyperparameters, "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "skipped": tuning.skipped_count(study),
    })
    write_json(output_dir / "best_hyperparameters.json", best_hyperparameters)
    study.set_user_attr("finished", True)  # a rerun starts a new search (as a finished training run does)
    best_model = BertSentimentClassifier(str(output_dir / f"config_{best.number}" / "model"),
                                         train_kwargs.get("num_classes", 3), best_hyperparameters["dropout_prob"],
                                         train_kwargs.get("label_names", LABEL_NAMES))
    return best_model, best_hyperparameters

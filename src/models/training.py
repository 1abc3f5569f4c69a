"""The BERT fine-tuning guide's functions: train_epoch, evaluate, train_model, hyperparameter_tuning.

An adapter at the edge, at the path the guide gives: each function maps the guide's signature onto the
BERT recipe (src/recipes/bert_fine_tune.py: ``fine_tune(config, ...)``, its optimizer, schedule and
export) and the one training engine (src.training.Trainer). Nothing in the pipeline imports this module;
the guide's users and its command lines (scripts.train, scripts.tune) do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from src.core.runtime import resolve_device
from src.models.bert_hyperparameters import RECOMMENDED
from src.models.bert_model import LABEL_NAMES, BertSentimentClassifier
from src.recipes.bert_config import BertConfig
from src.recipes.bert_fine_tune import (  # noqa: F401  (the guide's module keeps these names)
    bert_trainer,
    build_optimizer,
    build_scheduler,
    export_pretrained,
    fine_tune,
)
from src.training.evaluation import evaluate as run_evaluation


def train_epoch(model, data_loader, optimizer, scheduler, device, *, mixed_precision: bool = True) -> float:
    """Train ``model`` for one epoch; returns the average training loss."""
    return bert_trainer(
        model, data_loader, None, optimizer, scheduler, device, mixed_precision=mixed_precision, progress=False
    ).train_epoch()


def evaluate(model, data_loader, device, *, mixed_precision: bool = True) -> tuple[float, float, list[int]]:
    """Returns (average loss, accuracy, predictions) of ``model`` on ``data_loader``."""
    result = run_evaluation(model, data_loader, resolve_device(device), nn.CrossEntropyLoss(), mixed_precision)
    return result["loss"], result["accuracy"], result["predictions"]


def train_model(
    train_loader,
    val_loader,
    model_save_dir: str | os.PathLike,
    num_epochs: int = RECOMMENDED["num_epochs"],
    learning_rate: float = RECOMMENDED["learning_rate"],
    weight_decay: float = RECOMMENDED["weight_decay"],
    warmup_ratio: float = RECOMMENDED["warmup_ratio"],
    device: str = "auto",
    model_name: str = "bert-base-uncased",
    num_classes: int = 3,
    *,
    dropout_prob: float = RECOMMENDED["dropout_prob"],
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
    layer_decay: float = 1.0,
    reinit_layers: int = 0,
    resume: bool = False,
    fingerprint: dict | None = None,
    on_epoch_end=None,
    training_log=None,
) -> tuple[BertSentimentClassifier, dict]:
    """Fine-tune ``model_name`` and return (the best epoch's model, history): the BERT fine-tuning
    guide's signature over ``fine_tune``, which takes the same settings as one BertConfig.

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
    ``class_weights`` (one per class) weighs the cross-entropy loss; None, the guide's, weighs none.
    ``label_smoothing`` spreads that share of each target over all classes (0: the guide's loss).
    ``layer_decay`` < 1 gives each encoder layer below the top that factor of the learning rate of
    the layer above; ``reinit_layers`` re-initialises the top encoder layers (0: the guide's, neither).
    """
    config = BertConfig(
        model_name=str(model_name),
        num_epochs=num_epochs,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        warmup_ratio=warmup_ratio,
        dropout_prob=dropout_prob,
        seed=seed,
        label_names=tuple(label_names),
        monitor=monitor,
        gradient_clip=gradient_clip,
        early_stopping_patience=early_stopping_patience,
        mixed_precision=mixed_precision,
        label_smoothing=label_smoothing,
        layer_decay=layer_decay,
        reinit_layers=reinit_layers,
        compile=compile_model,
    )
    return fine_tune(
        config,
        train_loader,
        val_loader,
        model_save_dir,
        resolve_device(device),
        num_classes=num_classes,
        tokenizer=tokenizer,
        class_weights=class_weights,
        resume=resume,
        fingerprint=fingerprint,
        on_epoch_end=on_epoch_end,
        training_log=training_log,
        keep_checkpoints=keep_checkpoints,
        max_checkpoints=max_checkpoints,
        progress=progress,
    )


def hyperparameter_tuning(
    train_loader,
    val_loader,
    test_loader,
    output_dir: str | os.PathLike,
    hyperparameters: dict[str, list],
    device: str = "auto",
    **options: Any,
) -> tuple[BertSentimentClassifier, dict]:
    """Search ``hyperparameters`` with Optuna and return (best model, best hyperparameters).

    ``hyperparameters`` maps each tuned name to the values to try, or names configurations to try
    (``{"config_1": {"learning_rate": 2e-5, ...}, ...}`` or a list of such dicts). ``options`` are
    ``src.tuning.tune``'s (method, n_trials, pruning, workers, storage, base_hyperparameters, and
    train_model's keyword arguments); untuned values default to ``RECOMMENDED``. Trials are scored
    on ``val_loader`` only: ``test_loader`` is accepted for the guide's signature and never read, so
    nothing is selected on test. Writes ``config_X/`` per trial (X: the trial number),
    ``tuning_results.json`` (every trained trial; the best) and ``best_hyperparameters.json``.
    """
    from src import tuning  # the search engine; it trains each trial with the train_model passed here

    del test_loader  # see docstring: selection never sees test data
    results = tuning.tune(train_loader, val_loader, output_dir, hyperparameters, device, train=train_model, **options)
    best = results["best_hyperparameters"]
    best_model = BertSentimentClassifier(
        str(Path(output_dir) / f"config_{results['best_trial']}" / "model"),
        options.get("num_classes", 3),
        best["dropout_prob"],
        options.get("label_names", LABEL_NAMES),
    )
    return best_model, best

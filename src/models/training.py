"""The BERT fine-tuning guide's functions: train_epoch, evaluate, train_model, hyperparameter_tuning.

Every function runs on the project's one training engine (``src.training.Trainer``): the loop,
checkpointing and early stopping live there, not here. This module adds what is BERT-specific:
AdamW without weight decay on biases and LayerNorm weights, linear warmup then linear decay
stepped per batch, and the pretrained model's export. The search behind ``hyperparameter_tuning``
is ``src.tuning``'s.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from src.checkpoints.files import MODEL_ID_FILE, load_checkpoint_file
from src.checkpoints.remove import remove_checkpoints
from src.checkpoints.resume import run_fingerprint
from src.core.atomic import fsync_tree, full_disk_reported, write_json
from src.core.errors import PipelineError
from src.core.runtime import resolve_device, seed_everything
from src.models.bert_hyperparameters import RECOMMENDED
from src.models.bert_model import LABEL_NAMES, BertSentimentClassifier
from src.models.dropout import register_attention, use_rand_dropout
from src.models.encoder import layer_depths as encoder_depths
from src.models.encoder import reinit_top_layers
from src.recipes.bert_config import BertConfig
from src.training import Trainer, distributed
from src.training.history import guide_history
from src.training.trainer import build_scheduler as engine_scheduler
from src.training.trainer import evaluate as run_evaluation

log = logging.getLogger(__name__)


def build_optimizer(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    device: torch.device | str = "cpu",
    layer_decay: float = 1.0,
) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only: biases and LayerNorm weights are not decayed.

    ``layer_decay`` < 1 scales each encoder layer's learning rate by ``layer_decay`` per layer below
    the top (the head and the top layer get ``learning_rate``, the embeddings the smallest rate)."""
    depth_of = encoder_depths(model) if layer_decay != 1.0 else None
    groups: dict[tuple[int, bool], list] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            decayed = parameter.ndim >= 2  # biases and norm weights (of any family) are not decayed
            groups.setdefault((depth_of(name) if depth_of else 0, decayed), []).append(parameter)
    top = max(depth for depth, _ in groups) if groups else 0
    param_groups = [
        {
            "params": groups[key],
            "weight_decay": weight_decay if key[1] else 0.0,
            "lr": learning_rate * layer_decay ** (top - key[0]),
        }
        # the top layer first: the logged learning rate (param_groups[0]) is the head's
        for key in sorted(groups, key=lambda k: (-k[0], not k[1]))
    ]
    # Fused: one kernel per step instead of a pass per tensor, five times faster on a CPU (docs/decisions.md)
    fused = torch.device(device).type in ("cuda", "cpu")
    return torch.optim.AdamW(param_groups, lr=learning_rate, fused=fused or None)


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    """BERT's schedule, stepped per batch: the engine's linear warmup, then linear decay to zero."""
    return engine_scheduler(optimizer, "linear_warmup", total_steps=total_steps, warmup_ratio=warmup_ratio)


def _engine(
    model,
    train_loader,
    val_loader,
    optimizer,
    scheduler,
    device,
    checkpoint_dir="checkpoints",
    gradient_clip: float | None = 1.0,
    class_weights: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    **trainer_kwargs,
) -> Trainer:
    """The shared Trainer, with BERT's per-step scheduler and cross-entropy loss (weighted per class
    with ``class_weights``, targets smoothed by ``label_smoothing``; ``rdrop_alpha`` among the
    Trainer's keyword arguments adds R-Drop's consistency term)."""
    criterion = nn.CrossEntropyLoss(
        weight=None if class_weights is None else class_weights.to(device), label_smoothing=label_smoothing
    )
    return Trainer(
        model,
        train_loader,
        val_loader,
        optimizer,
        criterion,
        scheduler,
        gradient_clip,
        checkpoint_dir,
        scheduler_interval="step",
        device=device,
        **trainer_kwargs,
    )


def train_epoch(model, data_loader, optimizer, scheduler, device, *, mixed_precision: bool = True) -> float:
    """Train ``model`` for one epoch; returns the average training loss."""
    return _engine(
        model, data_loader, None, optimizer, scheduler, device, mixed_precision=mixed_precision, progress=False
    ).train_epoch()


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


def export_pretrained(model: BertSentimentClassifier, tokenizer, directory: Path, model_id: str | None = None) -> None:
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
    ema_decay: float | None = None,
    rdrop_alpha: float = 0.0,
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
    ``ema_decay`` validates, checkpoints and exports an exponential moving average of the weights
    (None: the last step's weights, the guide's). ``rdrop_alpha`` > 0 trains with R-Drop: each batch
    twice through dropout, the loss plus that weight of the symmetric KL divergence between the two
    predictions (0: the guide's loss; it doubles the training step's work).
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
        ema_decay=ema_decay,
        rdrop_alpha=rdrop_alpha,
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


def fine_tune(
    config: BertConfig,
    train_loader,
    val_loader,
    model_save_dir: str | os.PathLike,
    device: torch.device,
    *,
    num_classes: int | None = None,
    tokenizer=None,
    class_weights: torch.Tensor | None = None,
    resume: bool = False,
    fingerprint: dict | None = None,
    on_epoch_end=None,
    training_log=None,
    keep_checkpoints: bool = True,
    max_checkpoints: int | None = None,
    progress: bool = True,
) -> tuple[BertSentimentClassifier, dict]:
    """Fine-tune ``config.model_name`` with the settings of ``config`` (a BertConfig) on ``device``.

    The run itself, read top to bottom: seed, model, optimizer and schedule, the engine, train, export.
    The keyword arguments are what a config does not hold: the data's tokenizer and class weights
    (a tensor, one per class), resuming and its fingerprint, and the hooks (see ``train_model``).
    """
    label_names = tuple(config.label_names or LABEL_NAMES)
    num_classes = num_classes or len(label_names)
    seed_everything(config.seed)  # the head's init and dropout are reproducible
    model_save_dir = Path(model_save_dir)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    # The same model, computed faster on a CPU (README, "Where the time goes"): attention the eager
    # way, as PyTorch's fused kernel (sdpa, transformers' default) takes a slower path there when
    # attention dropout is on; dropout masks drawn with torch.rand rather than bernoulli_.
    attention = register_attention() if device.type == "cpu" else None
    model = BertSentimentClassifier(config.model_name, num_classes, config.dropout_prob, label_names, attention)
    if device.type == "cpu":
        use_rand_dropout(model)
    reinit_top_layers(model, config.reinit_layers)
    if config.compile:
        model.compile()  # in place: state_dict keys stay the same
    optimizer = build_optimizer(model, config.learning_rate, config.weight_decay, device, config.layer_decay)
    scheduler = build_scheduler(optimizer, config.num_epochs * len(train_loader), config.warmup_ratio)
    if fingerprint is None:
        fingerprint = run_fingerprint(
            {
                "num_epochs": config.num_epochs,
                "learning_rate": config.learning_rate,
                "weight_decay": config.weight_decay,
                "warmup_ratio": config.warmup_ratio,
                "model_name": config.model_name,
                "num_classes": num_classes,
                "dropout_prob": config.dropout_prob,
                "gradient_clip": config.gradient_clip,
                "monitor": config.monitor,
                "early_stopping_patience": config.early_stopping_patience,
                "seed": config.seed,
                "label_names": list(label_names),
                "mixed_precision": config.mixed_precision,
                "batches_per_epoch": len(train_loader),
                "class_weights": None if class_weights is None else class_weights.tolist(),
                "label_smoothing": config.label_smoothing,
                "layer_decay": config.layer_decay,
                "reinit_layers": config.reinit_layers,
                "ema_decay": config.ema_decay,
                "rdrop_alpha": config.rdrop_alpha,
            }
        )

    def export_best(published: dict) -> None:
        """Once best_model.pt is in place: its weights into ``model``, the history, the export."""
        best = load_checkpoint_file(model_save_dir / "best_model.pt", map_location=device)
        model.load_state_dict(best["model_state_dict"])
        write_json(model_save_dir / "training_history.json", guide_history(trainer.history))
        export_pretrained(model, tokenizer, model_save_dir / "model", published["model_id"])

    trainer = _engine(
        model,
        train_loader,
        val_loader,
        optimizer,
        scheduler,
        device,
        model_save_dir,
        gradient_clip=config.gradient_clip,
        class_weights=class_weights,
        label_smoothing=config.label_smoothing,
        monitor=config.monitor,
        mixed_precision=config.mixed_precision,
        max_checkpoints=max_checkpoints or config.num_epochs,
        progress=progress,
        fingerprint=fingerprint,
        on_publish=export_best,
        on_epoch_end=on_epoch_end,
        training_log=training_log,
        ema_decay=config.ema_decay,
        rdrop_alpha=config.rdrop_alpha,
    )
    if resume:
        trainer.resume()
    history = guide_history(
        trainer.train(config.num_epochs, config.early_stopping_patience, save_best=True, save_every=1)
    )
    if not distributed.is_main_process():  # under torchrun rank 0 alone publishes and writes the results
        return model, history
    if trainer.model_id is None:  # no epoch ever improved on the monitored metric (NaN losses)
        raise PipelineError(f"{model_save_dir}: no best model to export ({config.monitor} never improved)")
    if not keep_checkpoints:
        remove_checkpoints(model_save_dir)
    return model, history


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

"""The BERT recipe's run: ``fine_tune(config, ...)`` with its optimizer, schedule and export.

One BertConfig (src/recipes/bert_config.py) holds every setting; the train_bert stage, tune's trials
(``TrialRun``) and the guide's ``train_model`` (src/models/training.py, an adapter over this) all call
``fine_tune``. What is BERT-specific lives here: AdamW without weight decay on biases and LayerNorm
weights, linear warmup then linear decay stepped per batch, the pretrained model's export. The loop,
checkpointing and early stopping are the engine's (src.training.Trainer).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import torch
from torch import nn

from src.checkpoints.files import MODEL_ID_FILE, load_checkpoint_file
from src.checkpoints.remove import remove_checkpoints
from src.checkpoints.resume import run_fingerprint
from src.core.atomic import fsync_tree, full_disk_reported, write_json
from src.core.errors import PipelineError
from src.core.runtime import resolve_device, seed_everything
from src.models.bert_model import LABEL_NAMES, BertSentimentClassifier
from src.models.dropout import register_attention, use_rand_dropout
from src.models.encoder import layer_depths as encoder_depths
from src.models.encoder import reinit_top_layers
from src.recipes.bert_config import BertConfig
from src.training import distributed
from src.training.history import guide_history
from src.training.schedules import build_scheduler as engine_scheduler
from src.training.trainer import Trainer


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


def bert_trainer(
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
    with ``class_weights``, targets smoothed by ``label_smoothing``)."""
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
    (a tensor, one per class), resuming and its fingerprint (default: the config's settings and the data's
    shape), and the hooks (``on_epoch_end(epoch, metrics)``, tune's pruner; ``training_log``, DVCLive). Writes
    what the guide's ``train_model`` documents into ``model_save_dir``.
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
    if fingerprint is None:  # the config's settings, and what of the data shapes the run
        fingerprint = run_fingerprint(
            {
                **config.fingerprint_params(),
                "num_classes": num_classes,
                "batches_per_epoch": len(train_loader),
                "class_weights": None if class_weights is None else class_weights.tolist(),
            }
        )

    def export_best(published: dict) -> None:
        """Once best_model.pt is in place: its weights into ``model``, the history, the export."""
        best = load_checkpoint_file(model_save_dir / "best_model.pt", map_location=device)
        model.load_state_dict(best["model_state_dict"])
        write_json(model_save_dir / "training_history.json", guide_history(trainer.history))
        export_pretrained(model, tokenizer, model_save_dir / "model", published["model_id"])

    trainer = bert_trainer(
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


@dataclasses.dataclass(frozen=True)
class TrialRun:
    """One tune trial: ``config`` with the trial's hyperparameters, through ``fine_tune``. Called with the
    signature src.tuning's search trains a trial with (the guide's ``train_model``'s); picklable, so that
    spawned workers receive it."""

    config: BertConfig

    def __call__(
        self,
        train_loader,
        val_loader,
        model_save_dir: str | os.PathLike,
        num_epochs: int,
        learning_rate: float,
        weight_decay: float,
        warmup_ratio: float,
        device: str = "auto",
        *,
        dropout_prob: float,
        seed: int,
        monitor: str | None = None,
        **run,
    ) -> tuple[BertSentimentClassifier, dict]:
        trial_values = dict(
            num_epochs=num_epochs,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            warmup_ratio=warmup_ratio,
            dropout_prob=dropout_prob,
            seed=seed,
            monitor=monitor or self.config.monitor,
        )
        config = dataclasses.replace(self.config, **trial_values)
        return fine_tune(config, train_loader, val_loader, model_save_dir, resolve_device(device), **run)

"""The LSTM training run behind `python src/training/train_model.py` and the train_lstm stage.

Its settings are one LstmConfig (src/recipes/lstm_config.py), from the command line or from params.yaml.
The command line adds GloVe downloads (--use-glove without a built vocabulary); the stage passes the GloVe
rows build_vocab aligned, so it never imports the downloader.
"""

from __future__ import annotations

import logging
from pathlib import Path

from src.core.errors import PipelineError
from src.recipes.lstm_config import LstmConfig

log = logging.getLogger(__name__)


def _check_output_dim(output_dim: int, label_names: list[str], data: str) -> None:
    classes = len(label_names)
    if output_dim == 1 and classes != 2:
        raise PipelineError(
            f"output_dim = 1 (one logit, binary cross-entropy) needs a two-class data set; {data} has "
            f"{classes} classes ({', '.join(label_names)}): set output_dim to {classes}"
        )
    if output_dim not in (1, classes):
        raise PipelineError(
            f"output_dim = {output_dim} but {data} has {classes} classes ({', '.join(label_names)}): "
            f"set output_dim to {classes}" + (" (or 1: one logit)" if classes == 2 else "")
        )


def _input_files(config: LstmConfig) -> list[Path]:
    data = Path(config.data_dir)
    files = sorted(p for p in data.iterdir() if p.is_file()) if data.is_dir() else [data]
    if config.vocab_dir:
        files += [
            p for p in (Path(config.vocab_dir) / "vocab.json", Path(config.vocab_dir) / "embeddings.npy") if p.is_file()
        ]
    return files


def run(config: LstmConfig, glove_init=None) -> dict:
    """Train as ``config`` says; returns the best epoch's metrics. The device is resolved here, once. Under
    torchrun, one process per GPU (or CPU slot) with ``batch_size`` the global batch."""
    from src.core.runtime import resolve_device, use_all_cpu_cores
    from src.training import distributed

    use_all_cpu_cores()
    with distributed.process_group(resolve_device(config.device, key="--device"), config.timeout_s) as device:
        return _train(config, device, glove_init)


def _train(config: LstmConfig, device, glove_init) -> dict:
    import numpy as np

    from src.checkpoints.resume import run_fingerprint, source_files
    from src.core.atomic import publish_copy, write_json
    from src.core.runtime import seed_everything
    from src.data.data_sources import read_dataset
    from src.data.vocab import Vocabulary
    from src.models.lstm_data import make_loader
    from src.models.lstm_model import LSTMClassifier
    from src.training import create_trainer, distributed
    from src.training.class_weights import class_weights
    from src.training.history import best_epoch_metrics, epoch_rows, guide_history
    from src.training.live import DVCLiveLog
    from src.training.trainer import default_criterion

    seed_everything(config.seed)
    output_dir, checkpoint_dir = Path(config.output_dir), Path(config.checkpoint_dir)
    csv_params = {"val_size": config.validation_split}
    wanted = list(config.label_names) if config.label_names else None
    splits, label_names = read_dataset(config.data_dir, wanted, csv_params, seed=config.seed)
    train, val = splits["train"], splits["val"]
    output_dim = config.output_dim or len(label_names)
    _check_output_dim(output_dim, label_names, config.data_dir)

    embeddings = None
    if config.vocab_dir:
        vocab = Vocabulary.load(Path(config.vocab_dir) / "vocab.json")
        if config.use_glove:
            embeddings = np.load(Path(config.vocab_dir) / "embeddings.npy")
    else:
        vocab = Vocabulary.build(train.texts, config.min_freq, config.max_vocab_size)
    if config.vocab_size is not None and config.vocab_size != len(vocab):
        relation = "smaller than" if config.vocab_size < len(vocab) else "larger than"
        raise PipelineError(
            f"vocab_size = {config.vocab_size} is {relation} the vocabulary ({len(vocab)} words, built "
            f"from {config.vocab_dir or config.data_dir}): set vocab_size to {len(vocab)} or leave it out"
        )
    embedding_dim = config.embedding_dim or (
        embeddings.shape[1] if embeddings is not None else int(config.glove_dim[:-1]) if config.use_glove else 100
    )

    train_loader = make_loader(
        train.texts, train.labels, vocab, config.batch_size, True, seed=config.seed, max_length=config.max_length
    )
    val_loader = make_loader(val.texts, val.labels, vocab, 256, shuffle=False, max_length=config.max_length)
    model = LSTMClassifier(
        len(vocab), embedding_dim, config.hidden_dim, output_dim, config.n_layers, config.dropout, config.bidirectional
    )
    if embeddings is not None:
        model.load_pretrained_embeddings(embeddings, freeze=config.freeze_embeddings)
    elif config.use_glove:
        if glove_init is None:
            raise PipelineError(
                "--use-glove without --vocab-dir: run python src/training/train_model.py, which "
                "reads GloVe files, or pass a --vocab-dir holding embeddings.npy"
            )
        glove_init(
            model,
            vocab,
            config.glove_corpus,
            config.glove_dim,
            config.freeze_embeddings,
            cache_dir=config.glove_dir,
            seed=config.seed,
        )
    n_classes = len(label_names)
    weights = class_weights(train.labels, config.class_weights, n_classes, "--class-weights", str(config.data_dir))
    trainer = create_trainer(
        model,
        train_loader,
        val_loader,
        learning_rate=config.learning_rate,
        scheduler_type=config.scheduler,
        weight_decay=config.weight_decay,
        gradient_clip=config.gradient_clip,
        checkpoint_dir=checkpoint_dir,
        epochs=config.epochs,
        monitor=config.monitor,
        criterion=default_criterion(model, weights),
        # two epoch checkpoints by default: if the newest is unreadable, resume falls back to the one before
        max_checkpoints=config.max_checkpoints,
        save_best_n=1,
        device=device,
        fingerprint=run_fingerprint(
            # what shapes the result: a rerun after a kill resumes only when these are unchanged
            {
                "lstm": config.shaping(),
                "label_names": label_names,
                "distributed": {"world_size": distributed.world_size()},
            },
            _input_files(config),
            source_files(__file__),
        ),
        # rank 0 alone logs
        training_log=DVCLiveLog(config.live_dir) if config.live_dir and distributed.is_main_process() else None,
    )

    def write_model_files(published: dict) -> None:
        """Beside the new best_model.pt, what describes it; model_config.json last, naming its model
        id: until it is written, evaluate and predict report the directory as incomplete."""
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json(output_dir / "training_history.json", trainer.history)
        vocab.save(output_dir / "vocab.json")  # the model directory is self-contained for evaluation
        if output_dir.resolve() != checkpoint_dir.resolve():
            publish_copy(checkpoint_dir / "best_model.pt", output_dir / "best_model.pt")
        write_json(
            output_dir / "model_config.json",
            {
                **model.config,
                "label_names": label_names,
                "max_length": config.max_length,
                "vocab": "vocab.json",
                "weights": "best_model.pt",
                "model_id": published["model_id"],
            },
        )

    trainer.on_publish = write_model_files
    trainer.resume()  # continues a killed run with the same fingerprint; otherwise clears its checkpoints
    history = trainer.train(config.epochs, early_stopping_patience=config.early_stopping_patience)
    if not distributed.is_main_process():  # rank 0 writes the model directory, metrics and plots
        return {}
    if trainer.model_id is None:  # no epoch ever improved on the monitored metric (NaN losses)
        raise PipelineError(f"{checkpoint_dir}: no best model to save ({config.monitor} never improved)")
    metrics = best_epoch_metrics(guide_history(history), model)
    if config.metrics_file:
        write_json(config.metrics_file, metrics)
    if config.plots_file:
        write_json(config.plots_file, epoch_rows(guide_history(history)))
    if trainer.training_log is not None:
        trainer.training_log.close()
    return metrics

"""train_lstm: the (Bi)LSTM on data/processed with the data/vocab vocabulary (+ GloVe), via src.training."""
from pathlib import Path

import numpy as np
import torch

from src.atomic import write_json
from src.cli import run_stage
from src.errors import PipelineError
from src.models.lstm_data import make_loader
from src.models.lstm_model import LSTMClassifier
from src.preprocess import check_every_class_present, read_split
from src.runtime import out_of_memory_names, seed_everything, use_all_cpu_cores
from src.training import create_trainer, distributed
from src.training.class_weights import class_weights
from src.training.history import best_epoch_metrics, epoch_rows, seed_history
from src.training.live import DVCLiveLog
from src.training.resume import run_fingerprint, source_files
from src.training.trainer import resolve_device
from src.vocab import Vocabulary

DATA_DIR = Path("data/processed")
VOCAB_DIR = Path("data/vocab")
MODEL_DIR = Path("models/lstm")
METRICS_PATH = Path("metrics/lstm/train.json")  # the same keys as metrics/bert/train.json
PLOTS_PATH = Path("plots/train_lstm.json")
LIVE_DIR = Path("dvclive/train_lstm")  # DVCLive: per-step loss and per-epoch validation while it trains
MONITOR = "val_macro_recall"  # TweetEval's official metric picks the best epoch


@out_of_memory_names(("lstm.batch_size",))
def main(params: dict) -> None:
    use_all_cpu_cores()
    # under torchrun: one process per GPU (or CPU slot); lstm.batch_size is the global batch
    with distributed.process_group(resolve_device("auto"), params["distributed"]["timeout_s"]) as device:
        train(params, device)


def train(params: dict, device: torch.device) -> None:
    cfg, label_names = params["lstm"], params["data"]["label_names"]
    seed_everything(cfg["seed"])

    vocab = Vocabulary.load(VOCAB_DIR / "vocab.json")
    # labels must index data.label_names: processed data made with other names is an error naming the line
    train, val = read_split(DATA_DIR / "train.jsonl", label_names), read_split(DATA_DIR / "val.jsonl", label_names)
    check_every_class_present(train, label_names, DATA_DIR / "train.jsonl")
    train_loader = make_loader(train.texts, train.labels, vocab, cfg["batch_size"], shuffle=True, seed=cfg["seed"],
                               max_length=cfg["max_length"])
    val_loader = make_loader(val.texts, val.labels, vocab, 256, shuffle=False, max_length=cfg["max_length"])

    model = LSTMClassifier(len(vocab), cfg["embedding_dim"], cfg["hidden_dim"], len(label_names), cfg["n_layers"],
                           cfg["dropout"], cfg["bidirectional"])
    if cfg["use_glove"]:
        model.load_pretrained_embeddings(np.load(VOCAB_DIR / "embeddings.npy"), freeze=cfg["freeze_embeddings"])

    weights = class_weights(train.labels, cfg["class_weights"], len(label_names), "lstm.class_weights",
                            str(DATA_DIR / "train.jsonl"))
    inputs = [DATA_DIR / "train.jsonl", DATA_DIR / "val.jsonl", VOCAB_DIR / "vocab.json"]
    if cfg["use_glove"]:
        inputs.append(VOCAB_DIR / "embeddings.npy")
    trainer = create_trainer(
        model, train_loader, val_loader, learning_rate=cfg["learning_rate"], scheduler_type=cfg["scheduler"],
        weight_decay=cfg["weight_decay"], gradient_clip=cfg["gradient_clip"], checkpoint_dir=MODEL_DIR,
        epochs=cfg["epochs"], monitor=MONITOR, criterion=torch.nn.CrossEntropyLoss(weight=weights),
        # two epoch checkpoints: if the newest is unreadable, resume falls back to the one before
        max_checkpoints=2, save_best_n=1, device=device,
        fingerprint=run_fingerprint({"lstm": cfg, "data": {"label_names": label_names},
                                     "distributed": {"world_size": distributed.world_size()}},
                                    inputs, source_files(__file__)),
        training_log=DVCLiveLog(LIVE_DIR) if distributed.is_main_process() else None,  # rank 0 alone logs
    )

    def write_model_files(published: dict) -> None:
        """Beside the new best_model.pt, what describes it; model_config.json last, naming its model
        id: until it is written, evaluate and predict report the directory as incomplete."""
        write_json(MODEL_DIR / "training_history.json", trainer.history)
        vocab.save(MODEL_DIR / "vocab.json")  # the model directory is self-contained for evaluation
        write_json(MODEL_DIR / "model_config.json", {
            **model.config, "label_names": label_names, "max_length": cfg["max_length"], "vocab": "vocab.json",
            "weights": "best_model.pt", "model_id": published["model_id"]})

    trainer.on_publish = write_model_files
    # MODEL_DIR is a persisted DVC output: after a kill, its checkpoints let this run resume;
    # resume() clears them instead when params, data or code changed or that run finished.
    trainer.resume()
    history = trainer.train(cfg["epochs"], early_stopping_patience=cfg["early_stopping_patience"])
    if not distributed.is_main_process():  # rank 0 writes the model directory, metrics and plots
        return
    if trainer.model_id is None:  # no epoch ever improved on the monitored metric (NaN losses)
        raise PipelineError(f"{MODEL_DIR}: no best model to save ({MONITOR} never improved)")
    write_json(METRICS_PATH, best_epoch_metrics(seed_history(history), model))
    write_json(PLOTS_PATH, epoch_rows(seed_history(history)))
    trainer.training_log.close()


if __name__ == "__main__":
    run_stage(main)

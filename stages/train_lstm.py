"""train_lstm: the (Bi)LSTM on data/processed with the data/vocab vocabulary (+ GloVe) -> models/lstm/,
metrics/lstm/train.json, plots/train_lstm.json (per-epoch curves).

The stage is the command line `python -m src.training.train_model` (src/training/lstm_run.py) with its options
taken from
params.yaml (`lstm`, `data.label_names`, `distributed.timeout_s`): see `stage_arguments`.
"""

from pathlib import Path

from src.cli import run_stage
from src.data.preprocess import PARAMS_NAMES
from src.runtime import out_of_memory_names
from src.training.lstm_run import parse_args, run

MODEL_DIR = Path("models/lstm")  # a persisted DVC output: after a kill, its checkpoints let a rerun resume
LIVE_DIR = Path("dvclive/train_lstm")  # DVCLive: per-step loss and per-epoch validation while it trains


def stage_arguments(params: dict) -> list[str]:
    """The command line this stage runs, from params.yaml."""
    cfg = params["lstm"]
    argv = [
        "--data-dir",
        "data/processed",
        "--vocab-dir",
        "data/vocab",
        "--label-names",
        *params["data"]["label_names"],
        "--output-dir",
        MODEL_DIR,
        "--checkpoint-dir",
        MODEL_DIR,
        "--metrics-file",
        "metrics/lstm/train.json",  # the same keys as metrics/bert/train.json
        "--plots-file",
        "plots/train_lstm.json",
        "--live-dir",
        LIVE_DIR,
        "--monitor",
        "val_macro_recall",  # TweetEval's official metric picks the best epoch
        "--embedding-dim",
        cfg["embedding_dim"],
        "--hidden-dim",
        cfg["hidden_dim"],
        "--n-layers",
        cfg["n_layers"],
        "--dropout",
        cfg["dropout"],
        "--max-length",
        cfg["max_length"],
        "--batch-size",
        cfg["batch_size"],
        "--learning-rate",
        cfg["learning_rate"],
        "--epochs",
        cfg["epochs"],
        "--weight-decay",
        cfg["weight_decay"],
        "--gradient-clip",
        cfg["gradient_clip"] or 0,
        "--early-stopping-patience",
        cfg["early_stopping_patience"] or 0,
        "--scheduler",
        cfg["scheduler"] or "none",
        "--class-weights",
        cfg["class_weights"] or "none",
        "--seed",
        cfg["seed"],
        "--timeout-s",
        params["distributed"]["timeout_s"],
        "--bidirectional" if cfg["bidirectional"] else "--no-bidirectional",
    ]
    if cfg["use_glove"]:  # data/vocab/embeddings.npy: GloVe aligned to the vocabulary by build_vocab
        argv.append("--use-glove")
    if cfg["freeze_embeddings"]:
        argv.append("--freeze-embeddings")
    return [str(a) for a in argv]


@out_of_memory_names(("lstm.batch_size",))
def main(params: dict) -> None:
    run(parse_args(stage_arguments(params)), names=PARAMS_NAMES)  # data errors name params keys


if __name__ == "__main__":
    run_stage(main)

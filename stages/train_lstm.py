"""train_lstm: the (Bi)LSTM on data/processed with the data/vocab vocabulary (+ GloVe) -> models/lstm/,
metrics/lstm/train.json, dvclive/train_lstm/ (the training curves, per step and per epoch).

The stage runs the LSTM training guide's command line (src/recipes/lstm_run.py) with one LstmConfig built
from params.yaml (`lstm`, `data.label_names`, `distributed.timeout_s`) and the stage's paths below.
"""

import sys
from pathlib import Path

from src.core.cli import run_stage
from src.core.runtime import out_of_memory_names
from src.data.preprocess import PARAMS_NAMES
from src.recipes.lstm_config import LstmConfig
from src.recipes.lstm_run import run

MODEL_DIR = Path("models/lstm")  # a persisted DVC output: after a kill, its checkpoints let a rerun resume
LIVE_DIR = Path("dvclive/train_lstm")  # DVCLive: per-step loss and per-epoch validation while it trains
PATHS = {
    "data_dir": "data/processed",
    "vocab_dir": "data/vocab",  # with use_glove: embeddings.npy, GloVe aligned to the vocabulary by build_vocab
    "output_dir": str(MODEL_DIR),
    "checkpoint_dir": str(MODEL_DIR),
    "metrics_file": "metrics/lstm/train.json",  # the same keys as metrics/bert/train.json
    "live_dir": str(LIVE_DIR),
}


def lstm_config(params: dict) -> LstmConfig:
    """This stage's run, from params.yaml: TweetEval's official metric picks the best epoch."""
    return LstmConfig.from_params(params, monitor="val_macro_recall", **PATHS)


@out_of_memory_names(("lstm.batch_size",))
def main(params: dict) -> None:
    run(lstm_config(params), names=PARAMS_NAMES)  # data errors name params keys


if __name__ == "__main__":
    run_stage(main, argv=sys.argv[1:])

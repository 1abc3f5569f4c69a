"""train_lstm: the (Bi)LSTM on data/processed with the data/vocab vocabulary (+ GloVe) -> models/lstm/,
metrics/lstm/train.json, dvclive/train_lstm/ (the training curves, per step and per epoch).

The stage runs the LSTM training guide's command line (src/recipes/lstm_run.py) with one LstmConfig built
from params.yaml (`lstm`, `data.label_names`, `distributed.timeout_s`) and the stage's paths below.
"""

import dataclasses
import sys
from pathlib import Path

from src.checkpoints.resume import run_fingerprint, source_files
from src.checkpoints.resume_dir import discard, is_publisher, probe_outputs, resume_dir
from src.core.cli import run_stage
from src.core.runtime import out_of_memory_names
from src.data.preprocess import PARAMS_NAMES
from src.recipes.lstm_config import LstmConfig
from src.recipes.lstm_run import run

MODEL_DIR = Path("models/lstm")  # a plain cached DVC output: the checkpoints are kept in resume_directory()
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


def resume_directory(params: dict) -> Path:
    """Where this run's checkpoints go: .resume/train_lstm/<key of its params, input files and code>/
    (src/checkpoints/resume_dir.py), outside the DVC output, so DVC's run-cache covers the stage and a
    rerun after a kill resumes there; a run with other params or data gets a directory of its own."""
    inputs = sorted(p for d in (PATHS["data_dir"], PATHS["vocab_dir"]) for p in Path(d).glob("*") if p.is_file())
    shaping = {"lstm": params["lstm"], "labels": params["data"]["label_names"], "distributed": params["distributed"]}
    return resume_dir("train_lstm", run_fingerprint(shaping, inputs, source_files(__file__)))


@out_of_memory_names(("lstm.batch_size",))
def main(params: dict) -> None:
    work = resume_directory(params)
    if is_publisher():  # the outputs take the model and summary when it ends: writable before it starts
        probe_outputs(MODEL_DIR, Path(PATHS["metrics_file"]).parent)
    # data errors name params keys
    run(dataclasses.replace(lstm_config(params), checkpoint_dir=str(work)), names=PARAMS_NAMES)
    if is_publisher():  # the model is in models/lstm: the resume state goes
        discard(work)


if __name__ == "__main__":
    run_stage(main, argv=sys.argv[1:])

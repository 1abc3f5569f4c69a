"""What scripts.train and scripts.tune share: a JSON config file of BERT settings, and loaders from a data set.

The data set is any layout src.data.data_sources reads (TweetEval directory, processed directory, CSV/TSV file).
Tokenising, batching and training are the pipeline's own (src.models.bert_data, src.models.training).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from src.core.errors import PipelineError
from src.core.json_files import read_json_object
from src.models.training import RECOMMENDED

# every key a config file may set, with its default (model_name: the same as params.yaml's)
SETTINGS = {
    "model_name": "sentence-transformers/all-MiniLM-L6-v2",
    **RECOMMENDED,
    "max_length": 128,
    "seed": 42,
    "device": "auto",
    "eval_batch_size": 128,
    "label_names": None,
    "gradient_clip": 1.0,
    "early_stopping_patience": None,
    "monitor": "val_macro_recall",
    "class_weights": None,
    "mixed_precision": True,
}
INTEGERS = ("num_epochs", "batch_size", "max_length", "seed", "eval_batch_size")
NUMBERS = ("learning_rate", "weight_decay", "warmup_ratio", "dropout_prob")
TUNING = {"method": "grid", "n_trials": None, "hyperparameters": None}  # hyperparameter_config.json's own keys


def read_config(path: str | os.PathLike, extra: dict | None = None) -> dict:
    """SETTINGS (and ``extra``'s keys) overridden by the JSON object in ``path``; an unknown key or a
    value of the wrong type is an error naming the file and the key."""
    path, allowed = Path(path), {**SETTINGS, **(extra or {})}
    raw = read_json_object(path)
    for key, value in raw.items():
        if key not in allowed:
            raise PipelineError(f"{path}: unknown key {key!r}; expected one of {', '.join(allowed)}")
        integer = isinstance(value, int) and not isinstance(value, bool)
        if key in INTEGERS and not (integer and value >= (0 if key == "seed" else 1)):
            raise PipelineError(f"{path}: {key} = {value!r}: expected a whole number >= 1")
        if key in NUMBERS and not ((integer or isinstance(value, float)) and math.isfinite(value) and value >= 0):
            raise PipelineError(f"{path}: {key} = {value!r}: expected a number >= 0")
    return {**allowed, **raw}


def bert_loaders(data_dir: str | os.PathLike, config: dict):
    """(tokenizer, label names, train loader, val loader, test loader or None) for ``config``."""
    from src.core.runtime import resolve_device
    from src.data.data_sources import read_dataset
    from src.models.bert_data import TokenizedTweets, make_bert_loader
    from src.models.bert_model import load_tokenizer

    resolve_device(config["device"])  # no GPU for `cuda`: fail before any work
    splits, label_names = read_dataset(data_dir, config["label_names"], seed=config["seed"])
    tokenizer = load_tokenizer(config["model_name"])
    tokenizer.model_max_length = config["max_length"]  # saved with the export, so inference truncates alike

    def loader(split: str, shuffle: bool):
        rows = splits[split]
        dataset = TokenizedTweets(rows.texts, rows.labels, tokenizer, config["max_length"])
        return make_bert_loader(
            dataset, config["batch_size"] if shuffle else config["eval_batch_size"], shuffle, seed=config["seed"]
        )

    test = loader("test", False) if "test" in splits else None
    return tokenizer, label_names, loader("train", True), loader("val", False), test, splits["train"].labels


def train_options(config: dict, tokenizer, label_names: list[str], train_labels: list[int], data_dir) -> dict:
    """train_model's keyword arguments from ``config`` (the caller passes the tuned hyperparameters)."""
    from src.training.class_weights import class_weights

    return {
        "model_name": config["model_name"],
        "tokenizer": tokenizer,
        "num_classes": len(label_names),
        "label_names": label_names,
        "gradient_clip": config["gradient_clip"],
        "monitor": config["monitor"],
        "early_stopping_patience": config["early_stopping_patience"],
        "mixed_precision": config["mixed_precision"],
        "class_weights": class_weights(
            train_labels, config["class_weights"], len(label_names), "class_weights", str(data_dir)
        ),
    }

"""What scripts.train and scripts.tune share: loaders from a data set, and train_model's options, for a BertConfig.

The data set is any layout src.data.data_sources reads (TweetEval directory, processed directory, CSV/TSV file);
the config comes from the command line's JSON file (BertConfig.from_file). Tokenising, batching and training are
the pipeline's own (src.models.bert_data, src.models.training).
"""

from __future__ import annotations

import os

from src.core.params_schema import TUNE_CONFIG
from src.recipes.bert_config import BertConfig

# hyperparameter_config.json's own keys: {key: (schema, default)}
TUNING = {
    "method": (TUNE_CONFIG["properties"]["method"], "grid"),
    "n_trials": (TUNE_CONFIG["properties"]["n_trials"], None),
    "hyperparameters": (TUNE_CONFIG["properties"]["hyperparameters"], None),
}


def bert_loaders(data_dir: str | os.PathLike, config: BertConfig):
    """(tokenizer, label names, train loader, val loader, test loader or None, train labels) for ``config``."""
    from src.data.data_sources import read_dataset
    from src.models.bert_data import TokenizedTweets, make_bert_loader
    from src.models.bert_model import load_tokenizer

    wanted = list(config.label_names) if config.label_names else None
    splits, label_names = read_dataset(data_dir, wanted, seed=config.seed)
    tokenizer = load_tokenizer(config.model_name)
    tokenizer.model_max_length = config.max_length  # saved with the export, so inference truncates alike

    def loader(split: str, shuffle: bool):
        rows = splits[split]
        dataset = TokenizedTweets(rows.texts, rows.labels, tokenizer, config.max_length)
        return make_bert_loader(
            dataset, config.batch_size if shuffle else config.eval_batch_size, shuffle, seed=config.seed
        )

    test = loader("test", False) if "test" in splits else None
    return tokenizer, label_names, loader("train", True), loader("val", False), test, splits["train"].labels


def train_options(config: BertConfig, tokenizer, label_names: list[str], train_labels: list[int], data_dir) -> dict:
    """train_model's keyword arguments from ``config`` (the caller passes the tuned hyperparameters)."""
    from src.recipes.bert_run import train_model_options
    from src.training.class_weights import class_weights

    weights = class_weights(train_labels, config.class_weights, len(label_names), "class_weights", str(data_dir))
    return {
        **train_model_options(config, tokenizer, weights),
        "num_classes": len(label_names),
        "label_names": label_names,
    }

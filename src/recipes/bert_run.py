"""What train_bert and tune share: a BertConfig -> tokenizer, loaders, class weights and train_model's options."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from src.data.preprocess import Split, read_split
from src.models.bert_data import TokenizedTweets, make_bert_loader
from src.models.bert_model import check_recipe_settings, load_tokenizer
from src.recipes.bert_config import BertConfig
from src.training.class_weights import class_weights

PROCESSED_DIR = "data/processed"


@dataclass
class BertData:
    tokenizer: object
    train: TokenizedTweets
    val: TokenizedTweets


def load_bert_data(config: BertConfig, train_split: Split | None = None) -> BertData:
    """Tokenise train (or ``train_split``) and val once, with the fast tokenizer of ``model_name``."""
    check_recipe_settings(config.model_name, config.max_length, config.reinit_layers)
    tokenizer = load_tokenizer(config.model_name)
    tokenizer.model_max_length = config.max_length  # saved with the export, so inference truncates alike
    label_names = list(config.label_names)  # every label must index it (an error naming the line)
    train = train_split if train_split is not None else read_split(f"{PROCESSED_DIR}/train.jsonl", label_names)
    val = read_split(f"{PROCESSED_DIR}/val.jsonl", label_names)
    return BertData(
        tokenizer,
        TokenizedTweets(train.texts, train.labels, tokenizer, config.max_length),
        TokenizedTweets(val.texts, val.labels, tokenizer, config.max_length),
    )


def make_loaders(data: BertData, config: BertConfig, batch_size: int, device: torch.device):
    """The train loader (``batch_size``, shuffled by ``seed``) and the val loader (``eval_batch_size``)."""
    pin = device.type == "cuda"
    train = make_bert_loader(
        data.train, batch_size, shuffle=True, seed=config.seed, num_workers=config.num_workers, pin_memory=pin
    )
    val = make_bert_loader(
        data.val, config.eval_batch_size, shuffle=False, num_workers=config.num_workers, pin_memory=pin
    )
    return train, val


def loss_weights(config: BertConfig, data: BertData) -> torch.Tensor | None:
    """The loss's class weights (``bert.class_weights``) from the train split's labels."""
    return class_weights(
        data.train.labels,
        config.class_weights,
        len(config.label_names),
        "bert.class_weights",
        f"{PROCESSED_DIR}/train.jsonl",
    )


def run_options(config: BertConfig, data: BertData) -> dict:
    """train_model keyword arguments from the run settings and ``model_name`` (the caller sets the seed)."""
    return train_model_options(config, data.tokenizer, loss_weights(config, data))


def train_model_options(config: BertConfig, tokenizer, weights: torch.Tensor | None) -> dict:
    """train_model's keyword arguments for ``config``'s run settings: the one mapping from a BertConfig to
    them (the hyperparameters and the seed are the caller's; a search sets them per trial)."""
    return {
        "model_name": config.model_name,
        "tokenizer": tokenizer,
        "class_weights": weights,
        "label_smoothing": config.label_smoothing,
        "layer_decay": config.layer_decay,
        "reinit_layers": config.reinit_layers,
        "gradient_clip": config.gradient_clip,
        "monitor": config.monitor,
        "early_stopping_patience": config.early_stopping_patience,
        "mixed_precision": config.mixed_precision,
        "compile_model": config.compile,
    }

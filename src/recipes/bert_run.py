"""What train_bert and tune share: params -> tokenizer, loaders and train_model's run options."""

from __future__ import annotations

from dataclasses import dataclass

from src.core.runtime import resolve_device
from src.data.preprocess import Split, read_split
from src.models.bert_data import TokenizedTweets, make_bert_loader
from src.models.bert_model import load_tokenizer
from src.training.class_weights import class_weights

PROCESSED_DIR = "data/processed"


@dataclass
class BertData:
    tokenizer: object
    train: TokenizedTweets
    val: TokenizedTweets


def load_bert_data(params: dict, train_split: Split | None = None) -> BertData:
    """Tokenise train (or ``train_split``) and val once, with the fast tokenizer of ``model_name``."""
    resolve_device(params["bert"]["device"], key="bert.device")  # no GPU for `cuda`: fail before any work
    tokenizer = load_tokenizer(params["model_name"])
    tokenizer.model_max_length = params["max_length"]  # saved with the export, so inference truncates alike
    label_names = params["data"]["label_names"]  # every label must index it (an error naming the line)
    train = train_split if train_split is not None else read_split(f"{PROCESSED_DIR}/train.jsonl", label_names)
    val = read_split(f"{PROCESSED_DIR}/val.jsonl", label_names)
    return BertData(
        tokenizer,
        TokenizedTweets(train.texts, train.labels, tokenizer, params["max_length"]),
        TokenizedTweets(val.texts, val.labels, tokenizer, params["max_length"]),
    )


def make_loaders(data: BertData, params: dict, batch_size: int):
    bert = params["bert"]
    pin = resolve_device(bert["device"], key="bert.device").type == "cuda"
    train = make_bert_loader(
        data.train, batch_size, shuffle=True, seed=params["seed"], num_workers=bert["num_workers"], pin_memory=pin
    )
    val = make_bert_loader(
        data.val, bert["eval_batch_size"], shuffle=False, num_workers=bert["num_workers"], pin_memory=pin
    )
    return train, val


def run_options(params: dict, data: BertData) -> dict:
    """train_model keyword arguments from the ``bert`` section and ``model_name`` (the caller sets the seed)."""
    bert = params["bert"]
    weights = class_weights(
        data.train.labels,
        bert["class_weights"],
        len(params["data"]["label_names"]),
        "bert.class_weights",
        f"{PROCESSED_DIR}/train.jsonl",
    )
    return {
        "model_name": params["model_name"],
        "tokenizer": data.tokenizer,
        "class_weights": weights,
        "label_smoothing": bert["label_smoothing"],
        "gradient_clip": bert["gradient_clip"],
        "monitor": bert["monitor"],
        "early_stopping_patience": bert["early_stopping_patience"],
        "mixed_precision": bert["mixed_precision"],
        "compile_model": bert["compile"],
    }

"""Load a trained model directory (the LSTM's or a BERT export) and predict or score with it.

    python -m src.evaluation --model-dir models/lstm --split test
    python -m src.evaluation --model-dir models/bert --split val    # the save_pretrained export
prints the test report as JSON (accuracy, macro_recall: TweetEval's metric, macro_f1, f1_pn,
per-class figures, confusion matrix). Nothing selects a model here.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from src.batching import LengthSortedSampler
from src.cli import pipeline_errors_exit, positive_int_option, print_lines
from src.errors import PipelineError
from src.metrics import detailed_metrics
from src.paths import check_model_dir, file_in
from src.preprocess import read_split
from src.runtime import explain_out_of_memory, use_all_cpu_cores
from src.training.checkpoint_manager import (
    MODEL_ID_FILE, check_one_model, load_checkpoint_file, read_model_id,
)
from src.training.trainer import autocast_context, forward_logits, move_batch, resolve_device


def device_option(value: str, option: str = "--device"):
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` as a torch.device (CUDA must be present); else a PipelineError."""
    try:
        if value != "auto" and torch.device(value).type not in {"cpu", "cuda"}:
            raise RuntimeError(value)
    except RuntimeError:
        raise PipelineError(f"{option} = {value!r}: expected auto, cpu, cuda or cuda:N") from None
    device = resolve_device(value, key=option)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise PipelineError(f"{option} = {value!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


@dataclass
class TrainedModel:
    """A model ready for inference and how to turn texts into its batches."""

    kind: str                                          # "bert" | "lstm"
    model: nn.Module
    label_names: list[str]
    encode: Callable[[Sequence[str]], Dataset]         # normalised texts -> dataset with .lengths()
    collate: Callable
    mixed_precision: bool                              # the precision it was validated in while training


def is_bert_dir(model_dir: str | os.PathLike) -> bool:
    return (Path(model_dir) / "model" / "config.json").is_file()  # train_bert's save_pretrained export


def _read_json_object(path: Path, what: str) -> dict:
    """A JSON object from ``path``; anything else is a PipelineError naming the file (and line)."""
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start}); {what}") from None
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); {what}") from None
    if not isinstance(value, dict):
        raise PipelineError(f"{path}: expected a JSON object, found {type(value).__name__}; {what}")
    return value


def load_lstm(model_dir: str | os.PathLike, device: torch.device):
    """The LSTM, vocabulary, label names and max_length that stages/train_lstm.py wrote to ``model_dir``.

    A damaged or inconsistent directory (config not JSON, unknown keys, weights of another shape or
    of another training run) is a PipelineError naming the file: it says to train again, never a traceback."""
    from src.models.lstm_data import DEFAULT_MAX_LENGTH
    from src.models.lstm_model import LSTMClassifier
    from src.vocab import Vocabulary

    model_dir = Path(model_dir)
    config_path = model_dir / "model_config.json"
    if not config_path.is_file():
        raise PipelineError(f"{config_path}: not found (run `dvc repro train_lstm` first)")
    again = "run `dvc repro train_lstm` again"
    config = _read_json_object(config_path, again)
    missing = {"vocab", "weights", "label_names"} - set(config)
    if missing:
        raise PipelineError(f"{config_path}: no {', '.join(sorted(missing))} (written by an older train_lstm: "
                            f"{again})")
    # names from a pulled directory: only plain file names inside it are read
    vocab_path = file_in(model_dir, config.pop("vocab"), f"{config_path}: vocab")
    weights_path = file_in(model_dir, config.pop("weights"), f"{config_path}: weights")
    label_names = config.pop("label_names")
    if not (isinstance(label_names, list) and len(label_names) >= 2 and all(isinstance(n, str) for n in label_names)):
        raise PipelineError(f"{config_path}: label_names = {label_names!r}: expected a list of names; {again}")
    checkpoint = load_checkpoint_file(weights_path, map_location=device)
    if "model_id" in config:  # written by train_lstm together with the weights it names
        check_one_model(model_dir, config_path, config.pop("model_id"), weights_path, checkpoint.get("model_id"),
                        "dvc repro train_lstm")
    vocab = Vocabulary.load(vocab_path)
    max_length = config.pop("max_length", DEFAULT_MAX_LENGTH)
    try:
        model = LSTMClassifier(**config)
        model.load_state_dict(checkpoint["model_state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:  # unknown keys, or weights of another shape
        raise PipelineError(f"{model_dir}: incomplete model directory: {weights_path.name} does not fit "
                            f"{config_path.name} ({_first_problem(exc)}); {again}") from None
    return model.to(device).eval(), vocab, label_names, max_length


def _first_problem(exc: Exception) -> str:
    """The first 'size mismatch for …' line of load_state_dict's multi-line message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[1] if len(lines) > 1 else lines[0] if lines else exc.__class__.__name__)[:300]


def check_bert_export(model_dir: Path, export: Path) -> None:
    """train_bert stamps its export with the id of the best_model.pt it was made from: a directory
    where they differ (a run stopped between writing them) is reported as incomplete."""
    stamp, weights = export / MODEL_ID_FILE, model_dir / "best_model.pt"
    if not (stamp.is_file() and weights.is_file()):
        return  # an export from before stamps, or a tune trial, which keeps no best_model.pt
    export_id = _read_json_object(stamp, "run `dvc repro train_bert` again").get("model_id")
    check_one_model(model_dir, stamp, export_id, weights, read_model_id(weights), "dvc repro train_bert")


def _load_bert_export(export: Path, device: torch.device):
    """Model and tokenizer of a ``save_pretrained`` export; a damaged one is a PipelineError naming it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from src.models.first_token import compute_first_token_only_in_last_layer

    try:
        model = AutoModelForSequenceClassification.from_pretrained(export).to(device).eval()
        compute_first_token_only_in_last_layer(model)  # the same logits, less work
        tokenizer = AutoTokenizer.from_pretrained(export)
        label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    except Exception as exc:  # noqa: BLE001 - transformers/safetensors raise many types for damaged files
        detail = " ".join(str(exc).split())[:300]
        raise PipelineError(f"{export}: a damaged BERT export ({exc.__class__.__name__}: {detail}); "
                            "run `dvc repro train_bert` (or tune) again") from None
    return model, tokenizer, label_names


def load_model(model_dir: str | os.PathLike, device: str | torch.device = "auto") -> TrainedModel:
    """``models/bert`` (or a tune trial directory) holding a ``model/`` export, or ``models/lstm``."""
    device, model_dir = resolve_device(device), Path(model_dir)
    check_model_dir(model_dir)  # no link out of the repository, no oversized config before it is parsed
    if is_bert_dir(model_dir):
        from transformers import DataCollatorWithPadding

        from src.models.bert_data import TokenizedTweets

        export = model_dir / "model"
        check_bert_export(model_dir, export)
        model, tokenizer, label_names = _load_bert_export(export, device)
        # train_bert stores its max_length as the tokenizer's model_max_length
        max_length = min(tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", 512))
        return TrainedModel("bert", model, label_names,
                            lambda texts: TokenizedTweets(texts, [0] * len(texts), tokenizer, max_length),
                            DataCollatorWithPadding(tokenizer), mixed_precision=True)
    if (model_dir / "model_config.json").is_file():
        from src.models.lstm_data import EncodedTweets, collate_padded

        model, vocab, label_names, max_length = load_lstm(model_dir, device)
        return TrainedModel("lstm", model, label_names,
                            lambda texts: EncodedTweets(texts, [0] * len(texts), vocab, max_length),
                            collate_padded, mixed_precision=False)
    raise PipelineError(f"{model_dir}: not a trained model directory (expected model/config.json from train_bert "
                        "or model_config.json from train_lstm)")


@torch.inference_mode()
def predict_proba(trained: TrainedModel, texts: Sequence[str], batch_size: int = 128,
                  device: str | torch.device = "auto") -> np.ndarray:
    """Class probabilities, one row per text in input order. Texts must already be normalised.

    Batches are formed from length-sorted texts and padded to their longest member, so little
    compute goes to padding; the rows are put back in input order at the end.
    """
    device = resolve_device(device)
    dataset = trained.encode(list(texts))
    sampler = LengthSortedSampler(dataset.lengths())
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=trained.collate,
                        pin_memory=device.type == "cuda")
    chunks = []
    for batch in loader:
        batch = move_batch(batch, device)
        with autocast_context(device, trained.mixed_precision):
            logits = forward_logits(trained.model, batch)
        chunks.append(torch.softmax(logits.float(), dim=-1).cpu())
    probabilities = np.empty((len(dataset), len(trained.label_names)), dtype=np.float32)
    if chunks:
        probabilities[sampler.order] = torch.cat(chunks).numpy()
    return probabilities


def score_texts(trained: TrainedModel, texts: Sequence[str], labels: Sequence[int], batch_size: int,
                device: str | torch.device = "auto") -> tuple[dict, list[int], np.ndarray]:
    """(test report + inference speed, predicted label ids, class probabilities), both in input order."""
    device = resolve_device(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    probabilities = predict_proba(trained, texts, batch_size, device)
    predictions = probabilities.argmax(axis=1).tolist()
    seconds = time.perf_counter() - started  # tokenisation included: what a user of the model waits for
    report = detailed_metrics(labels, predictions, trained.label_names)
    report["inference"] = {"tweets_per_s": round(len(texts) / seconds, 1), "seconds": round(seconds, 2),
                           "batch_size": batch_size, "device": str(device)}
    return report, predictions, probabilities


def score_split(model_dir: str | os.PathLike, split_path: str | os.PathLike, batch_size: int = 256,
                device: str = "auto") -> dict:
    """The test report of a trained model on one processed split (``data/processed/*.jsonl``)."""
    trained = load_model(model_dir, device)
    split = read_split(split_path, trained.label_names)  # labels the model does not know: an error naming the line
    report, _, _ = score_texts(trained, split.texts, split.labels, batch_size, device)
    return {"split": str(split_path), **report}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="models/lstm")
    parser.add_argument("--split", default="test", help="train | val | test (a file under --data-dir)")
    parser.add_argument("--data-dir", default="data/processed")
    parser.add_argument("--batch-size", default="256")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    use_all_cpu_cores()
    with pipeline_errors_exit():
        batch_size, device = positive_int_option(args.batch_size, "--batch-size"), device_option(args.device)
        with explain_out_of_memory("--batch-size", batch_size):
            scores = score_split(args.model_dir, Path(args.data_dir) / f"{args.split}.jsonl", batch_size, device)
        print_lines([json.dumps(scores, indent=2)])


if __name__ == "__main__":
    main()

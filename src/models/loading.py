"""Load a trained model directory for scoring: train_lstm's (model_config.json, vocab, best_model.pt),
a save_pretrained BERT export (train_bert's or a tune trial's ``model/``) or train_tfidf's scikit-learn pipeline.

A model directory is a DVC output that may come from a remote, so everything read from it is
checked: a damaged or inconsistent directory is one PipelineError naming the file and the stage to
re-run. The training engine writes these files; this module only reads them, so scoring never
imports the engine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from src.checkpoints.files import MODEL_ID_FILE, check_one_model, load_checkpoint_file, read_model_id
from src.core.errors import PipelineError
from src.core.json_files import read_json_object
from src.core.paths import check_model_dir, file_in
from src.core.runtime import resolve_device


@dataclass
class TrainedModel:
    """A model ready for inference and how to turn texts into its batches."""

    kind: str  # "bert" | "lstm" | "tfidf"
    model: nn.Module
    label_names: list[str]
    encode: Callable[[Sequence[str]], Dataset]  # normalised texts -> dataset with .lengths()
    collate: Callable
    mixed_precision: bool  # the precision it was validated in while training


def bert_export_of(model_dir: str | os.PathLike) -> Path | None:
    """The ``save_pretrained`` directory of a BERT model directory: ``model/`` of train_bert's (or a tune
    trial's) output, or the directory itself when it is one (export_bert's models/bert_hub); else None."""
    model_dir = Path(model_dir)
    for export in (model_dir / "model", model_dir):
        if (export / "config.json").is_file():
            return export
    return None


def is_bert_dir(model_dir: str | os.PathLike) -> bool:
    return bert_export_of(model_dir) is not None


def load_lstm(model_dir: str | os.PathLike, device: torch.device):
    """The LSTM, vocabulary, label names and max_length that stages/train_lstm.py wrote to ``model_dir``.

    A damaged or inconsistent directory (config not JSON, unknown keys, weights of another shape or
    of another training run) is a PipelineError naming the file: it says to train again, never a traceback."""
    from src.data.vocab import Vocabulary
    from src.models.lstm_data import DEFAULT_MAX_LENGTH
    from src.models.lstm_model import LSTMClassifier

    model_dir = Path(model_dir)
    config_path = model_dir / "model_config.json"
    if not config_path.is_file():
        raise PipelineError(f"{config_path}: not found (run `dvc repro train_lstm` first)")
    again = "run `dvc repro train_lstm` again"
    config = read_json_object(config_path, again)
    missing = {"vocab", "weights", "label_names"} - set(config)
    if missing:
        raise PipelineError(f"{config_path}: no {', '.join(sorted(missing))} (written by an older train_lstm: {again})")
    # names from a pulled directory: only plain file names inside it are read
    vocab_path = file_in(model_dir, config.pop("vocab"), f"{config_path}: vocab")
    weights_path = file_in(model_dir, config.pop("weights"), f"{config_path}: weights")
    label_names = config.pop("label_names")
    if not (isinstance(label_names, list) and len(label_names) >= 2 and all(isinstance(n, str) for n in label_names)):
        raise PipelineError(f"{config_path}: label_names = {label_names!r}: expected a list of names; {again}")
    # one logit per class, or one logit (a sigmoid) for two classes: any other count cannot be read as classes
    output_dim = config.get("output_dim", len(label_names))
    if output_dim != len(label_names) and not (output_dim == 1 and len(label_names) == 2):
        raise PipelineError(
            f"{config_path}: output_dim = {output_dim!r} does not fit its {len(label_names)} label_names; {again}"
        )
    checkpoint = load_checkpoint_file(weights_path, map_location=device)
    if "model_id" in config:  # written by train_lstm together with the weights it names
        check_one_model(
            model_dir,
            config_path,
            config.pop("model_id"),
            weights_path,
            checkpoint.get("model_id"),
            "dvc repro train_lstm",
        )
    vocab = Vocabulary.load(vocab_path)
    max_length = config.pop("max_length", DEFAULT_MAX_LENGTH)
    try:
        model = LSTMClassifier(**config)
        model.load_state_dict(checkpoint["model_state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:  # unknown keys, or weights of another shape
        raise PipelineError(
            f"{model_dir}: incomplete model directory: {weights_path.name} does not fit "
            f"{config_path.name} ({_first_problem(exc)}); {again}"
        ) from None
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
    export_id = read_json_object(stamp, "run `dvc repro train_bert` again").get("model_id")
    check_one_model(model_dir, stamp, export_id, weights, read_model_id(weights), "dvc repro train_bert")


def _load_bert_export(export: Path, device: torch.device):
    """Model and tokenizer of a ``save_pretrained`` export; a damaged one is a PipelineError naming it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from src.models.bert_model import check_tokenizer
    from src.models.first_token import compute_first_token_only_in_last_layer

    try:
        model = AutoModelForSequenceClassification.from_pretrained(export).to(device).eval()
        compute_first_token_only_in_last_layer(model)  # the logits the head reads, less work
        tokenizer = AutoTokenizer.from_pretrained(export)
        label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    except Exception as exc:  # noqa: BLE001 - transformers/safetensors raise many types for damaged files
        detail = " ".join(str(exc).split())[:300]
        raise PipelineError(
            f"{export}: a damaged BERT export ({exc.__class__.__name__}: {detail}); "
            "run `dvc repro train_bert` (or tune) again"
        ) from None
    check_tokenizer(tokenizer, model, export)
    return model, tokenizer, label_names


def load_model(model_dir: str | os.PathLike, device: str | torch.device = "auto") -> TrainedModel:
    """``models/bert`` (or a tune trial directory) holding a ``model/`` export, ``models/bert_hub`` (an export
    itself), ``models/lstm`` or ``models/tfidf``."""
    device, model_dir = resolve_device(device), Path(model_dir)
    check_model_dir(model_dir)  # no link out of the repository, no oversized config before it is parsed
    if is_bert_dir(model_dir):
        from transformers import DataCollatorWithPadding

        from src.models.bert_data import TokenizedTweets

        export = bert_export_of(model_dir)
        check_bert_export(model_dir, export)
        model, tokenizer, label_names = _load_bert_export(export, device)
        # train_bert stores its max_length as the tokenizer's model_max_length
        max_length = min(tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", 512))
        return TrainedModel(
            "bert",
            model,
            label_names,
            lambda texts: TokenizedTweets(texts, [0] * len(texts), tokenizer, max_length),
            DataCollatorWithPadding(tokenizer),
            mixed_precision=True,
        )
    if (model_dir / "model_config.json").is_file():
        from src.models.lstm_data import EncodedTweets, collate_padded

        model, vocab, label_names, max_length = load_lstm(model_dir, device)
        return TrainedModel(
            "lstm",
            model,
            label_names,
            lambda texts: EncodedTweets(texts, [0] * len(texts), vocab, max_length),
            collate_padded,
            mixed_precision=False,
        )
    tfidf = _load_tfidf(model_dir)
    if tfidf is not None:
        return tfidf
    raise PipelineError(
        f"{model_dir}: not a trained model directory (expected model/config.json from train_bert, config.json "
        "from export_bert, "
        "model_config.json from train_lstm or tfidf_config.json from train_tfidf)"
    )


def _load_tfidf(model_dir: Path) -> TrainedModel | None:
    """train_tfidf's scikit-learn pipeline (src/models/tfidf.py) behind the same interface, or None
    when ``model_dir`` is not one. It runs on the CPU whatever the device."""
    from src.models.tfidf import is_tfidf_dir, load

    if not is_tfidf_dir(model_dir):
        return None
    from src.models.tfidf_data import Texts, TfidfScorer, collate_texts

    pipeline, label_names = load(model_dir)
    return TrainedModel("tfidf", TfidfScorer(pipeline), label_names, Texts, collate_texts, mixed_precision=False)

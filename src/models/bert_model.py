"""BertSentimentClassifier: a pretrained Hugging Face encoder with a classification head on [CLS]."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from src.core.errors import PipelineError
from src.models.first_token import compute_first_token_only_in_last_layer

LABEL_NAMES = ("negative", "neutral", "positive")


def load_tokenizer(model_name: str):
    """The fast tokenizer for ``model_name`` (hub name or local directory)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_name, use_fast=True)
    except (OSError, ValueError) as exc:  # ValueError: a local directory that holds no model
        raise _not_loadable(model_name, exc) from None


def _not_loadable(model_name: str, exc: Exception) -> PipelineError:
    reason = str(exc).splitlines()[0].rstrip(".")
    return PipelineError(
        f"model_name = {model_name!r} cannot be loaded ({reason}). Offline, the model must "
        "be in the Hugging Face cache: point HF_HOME at a cache that holds it (e.g. HF_HOME=../shared/hf "
        "HF_HUB_OFFLINE=1 holds sentence-transformers/all-MiniLM-L6-v2: "
        "dvc exp run -S model_name=sentence-transformers/all-MiniLM-L6-v2), go online so that it is downloaded, "
        "or set model_name to a local model directory"
    )


class BertSentimentClassifier(nn.Module):
    """Encoder -> [CLS] representation -> dropout (``dropout_prob``) -> linear layer to ``num_classes``.

    Built on ``AutoModelForSequenceClassification`` so that ``save_pretrained`` writes a directory
    that plain ``transformers`` loads for inference (weights, config with label names): for BERT the
    head reads the [CLS] vector through BERT's pretrained pooler, for RoBERTa-style encoders through
    their own [CLS] head. ``forward`` returns logits. ``attn_implementation`` (``"eager"``, ``"sdpa"``,
    None: transformers' default) changes how attention is computed, not what: the export does not
    keep it.
    """

    def __init__(
        self,
        model_name: str = "bert-base-uncased",
        num_classes: int = 3,
        dropout_prob: float = 0.1,
        label_names: tuple[str, ...] | list[str] = LABEL_NAMES,
        attn_implementation: str | None = None,
    ):
        super().__init__()
        from transformers import AutoModelForSequenceClassification

        if len(label_names) != num_classes:
            label_names = tuple(f"LABEL_{i}" for i in range(num_classes))
        try:
            self.model = AutoModelForSequenceClassification.from_pretrained(
                model_name,
                num_labels=num_classes,
                classifier_dropout=dropout_prob,
                id2label=dict(enumerate(label_names)),
                label2id={n: i for i, n in enumerate(label_names)},
                **({"attn_implementation": attn_implementation} if attn_implementation else {}),
            )
        except (OSError, ValueError) as exc:
            raise _not_loadable(model_name, exc) from None
        compute_first_token_only_in_last_layer(self.model)
        self.model_name = model_name
        self.num_classes = num_classes

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits

    def save_pretrained(self, directory: str | os.PathLike, tokenizer=None) -> Path:
        """Weights + config (with label names) + tokenizer: loadable with AutoModelForSequenceClassification."""
        directory = Path(directory)
        self.model.save_pretrained(directory)
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)
        return directory

"""BertSentimentClassifier: a pretrained Hugging Face encoder with a classification head on [CLS] or the mean token."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from src.core.errors import PipelineError
from src.models.first_token import compute_first_token_only_in_last_layer

LABEL_NAMES = ("negative", "neutral", "positive")
POOLINGS = ("cls", "mean")


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
    """Encoder -> sentence vector -> dropout (``dropout_prob``) -> linear layer to ``num_classes``.

    Built on ``AutoModelForSequenceClassification`` so that ``save_pretrained`` writes a directory
    that ``transformers`` loads for inference (weights, config with label names). ``pooling`` is
    the sentence vector: ``"cls"`` reads the [CLS] vector through BERT's pretrained pooler (for
    RoBERTa-style encoders their own [CLS] head), as plain ``transformers`` does; ``"mean"`` averages
    the last layer over the tweet's tokens, as sentence-transformers trained all-MiniLM-L6-v2, and
    bypasses the pooler (frozen, so that DDP finds no unused parameter). The export's config records
    ``pooling``; src.models.loading reads it (plain ``transformers`` always reads [CLS]). None: the
    config's (a model this class exported), else ``"cls"``. ``forward`` returns logits.
    ``attn_implementation`` (``"eager"``, ``"sdpa"``, None: transformers' default) changes how
    attention is computed, not what: the export does not keep it.
    """

    def __init__(
        self,
        model_name: str = "bert-base-uncased",
        num_classes: int = 3,
        dropout_prob: float = 0.1,
        label_names: tuple[str, ...] | list[str] = LABEL_NAMES,
        attn_implementation: str | None = None,
        pooling: str | None = None,
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
        self.pooling = set_pooling(self.model, pooling)
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


def set_pooling(model: nn.Module, pooling: str | None = None) -> str:
    """Make a sequence-classification ``model`` classify from ``pooling``'s sentence vector; returns it.

    ``"cls"``: the model's own head, with its last layer computing the first token alone (the
    logits it reads, less work). ``"mean"``: the classifier reads the mean of the last layer over
    the attention mask. None: ``model.config.pooling`` (a model this class exported), else ``"cls"``.
    The choice is written to ``model.config`` so that the export keeps it.
    """
    pooling = pooling or getattr(model.config, "pooling", None) or "cls"
    if pooling not in POOLINGS:
        raise PipelineError(f"pooling = {pooling!r}: expected one of {', '.join(POOLINGS)} (bert.pooling)")
    model.config.pooling = pooling
    if pooling == "cls":
        compute_first_token_only_in_last_layer(model)
        return pooling
    encoder, head = getattr(model, model.base_model_prefix, None), getattr(model, "classifier", None)
    if getattr(model, "dropout", None) is None or not isinstance(head, nn.Linear) or encoder is None:
        raise PipelineError(
            f"bert.pooling = 'mean': {type(model).__name__} has no dropout + linear classifier to read a "
            "mean vector (BERT-style encoders have); use bert.pooling=cls"
        )
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler.requires_grad_(False)  # bypassed: no gradient reaches it

    def mean_pooled_forward(input_ids=None, attention_mask=None, token_type_ids=None, **_):
        from transformers.modeling_outputs import SequenceClassifierOutput

        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        mask = attention_mask.unsqueeze(-1).float()  # summed in fp32 under bf16 autocast too
        pooled = ((hidden.float() * mask).sum(1) / mask.sum(1).clamp(min=1.0)).to(hidden.dtype)
        return SequenceClassifierOutput(logits=model.classifier(model.dropout(pooled)))

    model.forward = mean_pooled_forward
    return pooling

"""BertSentimentClassifier: a pretrained Hugging Face encoder of any family with its own classification head."""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from src.core.errors import PipelineError
from src.models.encoder import check_encoder_settings, head_dropout_key, takes_attention_function
from src.models.first_token import compute_first_token_only_in_last_layer

LABEL_NAMES = ("negative", "neutral", "positive")
# texts the export's tokenizer must split exactly as the training tokenizer did (with the run's own
# validation texts, when the caller has them)
PROBE_TEXTS = ("@user what a GREAT day :) #sunny http://t.co/x", "worst service ever... never again!!! 😡")


def load_tokenizer(model_name: str):
    """The tokenizer of ``model_name`` (hub name or local directory): the fast one where the family has one,
    else its Python one (BERTweet's)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_name, use_fast=True)
    except (OSError, ValueError) as exc:  # ValueError: a local directory that holds no model
        raise _not_loadable(model_name, exc) from None


def _not_loadable(model_name: str, exc: Exception) -> PipelineError:
    reason = str(exc).splitlines()[0].rstrip(".") if str(exc) else type(exc).__name__
    return PipelineError(
        f"model_name = {model_name!r} cannot be loaded ({reason}). Offline, the model must "
        "be in the Hugging Face cache: point HF_HOME at a cache that holds it (e.g. HF_HOME=../shared/hf "
        "HF_HUB_OFFLINE=1 holds sentence-transformers/all-MiniLM-L6-v2: "
        "dvc exp run -S model_name=sentence-transformers/all-MiniLM-L6-v2), go online so that it is downloaded, "
        "or set model_name to a local model directory"
    )


def check_recipe_settings(model_name: str, max_length: int, reinit_layers: int) -> None:
    """Refuse, before tokenising or training, a max_length or bert.reinit_layers ``model_name``'s family
    cannot apply (BERTweet embeds 128 positions), in one error naming the key."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_name)
    except (OSError, ValueError) as exc:
        raise _not_loadable(model_name, exc) from None
    check_encoder_settings(config, model_name, max_length, reinit_layers)


def classifier_config(model_name: str, num_classes: int, dropout_prob: float, label_names: Sequence[str]):
    """``model_name``'s config with ``num_classes`` labels named ``label_names`` and ``dropout_prob`` before
    the head, under the key the family reads it by (classifier_dropout, DistilBERT's seq_classif_dropout...)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_name)
    except (OSError, ValueError) as exc:
        raise _not_loadable(model_name, exc) from None
    config.num_labels = num_classes
    config.id2label = dict(enumerate(label_names))
    config.label2id = {n: i for i, n in enumerate(label_names)}
    setattr(config, head_dropout_key(config), dropout_prob)
    return config


class BertSentimentClassifier(nn.Module):
    """Encoder -> the family's own classification head (dropout ``dropout_prob``) -> ``num_classes`` logits.

    Built on ``AutoModelForSequenceClassification`` for any encoder family (BERT, RoBERTa, BERTweet, XLM-R,
    DeBERTa-v3, DistilBERT, ELECTRA, ModernBERT), so that ``save_pretrained`` writes a directory that
    ``transformers`` (``pipeline("text-classification")`` included) loads and scores exactly as it trained.
    ``attn_implementation`` (``"eager"``, ``"sdpa"``, a registered name, None: transformers' default)
    changes how attention is computed, not what; a family that computes attention its own way (DeBERTa)
    keeps it, and the export does not record it. ``forward`` returns logits.
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
        from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

        if len(label_names) != num_classes:
            label_names = tuple(f"LABEL_{i}" for i in range(num_classes))
        config = classifier_config(model_name, num_classes, dropout_prob, label_names)
        model_class = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING.get(type(config), None)
        if model_class is None:
            raise PipelineError(
                f"model_name = {model_name!r}: a {config.model_type} model has no sequence-classification head "
                "in transformers (expected an encoder such as BERT, RoBERTa, DeBERTa-v3, ELECTRA or ModernBERT)"
            )
        attention = attn_implementation if attn_implementation and takes_attention_function(model_class) else None
        try:
            self.model = AutoModelForSequenceClassification.from_pretrained(
                model_name, config=config, **({"attn_implementation": attention} if attention else {})
            )
        except pickle.UnpicklingError as exc:  # torch.load(weights_only=True) refused a pickled object
            reason = str(exc).splitlines()[0].rstrip(".")
            raise PipelineError(
                f"model_name = {model_name!r}: its weights hold more than tensors, which torch refuses to "
                f"unpickle ({reason}); save them as safetensors (model.save_pretrained does)"
            ) from None
        except (OSError, ValueError) as exc:
            raise _not_loadable(model_name, exc) from None
        self.first_token_only = compute_first_token_only_in_last_layer(self.model)
        self.model_name = model_name
        self.num_classes = num_classes

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits

    def save_pretrained(
        self, directory: str | os.PathLike, tokenizer=None, probe_texts: Sequence[str] = PROBE_TEXTS
    ) -> Path:
        """Weights, config (label names) and the tokenizer it trained with: what ``transformers`` loads.

        ``tokenizer`` None (the BERT guide's ``train_model`` takes none): ``model_name``'s. The saved
        tokenizer is loaded back and must split ``probe_texts`` as ``tokenizer`` does, so the export
        never scores with other token ids than the run (see save_tokenizer)."""
        directory = Path(directory)
        self.model.save_pretrained(directory)
        save_tokenizer(tokenizer if tokenizer is not None else load_tokenizer(self.model_name), directory, probe_texts)
        return directory


def save_tokenizer(tokenizer, directory: Path, probe_texts: Sequence[str] = PROBE_TEXTS) -> None:
    """``tokenizer.save_pretrained(directory)``, checked by loading it back: same ids for ``probe_texts``.

    BERTweet's tokenizer (transformers 5) writes its BPE merges without the count column its own reader
    drops, so a saved BERTweet splits every word into characters: its merges are written again in the
    fastBPE layout (``a b count``). Any other difference is a PipelineError, not a silently wrong model."""
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(directory)
    if type(tokenizer).__name__ == "BertweetTokenizer":
        merges = sorted(tokenizer.bpe_ranks.items(), key=lambda kv: kv[1])
        (directory / "bpe.codes").write_text("".join(f"{' '.join(pair)} 1\n" for pair, _ in merges), encoding="utf-8")
    texts = list(probe_texts)
    expected = tokenizer(texts, truncation=True)["input_ids"]
    loaded = AutoTokenizer.from_pretrained(directory)(texts, truncation=True)["input_ids"]
    if loaded != expected:
        first = next(i for i, (a, b) in enumerate(zip(loaded, expected)) if a != b)
        raise PipelineError(
            f"{directory}: the saved {type(tokenizer).__name__} does not split text as the training one did "
            f"({texts[first][:60]!r}: {len(loaded[first])} tokens against {len(expected[first])}); the export "
            "would score other tokens than it trained on"
        )


def check_tokenizer(tokenizer, model: nn.Module, export: Path) -> None:
    """A PipelineError unless ``tokenizer`` (loaded from ``export``) is the one ``model`` was trained with:
    its files are there and its ids fit the model's embedding matrix (within the padding some families
    add to a round size), special tokens included."""
    if not (export / "tokenizer_config.json").is_file():
        raise PipelineError(
            f"{export}: no tokenizer (tokenizer_config.json missing); the export must carry the tokenizer "
            "it was trained with: run `dvc repro train_bert` (or the training that wrote it) again"
        )
    rows = model.get_input_embeddings().weight.shape[0]
    size = len(tokenizer)
    special = [i for i in tokenizer.all_special_ids if i is not None]
    if size > rows or size < rows - max(128, rows // 100) or any(i >= rows for i in special):
        raise PipelineError(
            f"{export}: the tokenizer ({type(tokenizer).__name__}, {size} tokens) does not match the model's "
            f"vocabulary ({rows} embeddings); the export must carry the tokenizer it was trained with"
        )

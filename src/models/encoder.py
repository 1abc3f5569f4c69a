"""What the recipe needs of any encoder family, read from what transformers exposes for every model.

The base model (``model.base_model``), its list of transformer layers (the one ``nn.ModuleList`` of
``config.num_hidden_layers`` blocks, wherever the family keeps it: ``encoder.layer`` for BERT, RoBERTa,
ELECTRA and DeBERTa, ``transformer.layer`` for DistilBERT, ``layers`` for ModernBERT), the head's dropout
key in the family's config, and whether the family takes a registered attention function. Nothing here
names BERT's attributes, so BERTweet, twitter-RoBERTa, XLM-R, DeBERTa-v3, DistilBERT, ELECTRA and
ModernBERT go through the same recipe.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from src.core.errors import PipelineError

# the config key of the dropout before the classification head, where the family does not call it
# classifier_dropout (transformers' modeling code reads these names)
HEAD_DROPOUT_KEYS = {"distilbert": "seq_classif_dropout", "deberta-v2": "cls_dropout", "deberta": "cls_dropout"}


def head_dropout_key(config) -> str:
    """The name under which ``config``'s family reads the classification head's dropout."""
    key = HEAD_DROPOUT_KEYS.get(config.model_type, "classifier_dropout")
    if key not in HEAD_DROPOUT_KEYS.values() and not hasattr(config, key):
        raise PipelineError(
            f"dropout_prob: a {config.model_type} model has no classifier dropout setting "
            f"(expected one of {', '.join(['classifier_dropout', *sorted(set(HEAD_DROPOUT_KEYS.values()))])})"
        )
    return key


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks of ``model``'s encoder, bottom first (any family)."""
    base = _transformers_model(model).base_model
    n_layers = getattr(base.config, "num_hidden_layers", None)
    for _, module in base.named_modules():  # shallowest first: the encoder's own list
        if isinstance(module, nn.ModuleList) and len(module) == n_layers and n_layers:
            return module
    raise PipelineError(
        f"bert.reinit_layers / bert.layer_decay: a {base.config.model_type} model has no list of "
        f"{n_layers} encoder layers to address"
    )


def layer_depths(model: nn.Module) -> Callable[[str], int]:
    """name -> depth of each parameter of ``model``: 0 below the first layer (embeddings), i + 1 in
    encoder layer i, the number of layers + 1 above the last (final norm, pooler, classification head)."""
    layers = encoder_layers(model)
    depth: dict[int, int] = {}
    for i, layer in enumerate(layers):
        for parameter in layer.parameters():
            depth[id(parameter)] = i + 1
    base = _transformers_model(model).base_model
    # base-model parameters outside the layers: the embeddings (and their norm, projection, relative
    # positions) sit below the layers; what a family adds after them (a final norm) sits above
    for name, parameter in base.named_parameters():
        depth.setdefault(id(parameter), 0 if "embed" in name or "rel_" in name else len(layers) + 1)
    by_name = {name: depth.get(id(p), len(layers) + 1) for name, p in model.named_parameters()}
    return lambda name: by_name.get(name, len(layers) + 1)


def reinit_top_layers(model: nn.Module, n_layers: int) -> None:
    """Re-initialise the top ``n_layers`` encoder layers as the family initialises new weights.

    Normal weights (std ``initializer_range``), zero biases, identity norms: the top layers' pretrained
    weights are specialised to the pretraining objective (Zhang et al., 2021). Every linear and norm
    module in those layers is reset, whatever the family names them."""
    if n_layers == 0:
        return
    hf_model = _transformers_model(model)
    layers = encoder_layers(hf_model)
    if n_layers > len(layers):
        raise PipelineError(f"bert.reinit_layers = {n_layers}: the model has {len(layers)} encoder layers")
    std = getattr(hf_model.config, "initializer_range", 0.02)
    # by hand: transformers' own _init_weights skips weights it has marked as loaded
    with torch.no_grad():
        for module in layers[len(layers) - n_layers :].modules():
            if isinstance(module, nn.Linear):
                module.weight.normal_(0.0, std)
                if module.bias is not None:
                    module.bias.zero_()
            elif "norm" in type(module).__name__.lower() and isinstance(getattr(module, "weight", None), torch.Tensor):
                module.weight.fill_(1.0)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()


def _transformers_model(model: nn.Module) -> nn.Module:
    """The transformers model itself: ``model``, or the one a BertSentimentClassifier wraps."""
    return model if hasattr(model, "base_model_prefix") else model.model


def takes_attention_function(model_class) -> bool:
    """Whether the family computes attention through transformers' registered attention functions."""
    return bool(getattr(model_class, "_supports_attention_backend", False))


# families whose learned absolute positions start after the padding index (RobertaEmbeddings): a
# max_position_embeddings of 130 holds 128 tokens (BERTweet), 514 holds 512 (RoBERTa, XLM-R)
PADDING_OFFSET_FAMILIES = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "ibert"}


def position_limit(config) -> int | None:
    """The most tokens a model of ``config`` embeds, or None where positions are relative (DeBERTa
    without absolute positions)."""
    if config.model_type in ("deberta-v2", "deberta") and not getattr(config, "position_biased_input", True):
        return None
    limit = getattr(config, "max_position_embeddings", None)
    if limit is None:
        return None
    if config.model_type in PADDING_OFFSET_FAMILIES:
        limit -= (config.pad_token_id or 0) + 1
    return limit


def check_encoder_settings(config, model_name: str, max_length: int, reinit_layers: int) -> None:
    """Refuse, before any work, a setting the family of ``config`` cannot apply, naming the params key."""
    limit = position_limit(config)
    if limit is not None and max_length > limit:
        raise PipelineError(
            f"max_length = {max_length}: {model_name} (a {config.model_type} model) embeds at most "
            f"{limit} positions; set max_length <= {limit} (e.g. -S max_length={min(limit, 128)})"
        )
    n_layers = getattr(config, "num_hidden_layers", None)
    if n_layers is not None and reinit_layers > n_layers:
        raise PipelineError(
            f"bert.reinit_layers = {reinit_layers}: {model_name} (a {config.model_type} model) has "
            f"{n_layers} encoder layers"
        )

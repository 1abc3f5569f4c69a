"""Less work for a classifier that reads one token: the last encoder layer computes that token alone."""

from __future__ import annotations

import sys

from torch import nn

# model types whose sequence-classification head reads the first token ([CLS], <s>) alone
FIRST_TOKEN_HEADS = ("bert", "roberta", "xlm-roberta", "camembert", "electra")


def compute_first_token_only_in_last_layer(model: nn.Module) -> bool:
    """Make the last encoder layer compute its output for the first token only; True if it could.

    The classification head reads nothing else of that layer, so the logits are unchanged: the
    first token still attends to every token (keys and values come from all of them), while the
    query, attention output and feed-forward of every other token, which nobody reads, are skipped:
    about 5/6 of the last layer's matrix work (1/7 of MiniLM's encoder). Only the forward of that
    layer object changes; the weights, ``state_dict`` and ``save_pretrained`` export stay standard.
    Encoders of another layout (or decoders) are left as they are.
    """
    config = getattr(model, "config", None)
    if config is None or config.model_type not in FIRST_TOKEN_HEADS or getattr(config, "is_decoder", False):
        return False
    try:
        layer = getattr(model, model.base_model_prefix).encoder.layer[-1]
        attention = layer.attention.self
        projections = (attention.query, attention.key, attention.value, attention.attention_head_size)
        attention_output, feed_forward = layer.attention.output, layer.feed_forward_chunk
    except AttributeError:
        return False
    query, key, value, head_size = projections
    modeling = sys.modules[type(attention).__module__]  # the model's own attention functions

    def first_token_forward(hidden_states, attention_mask=None, *args, **kwargs):
        batch, length, _ = hidden_states.shape
        first = hidden_states[:, :1]
        q = query(first).view(batch, 1, -1, head_size).transpose(1, 2)
        k = key(hidden_states).view(batch, length, -1, head_size).transpose(1, 2)
        v = value(hidden_states).view(batch, length, -1, head_size).transpose(1, 2)
        if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.shape[-2] > 1:
            attention_mask = attention_mask[:, :, :1]  # the first query's row
        attend = modeling.ALL_ATTENTION_FUNCTIONS.get_interface(
            config._attn_implementation, modeling.eager_attention_forward
        )
        context, _ = attend(
            attention,
            q,
            k,
            v,
            attention_mask,
            scaling=attention.scaling,
            dropout=attention.dropout.p if attention.training else 0.0,
        )
        return feed_forward(attention_output(context.reshape(batch, 1, -1).contiguous(), first))

    layer.forward = first_token_forward
    return True

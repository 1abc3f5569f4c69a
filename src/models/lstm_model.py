"""A padding-aware (Bi)LSTM tweet classifier."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from src.core.errors import PipelineError
from src.data.vocab import PAD_ID


class LSTMClassifier(nn.Module):
    """Embedding -> (Bi)LSTM -> final hidden state(s) -> dropout -> linear logits.

    Sequences are packed with their true lengths, so padding never reaches the LSTM and the
    prediction for a tweet does not depend on how long the other tweets in its batch are.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 100,
        hidden_dim: int = 128,
        output_dim: int = 3,
        n_layers: int = 2,
        dropout: float = 0.3,
        bidirectional: bool = True,
        pad_idx: int = PAD_ID,
    ):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("output_dim", output_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PipelineError(f"{name} = {value!r}: expected a whole number >= 1")
        self.config = dict(
            vocab_size=vocab_size,
            embedding_dim=embedding_dim,
            hidden_dim=hidden_dim,
            output_dim=output_dim,
            n_layers=n_layers,
            dropout=dropout,
            bidirectional=bidirectional,
            pad_idx=pad_idx,
        )
        self.pad_idx = pad_idx
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_idx)
        self.lstm = nn.LSTM(
            embedding_dim,
            hidden_dim,
            num_layers=n_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if n_layers > 1 else 0.0,  # inter-layer dropout only exists between layers
        )
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_dim * (2 if bidirectional else 1), output_dim)

    def forward(
        self, input_ids: torch.Tensor, lengths: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if lengths is None:
            mask = attention_mask if attention_mask is not None else input_ids != self.pad_idx
            lengths = mask.sum(dim=1)
        vocab_size = self.embedding.num_embeddings
        if input_ids.numel() and int(input_ids.max()) >= vocab_size:  # nn.Embedding's bare IndexError otherwise
            raise PipelineError(
                f"token id {int(input_ids.max())} is outside the model's vocab_size = {vocab_size}: the vocabulary "
                "has more words than the model's embedding has rows; build the model with "
                "vocab_size=len(vocabulary)"
            )
        embedded = self.dropout(self.embedding(input_ids))
        # pack_padded_sequence wants lengths on the CPU; an empty tweet still gets one (pad) step.
        packed = pack_padded_sequence(embedded, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.lstm(packed)
        # hidden: [n_layers * directions, B, H]; the last layer's forward (and backward) states.
        final = torch.cat((hidden[-2], hidden[-1]), dim=1) if self.lstm.bidirectional else hidden[-1]
        return self.fc(self.dropout(final))

    def load_pretrained_embeddings(self, matrix: np.ndarray | torch.Tensor, freeze: bool = False) -> None:
        """Copy a ``[vocab_size, embedding_dim]`` matrix into the embedding layer; optionally freeze it."""
        weights = torch.as_tensor(np.asarray(matrix), dtype=self.embedding.weight.dtype)
        expected = tuple(self.embedding.weight.shape)
        if weights.ndim != 2 or weights.shape[1] != expected[1]:
            raise PipelineError(
                f"lstm.embedding_dim = {expected[1]} but the pretrained embeddings are "
                f"{weights.shape[1] if weights.ndim == 2 else '?'}-dimensional; set lstm.embedding_dim to "
                f"{weights.shape[1] if weights.ndim == 2 else 'the GloVe dimension'} (or use_glove: false)"
            )
        if weights.shape[0] != expected[0]:
            raise PipelineError(
                f"the embedding matrix has {weights.shape[0]} rows but the vocabulary has {expected[0]} "
                "words; rebuild them together (dvc repro build_vocab)"
            )
        with torch.no_grad():
            self.embedding.weight.copy_(weights)
        self.embedding.weight.requires_grad_(not freeze)

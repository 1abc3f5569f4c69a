"""The LSTM vocabulary (built from train only) and GloVe vectors aligned to it."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from src.core.atomic import write_json
from src.core.errors import DataError
from src.data.tokenizer import tokenize

PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


class Vocabulary:
    """Token <-> id mapping with ``<pad>`` = 0 and ``<unk>`` = 1; also the LSTM's text preprocessor."""

    def __init__(self, tokens: Iterable[str]):
        self.idx2word = [PAD_TOKEN, UNK_TOKEN] + [t for t in tokens if t not in (PAD_TOKEN, UNK_TOKEN)]
        self.word2idx = {w: i for i, w in enumerate(self.idx2word)}

    def __len__(self) -> int:
        return len(self.idx2word)

    @property
    def vocab_size(self) -> int:
        return len(self)

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 1, max_size: int | None = None) -> Vocabulary:
        """Most frequent tokens first (ties alphabetical, so the order is deterministic)."""
        counts = Counter(tok for text in texts for tok in tokenize(text))
        ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max_size - 2]  # the two special tokens count towards max_size
        return cls(ranked)

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)

    def encode(self, text: str) -> list[int]:
        """Token ids for one tweet; unknown tokens map to ``<unk>``."""
        return [self.word2idx.get(tok, UNK_ID) for tok in tokenize(text)]

    def save(self, path: str | os.PathLike) -> None:
        write_json(
            path,
            {"pad_token": PAD_TOKEN, "unk_token": UNK_TOKEN, "tokenizer": "glove-twitter", "tokens": self.idx2word},
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            tokens = data["tokens"]
        except FileNotFoundError:
            raise DataError(f"{path}: vocabulary not found (run `dvc repro build_vocab`)") from None
        except (ValueError, KeyError, TypeError):
            raise DataError(f"{path}: not a vocabulary file (expected JSON with a 'tokens' list)") from None
        if tokens[:2] != [PAD_TOKEN, UNK_TOKEN]:
            raise DataError(f"{path}: expected tokens to start with {PAD_TOKEN}, {UNK_TOKEN}")
        return cls(tokens[2:])


def glove_candidates(token: str) -> list[str]:
    """Spellings to look up in GloVe: the token, then without apostrophes (``i'm`` -> ``im``)."""
    plain = token.replace("'", "").replace("’", "")
    return [token] if plain == token or not plain else [token, plain]


def align_glove(
    vocab: Vocabulary, vectors: dict[str, np.ndarray], dim: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A ``[len(vocab), dim]`` float32 matrix: GloVe rows where found, small random rows elsewhere.

    ``<pad>`` is all zeros. Missing rows are drawn from N(0, std of the found vectors), seeded, so
    they sit on the same scale as the pretrained ones. Returns (matrix, found mask).
    """
    rng = np.random.default_rng(seed)
    found = np.zeros(len(vocab), dtype=bool)
    rows = {}
    for idx, token in enumerate(vocab.idx2word[2:], start=2):
        for candidate in glove_candidates(token):
            if candidate in vectors:
                rows[idx] = vectors[candidate]
                found[idx] = True
                break
    scale = float(np.std(np.stack(list(rows.values())))) if rows else 0.1
    matrix = rng.normal(0.0, scale, size=(len(vocab), dim)).astype(np.float32)
    for idx, vector in rows.items():
        matrix[idx] = vector
    matrix[PAD_ID] = 0.0
    return matrix, found


def glove_words_wanted(vocab: Vocabulary) -> set[str]:
    """Every spelling ``align_glove`` may look up: read only these from the large GloVe file."""
    return {c for tok in vocab.idx2word[2:] for c in glove_candidates(tok)}


def coverage_stats(vocab: Vocabulary, found: np.ndarray, train_texts: Iterable[str]) -> dict:
    """Share of the vocabulary, and of all train tokens, that has a GloVe vector."""
    token_counts = Counter(tok for text in train_texts for tok in tokenize(text))
    total = sum(token_counts.values())
    in_vocab = sum(c for t, c in token_counts.items() if t in vocab.word2idx)
    with_vector = sum(c for t, c in token_counts.items() if t in vocab.word2idx and found[vocab.word2idx[t]])
    n_words = len(vocab) - 2
    n_found = int(found.sum())
    return {
        "vocab_size": len(vocab),
        "words_found": n_found,
        "words_missing": n_words - n_found,
        "vocab_coverage": round(n_found / n_words, 4) if n_words else 0.0,
        "train_tokens": total,
        "token_coverage": round(with_vector / total, 4) if total else 0.0,
        "unk_token_rate": round(1 - in_vocab / total, 4) if total else 0.0,
    }

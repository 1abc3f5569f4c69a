"""GloVe for the LSTM: fetch through the project's downloader (mirror included), align, load into a model."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from src.core.errors import PipelineError
from src.data import glove
from src.data.download import download
from src.data.vocab import Vocabulary, align_glove, glove_words_wanted

log = logging.getLogger(__name__)


class GloVeLoader:
    """Downloads (src.data.download: retries, sha256, $SENTIMENT_MIRROR) and reads GloVe vectors under ``cache_dir``."""

    def __init__(
        self,
        cache_dir: str | os.PathLike = "data/glove",
        base_url: str = glove.GLOVE_BASE_URL,
        sha256: str | None = None,
    ):
        self.cache_dir = Path(cache_dir)
        self.base_url = base_url
        self.sha256 = sha256

    def download_glove(self, corpus: str = "twitter.27B", dimension: str = "25d") -> Path:
        """Path of the extracted ``glove.CORPUS.DIM.txt``; downloads/extracts only what is missing."""
        member = glove.member_name(corpus, dimension)  # bad pair: clear error before any download
        text_path = self.cache_dir / member
        if text_path.is_file():
            return text_path
        url = glove.archive_url(corpus, self.base_url)
        archive = download(
            url, self.cache_dir / Path(url).name, sha256=self.sha256, within=self.cache_dir, reuse=True
        )  # other dimensions of the same archive are extracted without a download
        return glove.extract_member(archive, member, text_path)

    def load_glove_embeddings(self, path: str | os.PathLike, words: set[str] | None = None) -> tuple[dict, int]:
        """(word -> float32 vector, dimension); with ``words``, only those words are kept."""
        return glove.read_vectors(path, words=words)


def initialize_model_with_glove(
    model: nn.Module,
    preprocessor: Vocabulary,
    corpus: str = "twitter.27B",
    dimension: str = "25d",
    freeze_embeddings: bool = False,
    cache_dir: str | os.PathLike = "data/glove",
    base_url: str = glove.GLOVE_BASE_URL,
    seed: int = 0,
) -> dict:
    """Fill ``model.embedding`` with GloVe rows aligned to the vocabulary; returns coverage statistics.

    Words GloVe lacks get seeded random rows on the GloVe scale (``src.data.vocab.align_glove``).
    """
    embedding = getattr(model, "embedding", None)
    if not isinstance(embedding, nn.Embedding):
        raise PipelineError(f"{type(model).__name__} has no `embedding` nn.Embedding layer to initialise")
    loader = GloVeLoader(cache_dir, base_url)
    vectors, dim = loader.load_glove_embeddings(
        loader.download_glove(corpus, dimension), words=glove_words_wanted(preprocessor)
    )
    if dim != embedding.embedding_dim:
        raise PipelineError(
            f"lstm.embedding_dim = {embedding.embedding_dim} but GloVe {corpus} {dimension} vectors "
            f"are {dim}-dimensional; set lstm.embedding_dim to {dim}"
        )
    if embedding.num_embeddings != len(preprocessor):
        raise PipelineError(
            f"the model's embedding has {embedding.num_embeddings} rows but the vocabulary has "
            f"{len(preprocessor)} words"
        )
    matrix, found = align_glove(preprocessor, vectors, dim, seed=seed)
    with torch.no_grad():
        embedding.weight.copy_(torch.from_numpy(matrix))
    embedding.weight.requires_grad_(not freeze_embeddings)
    n_words = len(preprocessor) - 2  # <pad> and <unk> have no GloVe vector by design
    n_found = int(found.sum())
    stats = {
        "glove": f"{corpus}.{dimension}",
        "embedding_dim": dim,
        "vocab_size": len(preprocessor),
        "words_found": n_found,
        "words_missing": n_words - n_found,
        "vocab_coverage": round(n_found / n_words, 4) if n_words else 0.0,
        "missing_examples": [w for w, ok in zip(preprocessor.idx2word[2:], found[2:]) if not ok][:10],
        "frozen": freeze_embeddings,
    }
    log.info("GloVe %s: %d/%d words found (%.1f%%)", stats["glove"], n_found, n_words, 100 * stats["vocab_coverage"])
    return stats

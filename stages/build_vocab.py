"""build_vocab: the LSTM vocabulary from train, GloVe aligned to it (.npy), coverage in metrics/vocab.json."""

import sys
from pathlib import Path

from src.core.atomic import save_numpy, write_json
from src.core.cli import run_stage
from src.data import glove
from src.data.preprocess import read_split
from src.data.vocab import Vocabulary, align_glove, coverage_stats, glove_words_wanted

VOCAB_DIR = Path("data/vocab")
METRICS_PATH = Path("metrics/vocab.json")


def main(params: dict) -> None:
    cfg, gcfg = params["vocab"], params["glove"]
    train = read_split("data/processed/train.jsonl")
    vocab = Vocabulary.build(train.texts, min_freq=cfg["min_freq"], max_size=cfg["max_size"])

    glove_path = Path("data/glove") / glove.member_name(gcfg["corpus"], gcfg["dimension"])
    vectors, dim = glove.read_vectors(glove_path, words=glove_words_wanted(vocab))
    matrix, found = align_glove(vocab, vectors, dim, seed=params["data"]["seed"])

    vocab.save(VOCAB_DIR / "vocab.json")
    save_numpy(VOCAB_DIR / "embeddings.npy", matrix)
    write_json(
        METRICS_PATH,
        {
            "glove": f"{gcfg['corpus']}.{gcfg['dimension']}",
            "embedding_dim": dim,
            **coverage_stats(vocab, found, train.texts),
        },
    )


if __name__ == "__main__":
    run_stage(main, argv=sys.argv[1:])

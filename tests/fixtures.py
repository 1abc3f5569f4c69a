"""Tiny data the tests write themselves: TweetEval-layout files, GloVe zips, mirrors."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

TWEETEVAL_HOST_PATH = "raw.githubusercontent.com/cardiffnlp/tweeteval/main/datasets/sentiment"
GLOVE_HOST_PATH = "nlp.stanford.edu/data"
LABEL_NAMES = ["negative", "neutral", "positive"]

POSITIVE = ["i love this so much", "what a great day", "best game ever @fan", "so happy right now",
            "awesome show tonight", "love love love it", "great win for the team", "happy friday all"]
NEGATIVE = ["i hate this", "worst day ever", "so sad and angry", "terrible game tonight",
            "awful traffic again", "hate mondays so much", "bad news for the team", "this is the worst"]
NEUTRAL = ["the game is on friday", "meeting at noon", "new phone released today", "the show starts at 8",
           "going to the store", "traffic report for monday", "the team plays tonight", "weather update"]


def tiny_splits() -> dict[str, list[tuple[str, int]]]:
    """A small, learnable 3-class set: train has two copies per tweet, val/test one each."""
    rows = [(t, 0) for t in NEGATIVE] + [(t, 1) for t in NEUTRAL] + [(t, 2) for t in POSITIVE]
    train = [(f"{t} {suffix}", y) for t, y in rows for suffix in ("!", "today")]
    val = [(f"{t} now", y) for t, y in rows[::2]]
    test = [(f"{t} again", y) for t, y in rows[1::2]]
    return {"train": train, "val": val, "test": test}


def write_tweeteval(directory: Path, splits: dict[str, list[tuple[str, int]]]) -> Path:
    """``{split}_text.txt`` / ``{split}_labels.txt`` / ``mapping.txt`` as TweetEval lays them out."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        (directory / f"{split}_text.txt").write_text("".join(f"{t} \n" for t, _ in rows), encoding="utf-8")
        (directory / f"{split}_labels.txt").write_text("".join(f"{y}\n" for _, y in rows), encoding="utf-8")
    (directory / "mapping.txt").write_text("".join(f"{i}\t{n}\n" for i, n in enumerate(LABEL_NAMES)))
    return directory


def glove_lines(words: list[str], dim: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return "".join(w + " " + " ".join(f"{v:.5f}" for v in rng.normal(size=dim)) + "\n" for w in words)


def write_glove_zip(path: Path, members: dict[str, str]) -> Path:
    """A zip holding ``{member name: text}``, like Stanford's GloVe archives."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def write_mirror(root: Path, words: list[str] | None = None, dims=(25,)) -> Path:
    """A ``HOST/PATH`` mirror with tiny TweetEval sentiment and a twitter.27B GloVe archive."""
    write_tweeteval(root / TWEETEVAL_HOST_PATH, tiny_splits())
    if words is None:
        words = sorted({w for rows in tiny_splits().values() for t, _ in rows for w in t.split()} | {"<user>"})
    members = {f"glove.twitter.27B.{d}d.txt": glove_lines(words, d) for d in dims}
    write_glove_zip(root / GLOVE_HOST_PATH / "glove.twitter.27B.zip", members)
    return root


def write_tiny_bert(directory: Path) -> Path:
    """A 2-layer, 32-wide BERT and a WordPiece vocabulary of the fixture words, saved as a model directory
    that ``model_name`` can name (loaded through the same from_pretrained path as a hub model)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from src.preprocess import normalize_tweet

    directory.mkdir(parents=True, exist_ok=True)
    words = sorted({w for rows in tiny_splits().values() for t, _ in rows for w in normalize_tweet(t).split()})
    (directory / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizerFast(vocab=str(directory / "vocab.txt"), do_lower_case=True).save_pretrained(directory)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=5 + len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(directory)
    return directory

"""Tiny data the tests write themselves: TweetEval-layout files, GloVe zips, mirrors."""

from __future__ import annotations

import http.server
import random
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

TWEETEVAL_HOST_PATH = "raw.githubusercontent.com/cardiffnlp/tweeteval/main/datasets/sentiment"
GLOVE_HOST_PATH = "nlp.stanford.edu/data"
LABEL_NAMES = ["negative", "neutral", "positive"]

POSITIVE = [
    "i love this so much",
    "what a great day",
    "best game ever @fan",
    "so happy right now",
    "awesome show tonight",
    "love love love it",
    "great win for the team",
    "happy friday all",
]
NEGATIVE = [
    "i hate this",
    "worst day ever",
    "so sad and angry",
    "terrible game tonight",
    "awful traffic again",
    "hate mondays so much",
    "bad news for the team",
    "this is the worst",
]
NEUTRAL = [
    "the game is on friday",
    "meeting at noon",
    "new phone released today",
    "the show starts at 8",
    "going to the store",
    "traffic report for monday",
    "the team plays tonight",
    "weather update",
]


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

    from src.data.preprocess import normalize_tweet

    directory.mkdir(parents=True, exist_ok=True)
    words = sorted({w for rows in tiny_splits().values() for t, _ in rows for w in normalize_tweet(t).split()})
    (directory / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizerFast(vocab=str(directory / "vocab.txt"), do_lower_case=True).save_pretrained(directory)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=5 + len(words),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(directory)
    return directory


# --- helpers shared by several test modules (the fixtures built on them are in tests/conftest.py) ---

REPO = Path(__file__).resolve().parents[1]

BODY = bytes(range(256)) * 400  # 100 KiB: what the test HTTP server serves


class DownloadHandler(http.server.BaseHTTPRequestHandler):
    """Serves BODY for any path (Range requests answered with 206), 404 for /missing.txt; /flaky.bin drops
    the connection mid-body ``drops_left`` times. Every request is recorded in ``requests_seen``."""

    requests_seen: list = []
    drops_left = 0

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        type(self).requests_seen.append((self.path, self.headers.get("Range")))
        if self.path == "/missing.txt":
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(BODY) - 1}/{len(BODY)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(BODY) - start))
        self.end_headers()
        if self.path == "/flaky.bin" and type(self).drops_left > 0:
            type(self).drops_left -= 1
            self.wfile.write(BODY[start : start + 30_000])  # then the connection drops mid-body
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(BODY[start:])


WORDS = {
    0: ["bad", "awful", "hate", "worst"],
    1: ["table", "monday", "report", "news"],
    2: ["good", "great", "love", "best"],
}
FILLER = ["the", "a", "is", "today", "we", "it", "so", "this"]


def synthetic_split(n: int, seed: int) -> tuple[list[str], list[int]]:
    """Tweets whose class is given by one cue word hidden among filler words (separable)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        label = rng.randrange(3)
        words = rng.choices(FILLER, k=rng.randint(1, 8))
        words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS[label]))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


# lstm params small enough to train in seconds on synthetic_split
TINY_LSTM = {
    "embedding_dim": 8,
    "hidden_dim": 12,
    "n_layers": 1,
    "dropout": 0.1,
    "bidirectional": True,
    "max_length": 64,
    "batch_size": 16,
    "learning_rate": 0.02,
    "epochs": 6,
    "weight_decay": 0.0,
    "gradient_clip": 1.0,
    "early_stopping_patience": 3,
    "scheduler": "cosine",
    "use_glove": True,
    "freeze_embeddings": False,
    "class_weights": "balanced",
    "seed": 3,
}


def bert_loaders(model_dir, batch_size=8):
    """(tokenizer, train loader, val loader) of tiny_splits() for the BERT at ``model_dir``."""
    from src.data.preprocess import normalize_tweet
    from src.models.bert_data import TokenizedTweets, make_bert_loader
    from src.models.bert_model import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    splits = {
        s: TokenizedTweets([normalize_tweet(t) for t, _ in rows], [y for _, y in rows], tokenizer, 32)
        for s, rows in tiny_splits().items()
    }
    return (
        tokenizer,
        make_bert_loader(splits["train"], batch_size, shuffle=True, seed=0),
        make_bert_loader(splits["val"], 16, shuffle=False),
    )


def run_checked(args, cwd, env) -> str:
    """Run a command; fail the test with its output unless it exits 0. Returns stdout + stderr."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def set_params(path: Path, updates: dict) -> None:
    """Edit params.yaml in place (comments kept), ``{"lstm.epochs": 2, ...}``."""
    from ruamel.yaml import YAML

    yaml = YAML()
    params = yaml.load(path)
    for dotted, value in updates.items():
        *parents, key = dotted.split(".")
        section = params
        for parent in parents:
            section = section[parent]
        section[key] = value
    yaml.dump(params, path)


# every stage of dvc.yaml, as `dvc repro` names them in its output
PIPELINE_STAGES = (
    "download_data",
    "download_glove",
    "preprocess",
    "build_vocab",
    "train_bert",
    "train_lstm",
    "tune",
    "train_tfidf",
    "ensemble",
    "export_bert",
    "evaluate@bert",
    "evaluate@lstm",
    "evaluate@tune_best",
    "evaluate@tfidf",
    "evaluate@ensemble",
    "evaluate@majority",
)


def stages_run(output: str) -> set[str]:
    """The stages a `dvc repro` / `dvc exp run` output says it ran."""
    return {stage for stage in PIPELINE_STAGES if f"Running stage '{stage}'" in output}


def stages_restored(output: str) -> set[str]:
    """The stages it restored from the run-cache."""
    return {stage for stage in PIPELINE_STAGES if f"Stage '{stage}' is cached - skipping run" in output}


def stages_unchanged(output: str) -> set[str]:
    """The stages it found up to date."""
    return {stage for stage in PIPELINE_STAGES if f"Stage '{stage}' didn't change, skipping" in output}


def init_git_dvc_repo(work: Path, env: dict) -> None:
    """``git init`` and ``dvc init`` in ``work``, with a committer identity."""
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "t@example.com"],
        ["git", "config", "user.name", "test"],
        [sys.executable, "-m", "dvc", "init", "-q"],
    ):
        run_checked(cmd, work, env)

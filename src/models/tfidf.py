"""A TF-IDF logistic regression on word and character n-grams: a cheap model unlike the neural ones.

A scikit-learn ``Pipeline``: the union of a word n-gram and a character n-gram (``char_wb``, inside
word boundaries) ``TfidfVectorizer``, both with sublinear term frequency, feeding a multinomial
``LogisticRegression``. It trains in about a minute on TweetEval's train split on a CPU and its
errors differ from the encoders', which is what an ensemble member needs.

Saved with skops (``skops.io``), not pickle: loading a skops file builds only the types it lists, and
this module refuses a file that lists any type outside skops' default trusted set (numpy, scipy and
scikit-learn estimators), so a model directory pulled from a remote cannot run code when it is read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from src.atomic import atomic_open, write_json
from src.errors import ParamsError, PipelineError
from src.json_files import read_json_object
from src.paths import file_in

MODEL_FILE = "model.skops"
CONFIG_FILE = "tfidf_config.json"  # label names and the model file's name: what makes the directory a tfidf model
TOKEN_PATTERN = r"(?u)\b\w+\b"  # one-letter words too ("i", "u"): scikit-learn's default drops them


def check_params(cfg: dict) -> None:
    """What the schema cannot say: each n-gram range is [low, high] with low <= high."""
    for key in ("word_ngrams", "char_ngrams"):
        low, high = cfg[key]
        if low > high:
            raise ParamsError(f"params.yaml: tfidf.{key} = {cfg[key]}: expected [low, high] with low <= high")


def build_pipeline(cfg: dict) -> Pipeline:
    """The unfitted pipeline for params.yaml's ``tfidf`` section."""
    check_params(cfg)
    features = FeatureUnion(
        [
            (
                "word",
                TfidfVectorizer(
                    ngram_range=tuple(cfg["word_ngrams"]),
                    min_df=cfg["min_df"],
                    sublinear_tf=True,
                    token_pattern=TOKEN_PATTERN,
                    dtype=np.float32,
                ),
            ),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=tuple(cfg["char_ngrams"]),
                    min_df=cfg["min_df"],
                    sublinear_tf=True,
                    dtype=np.float32,
                ),
            ),
        ]
    )
    classifier = LogisticRegression(C=cfg["C"], class_weight=cfg["class_weight"], max_iter=cfg["max_iter"])
    return Pipeline([("features", features), ("classifier", classifier)])


def fit(texts: Sequence[str], labels: Sequence[int], cfg: dict) -> Pipeline:
    """The pipeline fitted on (normalised) ``texts``; every class must occur in ``labels``."""
    return build_pipeline(cfg).fit(list(texts), np.asarray(labels))


def save(pipeline: Pipeline, model_dir: str | os.PathLike, label_names: Sequence[str]) -> None:
    """``model.skops`` then ``tfidf_config.json``, each atomically (the config last: it marks a complete directory)."""
    import skops.io

    model_dir = Path(model_dir)
    with atomic_open(model_dir / MODEL_FILE, "wb") as handle:
        handle.write(skops.io.dumps(pipeline))
    write_json(model_dir / CONFIG_FILE, {"model": MODEL_FILE, "label_names": list(label_names)})


def is_tfidf_dir(model_dir: str | os.PathLike) -> bool:
    return (Path(model_dir) / CONFIG_FILE).is_file()


def load(model_dir: str | os.PathLike) -> tuple[Pipeline, list[str]]:
    """(fitted pipeline, label names) from a directory ``save`` wrote; a damaged or untrusted one is a
    PipelineError naming the file."""
    import skops.io

    model_dir = Path(model_dir)
    config_path = model_dir / CONFIG_FILE
    again = "run `dvc repro train_tfidf` again"
    config = read_json_object(config_path, again)
    label_names = config.get("label_names")
    if not (isinstance(label_names, list) and len(label_names) >= 2 and all(isinstance(n, str) for n in label_names)):
        raise PipelineError(f"{config_path}: label_names = {label_names!r}: expected a list of names; {again}")
    model_path = file_in(model_dir, config.get("model"), f"{config_path}: model")
    data = model_path.read_bytes()
    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as exc:  # noqa: BLE001 - skops raises many types for a damaged file
        raise PipelineError(f"{model_path}: not a skops model file ({exc.__class__.__name__}); {again}") from None
    if untrusted:
        raise PipelineError(
            f"{model_path}: lists types outside scikit-learn, numpy and scipy ({', '.join(untrusted[:3])}); "
            f"refusing to load it; {again}"
        )
    try:
        pipeline = skops.io.loads(data)
    except Exception as exc:  # noqa: BLE001
        raise PipelineError(f"{model_path}: a damaged skops model ({exc.__class__.__name__}); {again}") from None
    classes = getattr(pipeline, "classes_", None)
    if not isinstance(pipeline, Pipeline) or classes is None or list(classes) != list(range(len(label_names))):
        raise PipelineError(f"{model_path}: not a classifier of the {len(label_names)} classes {label_names}; {again}")
    return pipeline, label_names

"""A TF-IDF logistic regression on word and character n-grams: a cheap model unlike the neural ones.

A scikit-learn ``Pipeline``: the union of a word n-gram and a character n-gram (``char_wb``, inside
word boundaries) ``TfidfVectorizer``, both with sublinear term frequency, feeding a multinomial
``LogisticRegression``. It trains in about a minute on TweetEval's train split on a CPU and its
errors differ from the encoders', which is what an ensemble member needs.

Saved as plain arrays, not pickle: ``model.npz`` holds each vectorizer's n-grams (in column order)
and idf weights and the classifier's coefficients, read with ``allow_pickle=False``; the pipeline is
rebuilt from the params recorded in ``tfidf_config.json``. So a model directory pulled from a remote
cannot run code when it is read. (skops, scikit-learn's safe format, writes each vocabulary entry as
its own JSON node: 212 MB and 20 s to load for TweetEval's 254,000 n-grams, against a few MB here.)
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from src.core.atomic import atomic_open, write_json
from src.core.errors import ParamsError, PipelineError
from src.core.json_files import read_json_object
from src.core.paths import file_in

MODEL_FILE = "model.npz"
PARAM_KEYS = ("word_ngrams", "char_ngrams", "min_df", "C", "class_weight", "max_iter")
CONFIG_FILE = "tfidf_config.json"  # label names and the model file's name: what makes the directory a tfidf model
TOKEN_PATTERN = r"(?u)\b\w+\b"  # one-letter words too ("i", "u"): scikit-learn's default drops them


# TweetEval's model is ~60 MB of arrays; a pulled model.npz may declare more (a 1 MB file of zeros
# inflates to GBs), so its arrays' sizes and shapes are read from their headers before any is inflated
MAX_MODEL_ARRAY_BYTES = 512 << 20


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


def _parts(pipeline: Pipeline) -> tuple[list, LogisticRegression]:
    return pipeline.named_steps["features"].transformer_list, pipeline.named_steps["classifier"]


def save(pipeline: Pipeline, model_dir: str | os.PathLike, label_names: Sequence[str], cfg: dict) -> None:
    """``model.npz`` (plain arrays) then ``tfidf_config.json`` (the params and label names), each
    atomically; the config last, as it marks a complete directory."""
    vectorizers, classifier = _parts(pipeline)
    arrays = {"coef": classifier.coef_, "intercept": classifier.intercept_}
    for name, vectorizer in vectorizers:
        terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)  # column order
        arrays[f"{name}_terms"] = np.array(terms, dtype=str)
        arrays[f"{name}_idf"] = vectorizer.idf_
    model_dir = Path(model_dir)
    with atomic_open(model_dir / MODEL_FILE, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    write_json(
        model_dir / CONFIG_FILE,
        {"model": MODEL_FILE, "label_names": list(label_names), "params": {key: cfg[key] for key in PARAM_KEYS}},
    )


def is_tfidf_dir(model_dir: str | os.PathLike) -> bool:
    return (Path(model_dir) / CONFIG_FILE).is_file()


def load(model_dir: str | os.PathLike) -> tuple[Pipeline, list[str]]:
    """(fitted pipeline, label names) rebuilt from a directory ``save`` wrote; a damaged one is a
    PipelineError naming the file. Only numeric and string arrays are read (no pickle)."""
    model_dir = Path(model_dir)
    config_path = model_dir / CONFIG_FILE
    again = "run `dvc repro train_tfidf` again"
    config = read_json_object(config_path, again)
    label_names = config.get("label_names")
    if not (isinstance(label_names, list) and len(label_names) >= 2 and all(isinstance(n, str) for n in label_names)):
        raise PipelineError(f"{config_path}: label_names = {label_names!r}: expected a list of names; {again}")
    cfg = config.get("params")
    if not (isinstance(cfg, dict) and set(cfg) == set(PARAM_KEYS)):
        raise PipelineError(f"{config_path}: params: expected the keys {', '.join(PARAM_KEYS)}; {again}")
    model_path = file_in(model_dir, config.get("model"), f"{config_path}: model")
    try:
        pipeline = build_pipeline(cfg)
        vectorizers, classifier = _parts(pipeline)
        check_array_headers(model_path, [name for name, _ in vectorizers], len(label_names))
        with np.load(model_path, allow_pickle=False) as arrays:
            for name, vectorizer in vectorizers:
                terms = arrays[f"{name}_terms"]
                vectorizer.vocabulary_ = {str(term): i for i, term in enumerate(terms.tolist())}
                vectorizer.idf_ = arrays[f"{name}_idf"].astype(np.float64)
            classifier.coef_ = arrays["coef"].astype(np.float64)
            classifier.intercept_ = arrays["intercept"].astype(np.float64)
        classifier.classes_ = np.arange(len(label_names))
        n_features = sum(len(v.vocabulary_) for _, v in vectorizers)
        if classifier.coef_.shape != (len(label_names), n_features) or classifier.intercept_.shape != (
            len(label_names),
        ):
            raise ValueError(f"weights of shape {classifier.coef_.shape} for {n_features} features")
        classifier.n_features_in_ = n_features
        for name, values in [("coef", classifier.coef_), ("intercept", classifier.intercept_)] + [
            (f"{n}_idf", v.idf_) for n, v in vectorizers
        ]:
            if not np.isfinite(values).all():
                raise ValueError(f"{name} holds NaN or infinite values")
    except FileNotFoundError:
        raise PipelineError(f"{model_path}: file not found; {again}") from None
    except (
        ValueError,
        KeyError,
        TypeError,
        OSError,
        ParamsError,
        zipfile.BadZipFile,
    ) as exc:  # damaged, pickled, inconsistent
        detail = " ".join(str(exc).split())[:200]
        raise PipelineError(
            f"{model_path}: not a train_tfidf model ({exc.__class__.__name__}: {detail}); {again}"
        ) from None
    return pipeline, label_names


def check_array_headers(model_path: Path, vectorizers: Sequence[str], n_labels: int) -> None:
    """Every array ``load`` reads has the dtype and shape it needs, read from the .npy headers in the
    archive (nothing inflated), and all together declare at most MAX_MODEL_ARRAY_BYTES; else a
    ValueError saying which."""
    with zipfile.ZipFile(model_path) as archive:
        infos = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        declared = sum(info.file_size for info in infos.values())
        if declared > MAX_MODEL_ARRAY_BYTES:
            raise ValueError(f"its arrays declare {declared:,} bytes, more than {MAX_MODEL_ARRAY_BYTES:,}")
        headers = {}
        for name in ["coef", "intercept", *(f"{v}_{part}" for v in vectorizers for part in ("terms", "idf"))]:
            if name not in infos:
                raise KeyError(f"no array {name!r}")
            with archive.open(infos[name]) as member:
                version = np.lib.format.read_magic(member)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(member)
            headers[name] = (shape, dtype)
    n_features = 0
    for vectorizer in vectorizers:
        (terms_shape, terms_dtype), (idf_shape, idf_dtype) = (
            headers[f"{vectorizer}_terms"],
            headers[f"{vectorizer}_idf"],
        )
        if terms_dtype.kind != "U" or len(terms_shape) != 1:
            raise ValueError(f"{vectorizer}_terms: {terms_dtype} of shape {terms_shape}, expected a list of strings")
        if idf_dtype.kind != "f" or idf_shape != terms_shape:
            raise ValueError(
                f"{vectorizer}_idf: {idf_dtype} of shape {idf_shape}, expected floats of shape {terms_shape}"
            )
        n_features += terms_shape[0]
    for name, shape in (("coef", (n_labels, n_features)), ("intercept", (n_labels,))):
        if headers[name][1].kind != "f" or headers[name][0] != shape:
            raise ValueError(
                f"{name}: {headers[name][1]} of shape {headers[name][0]}, expected floats of shape {shape}"
            )

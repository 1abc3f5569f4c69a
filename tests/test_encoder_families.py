"""Every encoder family the pipeline's users fine-tune, through every path, on tiny offline stand-ins.

Each family's tiny random model (tests/encoder_families.py: the family's config, random weights, a
tokenizer of its kind) goes through what a user runs with ``-S model_name=<it>``: the train_bert stage
with the shipped recipe's options (top layer re-initialised, layer-wise decay, class weights), the
export loaded back by evaluate's scorer, ``src.predict`` and ``transformers.pipeline``, a tune trial, and
``scripts.train``. The export must reproduce the run's validation figures and probabilities.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from src.core.errors import PipelineError
from src.core.params import load_params
from src.data.preprocess import Split, normalize_tweet, write_split
from tests.encoder_families import FAMILIES, write_tiny_encoder
from tests.fixtures import REPO, tiny_splits, write_tweeteval


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """family -> its tiny model directory, built once for the module."""
    root = tmp_path_factory.mktemp("encoders")
    return {family: write_tiny_encoder(root / family, family) for family in FAMILIES}


def _write_project(directory: Path, model_dir: Path) -> dict:
    """data/processed and params.yaml of a tiny train_bert run with the shipped recipe's options."""
    for split, rows in tiny_splits().items():
        write_split(
            directory / f"data/processed/{split}.jsonl",
            Split([normalize_tweet(t) for t, _ in rows], [y for _, y in rows]),
        )
    params = load_params(REPO / "params.yaml")
    params.update(model_name=str(model_dir), num_epochs=3, learning_rate=3e-3, batch_size=8, max_length=32, seed=1)
    params["bert"].update(device="cpu", eval_batch_size=16, mixed_precision=False, reinit_layers=1, layer_decay=0.9)
    params["tune"].update(n_trials=1, train_fraction=1.0)
    (directory / "params.yaml").write_text(json.dumps(params), encoding="utf-8")
    return params


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_family_trains_and_its_export_scores_as_the_run_did_everywhere(family, encoders, tmp_path, monkeypatch):
    from transformers import pipeline

    from src.evaluation import score_split
    from src.models.loading import load_model
    from src.predict import classify
    from stages import train_bert

    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    params = _write_project(tmp_path, encoders[family])
    train_bert.main(load_params("params.yaml"))

    history = json.loads(Path("models/bert/training_history.json").read_text())
    assert history["train_loss"][-1] < history["train_loss"][0], history["train_loss"]  # it learns
    summary = json.loads(Path("metrics/bert/train.json").read_text())

    # the export is the model that trained: evaluate's scorer gives the best epoch's validation figures
    scores = score_split("models/bert", "data/processed/val.jsonl", device="cpu")
    assert scores["macro_recall"] == pytest.approx(summary["val"]["macro_recall"], abs=1e-6)
    assert scores["accuracy"] == pytest.approx(summary["val"]["accuracy"], abs=1e-6)

    # src.predict and transformers' own pipeline() on the export give the same probabilities
    texts = [normalize_tweet(t) for t, _ in tiny_splits()["val"]]
    ours = [row["probabilities"] for row in classify(load_model("models/bert", "cpu"), texts, device="cpu")]
    theirs = pipeline("text-classification", model="models/bert/model", top_k=None, device="cpu")(texts)
    for mine, hub in zip(ours, theirs):
        assert {d["label"]: d["score"] for d in hub} == pytest.approx(mine, abs=1e-4)

    # a tune trial and scripts.train run the same recipe on this family
    from stages import tune

    tune.main(load_params("params.yaml"))
    assert json.loads(Path("metrics/tune.json").read_text())["best_hyperparameters"]

    from scripts.train import main as scripts_train

    write_tweeteval(tmp_path / "raw", tiny_splits())
    Path("model_config.json").write_text(
        json.dumps({"model_name": params["model_name"], "num_epochs": 1, "batch_size": 8, "max_length": 32})
    )
    scripts_train(["--data_dir", "raw", "--output_dir", "cli", "--config", "model_config.json"])
    assert (tmp_path / "cli/model/tokenizer_config.json").is_file()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_recipe_options_reach_every_parameter_of_every_family(family, encoders):
    """Re-init resets every linear layer of the top block; layer decay puts every parameter in a group,
    the embeddings lowest and the head highest; the first-token shortcut, where a family takes it,
    leaves the logits as they were."""
    from src.models import training
    from src.models.bert_model import BertSentimentClassifier
    from src.models.encoder import encoder_layers, layer_depths, reinit_top_layers

    torch.manual_seed(0)
    model = BertSentimentClassifier(str(encoders[family]), 3, 0.1)
    layers = encoder_layers(model.model)
    assert len(layers) == 2
    before = {n: p.clone() for n, p in layers[-1].named_parameters()}
    lower = {n: p.clone() for n, p in layers[0].named_parameters()}
    reinit_top_layers(model, 1)
    for name, module in layers[-1].named_modules():
        if isinstance(module, torch.nn.Linear):
            assert not torch.equal(module.weight, before[f"{name}.weight"]), name
    assert all(torch.equal(p, lower[n]) for n, p in layers[0].named_parameters())  # only the top block

    optimizer = training.build_optimizer(model, 1e-3, 0.01, layer_decay=0.5)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    depth = layer_depths(model)
    names = [n for n, _ in model.named_parameters()]
    assert min(depth(n) for n in names if "embed" in n) == 0
    prefix = f"model.{model.model.base_model_prefix}."
    head = [n for n in names if not n.startswith(prefix)]  # the family's own head, outside the base model
    assert head and all(depth(n) == 3 for n in head)
    assert {depth(n) for n in names} == {0, 1, 2, 3}

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from src.models.bert_model import classifier_config

    model.eval()
    config = classifier_config(str(encoders[family]), 3, 0.1, ["negative", "neutral", "positive"])
    plain = AutoModelForSequenceClassification.from_config(config).eval()  # no first-token shortcut
    plain.load_state_dict(model.model.state_dict())

    inputs = AutoTokenizer.from_pretrained(encoders[family])(
        ["what a great day", "i hate this so much today"], return_tensors="pt", padding=True
    )
    inputs.pop("token_type_ids", None)
    with torch.no_grad():
        reference = plain(**inputs).logits
        torch.testing.assert_close(model(inputs["input_ids"], inputs["attention_mask"]), reference)


def test_bertweet_export_keeps_its_bpe_merges(encoders, tmp_path):
    """transformers 5 writes BERTweet's merges without the count its own reader drops: the export
    rewrites them, so the saved tokenizer splits words as the training one did."""
    from transformers import AutoTokenizer

    from src.models.bert_model import BertSentimentClassifier, load_tokenizer

    tokenizer = load_tokenizer(str(encoders["bertweet"]))
    assert tokenizer.normalization  # BERTweet's tweet normalisation travels with it
    model = BertSentimentClassifier(str(encoders["bertweet"]), 3, 0.1)
    model.save_pretrained(tmp_path / "model", tokenizer)
    loaded = AutoTokenizer.from_pretrained(tmp_path / "model")
    assert loaded.tokenize("worst day ever") == tokenizer.tokenize("worst day ever") == ["worst", "day", "ever"]
    assert loaded.normalization


def test_an_export_without_its_tokenizer_gets_model_names_and_a_wrong_one_is_refused(tiny_bert, tmp_path):
    """The guide's train_model(...) takes no tokenizer: the export carries model_name's. A directory whose
    tokenizer is missing, or does not fit the model's vocabulary, is one error naming it."""
    from src.models.bert_model import BertSentimentClassifier
    from src.models.loading import load_model

    model = BertSentimentClassifier(tiny_bert, 3, 0.1)
    model.save_pretrained(tmp_path / "run/model")  # no tokenizer given
    assert (tmp_path / "run/model/tokenizer_config.json").is_file()
    load_model(tmp_path / "run", "cpu")

    (tmp_path / "run/model/tokenizer_config.json").unlink()
    with pytest.raises(PipelineError, match=r"run/model: no tokenizer"):
        load_model(tmp_path / "run", "cpu")

    # another model's tokenizer (a larger vocabulary) in the export
    other = write_tiny_encoder(tmp_path / "roberta", "roberta")
    from transformers import AutoTokenizer

    for name in ("tokenizer.json", "vocab.txt", "special_tokens_map.json"):
        (tmp_path / "run/model" / name).unlink(missing_ok=True)
    AutoTokenizer.from_pretrained(other).save_pretrained(tmp_path / "run/model")
    with pytest.raises(PipelineError, match=r"does not match the model's vocabulary"):
        load_model(tmp_path / "run", "cpu")


@pytest.mark.parametrize(
    ("family", "setting", "expected"),
    [
        # the tiny BERTweet embeds 64 positions as the real one embeds 128 (130 minus the padding offset)
        ("bertweet", {"max_length": 65}, r"max_length = 65: .* \(a roberta model\) embeds at most 64 positions"),
        ("distilbert", {"bert": {"reinit_layers": 3}}, r"bert.reinit_layers = 3: .* \(a distilbert model\) has 2"),
    ],
)
def test_a_setting_the_family_cannot_apply_is_one_error_before_any_work(family, setting, expected, encoders, tmp_path):
    import os
    import re
    import subprocess
    import sys

    params = _write_project(tmp_path, encoders[family])
    for key, value in setting.items():
        params[key] = {**params[key], **value} if isinstance(value, dict) else value
    (tmp_path / "params.yaml").write_text(json.dumps(params), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYTHONSAFEPATH", None)
    result = subprocess.run(
        [sys.executable, "-m", "stages.train_bert"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(expected, lines[0]), lines[0]
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()

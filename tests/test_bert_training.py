"""BERT fine-tuning on a tiny BERT the test builds, loaded through the production from_pretrained path."""

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src.core.errors import PipelineError
from src.data.preprocess import Split, normalize_tweet, write_split
from src.evaluation import score_split
from src.models import training
from src.models.bert_model import BertSentimentClassifier
from src.models.encoder import layer_depths, reinit_top_layers
from tests.fixtures import REPO, bert_loaders, tiny_splits


def test_seed_signatures_hold():
    names = lambda f: list(inspect.signature(f).parameters)[: len(expected[f.__name__])]  # noqa: E731
    expected = {
        "train_epoch": ["model", "data_loader", "optimizer", "scheduler", "device"],
        "evaluate": ["model", "data_loader", "device"],
        "train_model": [
            "train_loader",
            "val_loader",
            "model_save_dir",
            "num_epochs",
            "learning_rate",
            "weight_decay",
            "warmup_ratio",
            "device",
            "model_name",
            "num_classes",
        ],
        "hyperparameter_tuning": [
            "train_loader",
            "val_loader",
            "test_loader",
            "output_dir",
            "hyperparameters",
            "device",
        ],
    }
    for name in expected:
        assert names(getattr(training, name)) == expected[name]


def test_batches_are_padded_to_their_longest_tweet_only(tiny_bert):
    _, train_loader, _ = bert_loaders(tiny_bert)
    for batch in train_loader:
        lengths = batch["attention_mask"].sum(dim=1)
        assert batch["input_ids"].shape[1] == int(lengths.max()) < 32


def test_no_weight_decay_on_bias_and_layernorm(tiny_bert):
    model = BertSentimentClassifier(tiny_bert, 3, 0.1)
    optimizer = training.build_optimizer(model, 1e-3, 0.01)
    decayed = {id(p) for p in optimizer.param_groups[0]["params"]}
    for name, parameter in model.named_parameters():
        assert (id(parameter) in decayed) == ("bias" not in name and "LayerNorm" not in name), name


def test_layer_decay_gives_each_layer_its_rate_and_one_keeps_two_groups(tiny_bert):
    model = BertSentimentClassifier(tiny_bert, 3, 0.1)
    plain = training.build_optimizer(model, 1e-3, 0.01)
    assert [g["lr"] for g in plain.param_groups] == [1e-3, 1e-3]  # layer_decay 1: the two groups as before
    optimizer = training.build_optimizer(model, 1e-3, 0.01, layer_decay=0.5)
    depth_of = layer_depths(model)
    n_layers = len(model.model.base_model.encoder.layer)
    rate = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    for name, parameter in model.named_parameters():
        depth = depth_of(name)
        expected = 0 if "embeddings" in name else (n_layers + 1 if ".layer." not in name else depth)
        assert depth == expected, name
        assert rate[id(parameter)] == pytest.approx(1e-3 * 0.5 ** (n_layers + 1 - depth)), name
    assert optimizer.param_groups[0]["lr"] == 1e-3  # the head's rate is the one logged
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_reinit_layers_reinitialises_the_top_layers_only(tiny_bert):
    torch.manual_seed(0)
    pretrained = BertSentimentClassifier(tiny_bert, 3, 0.1)
    model = BertSentimentClassifier(tiny_bert, 3, 0.1)
    model.load_state_dict(pretrained.state_dict())
    reinit_top_layers(model, 1)
    top = len(model.model.base_model.encoder.layer) - 1
    for (name, before), after in zip(pretrained.state_dict().items(), model.state_dict().values()):
        if f".layer.{top}." in name and name.endswith("query.weight"):
            assert not torch.equal(before, after), name
        elif f".layer.{top}." not in name:
            assert torch.equal(before, after), name
    with pytest.raises(PipelineError, match="bert.reinit_layers = 99"):
        reinit_top_layers(model, 99)


def test_train_epoch_and_evaluate_follow_the_seed(tiny_bert):
    _, train_loader, val_loader = bert_loaders(tiny_bert)
    torch.manual_seed(0)
    model = BertSentimentClassifier(tiny_bert, 3, 0.1)
    optimizer = training.build_optimizer(model, 1e-3, 0.0)
    scheduler = training.build_scheduler(optimizer, 2 * len(train_loader), 0.1)
    losses = [training.train_epoch(model, train_loader, optimizer, scheduler, "cpu") for _ in range(2)]
    assert all(isinstance(x, float) for x in losses)
    loss, accuracy, predictions = training.evaluate(model, val_loader, "cpu")
    assert loss > 0 and 0 <= accuracy <= 1 and len(predictions) == len(val_loader.dataset)


def _learn_tiny_tweets(tiny_bert, model_dir, num_epochs, warmup_ratio=0.1, **options):
    """(tokenizer, model, history) of train_model on the toy tweets at a rate a tiny BERT learns them with."""
    tokenizer, train_loader, val_loader = bert_loaders(tiny_bert)
    model, history = training.train_model(
        train_loader,
        val_loader,
        model_dir,
        num_epochs=num_epochs,
        learning_rate=3e-3,
        weight_decay=0.01,
        warmup_ratio=warmup_ratio,
        device="cpu",
        model_name=tiny_bert,
        num_classes=3,
        tokenizer=tokenizer,
        seed=1,
        progress=False,
        **options,
    )
    return tokenizer, model, history


def test_train_model_learns_writes_every_file_and_keeps_the_best_epoch(tiny_bert, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer, model, history = _learn_tiny_tweets(tiny_bert, tmp_path, num_epochs=10)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["train_loss"][-1] < 0.8 * history["train_loss"][0]
    assert max(history["val_accuracy"]) >= 0.6  # well above chance (1/3) on held-out toy tweets
    for key in ("train_loss", "val_loss", "val_accuracy", "val_macro_recall", "learning_rate"):
        assert len(history[key]) == 10
    assert json.loads((tmp_path / "training_history.json").read_text()) == history
    assert {p.name for p in tmp_path.glob("checkpoint_epoch_*.pt")} == {
        f"checkpoint_epoch_{i}.pt" for i in range(1, 11)
    }

    best_epoch = max(range(10), key=lambda i: (history["val_macro_recall"][i], -i)) + 1
    best = torch.load(tmp_path / "best_model.pt", weights_only=True)
    assert best["epoch"] == history["best_epoch"] == best_epoch
    assert history["learning_rate"][-1] < max(history["learning_rate"])  # warmup then decay

    # the exported directory loads with plain transformers and gives the returned model's predictions
    exported = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").eval()
    assert exported.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    exported_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    inputs = exported_tokenizer(["what a great day", "i hate this"], return_tensors="pt", padding=True)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(exported(**inputs).logits, model(inputs["input_ids"], inputs["attention_mask"]))

    # src.evaluation scores the export on its own and reproduces the best epoch's validation figures
    val_rows = tiny_splits()["val"]
    write_split(tmp_path / "val.jsonl", Split([normalize_tweet(t) for t, _ in val_rows], [y for _, y in val_rows]))
    scores = score_split(tmp_path, tmp_path / "val.jsonl", device="cpu")
    assert scores["accuracy"] == pytest.approx(history["val_accuracy"][best_epoch - 1])
    assert scores["macro_recall"] == pytest.approx(history["val_macro_recall"][best_epoch - 1])


class _ForbiddenLoader:
    def __iter__(self):
        raise AssertionError("tuning must never read the test set")


def test_tuning_scores_on_validation_only_and_writes_its_files(tiny_bert, tmp_path):
    _, train_loader, val_loader = bert_loaders(tiny_bert)
    space = {"learning_rate": [1e-5, 3e-3], "batch_size": [8, 16]}
    best_model, best = training.hyperparameter_tuning(
        train_loader,
        val_loader,
        _ForbiddenLoader(),
        tmp_path,
        space,
        "cpu",
        method="random",
        n_trials=3,
        base_hyperparameters={"num_epochs": 2},
        model_name=tiny_bert,
        progress=False,
    )
    results = json.loads((tmp_path / "tuning_results.json").read_text())
    assert len(results["trials"]) == 3 and sorted(p.name for p in tmp_path.glob("config_*")) == [
        "config_0",
        "config_1",
        "config_2",
    ]
    scores = [t["val_macro_recall"] for t in results["trials"]]
    assert results["trials"][results["best_trial"]]["val_macro_recall"] == max(scores)
    assert best == results["best_hyperparameters"] and best["num_epochs"] == 2
    assert isinstance(best_model, BertSentimentClassifier)


def test_unloadable_model_name_says_how_to_fix(tmp_path):
    # a process of its own: huggingface_hub reads HF_HUB_OFFLINE and HF_HOME once, at import (set here
    # in-process it would try the network first, 46 s)
    code = "from src.models.bert_model import load_tokenizer\nload_tokenizer('no-such/model')"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)},
    )
    assert re.search(r"PipelineError: model_name = 'no-such/model' cannot be loaded.*HF_HOME", result.stderr)


def test_mixed_precision_picks_bf16_where_native_fp16_with_scaling_on_older_gpus(monkeypatch):
    from src.core import runtime

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert runtime.autocast_dtype(cpu, False) is None
    monkeypatch.setattr(runtime, "cpu_has_amx_bf16", lambda: False)
    assert runtime.autocast_dtype(cpu, True) is None  # AVX512-BF16 alone or emulated: slower than fp32
    monkeypatch.setattr(runtime, "cpu_has_amx_bf16", lambda: True)
    assert runtime.autocast_dtype(cpu, True) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert runtime.autocast_dtype(cuda, True) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert runtime.autocast_dtype(cuda, True) == torch.bfloat16


def test_validation_scores_shortest_first_and_returns_predictions_in_dataset_order(tiny_bert):
    _, _, val_loader = bert_loaders(tiny_bert)
    dataset = val_loader.dataset
    lengths = dataset.lengths()
    yielded = [index for batch in val_loader.batch_sampler for index in batch]
    assert sorted(yielded) == list(range(len(dataset))) and len(set(lengths)) > 1
    assert [lengths[i] for i in yielded] == sorted(lengths)  # each batch pads to little

    class LengthClass(torch.nn.Module):  # predicts (tweet length mod 3): a known answer per tweet
        def forward(self, input_ids, attention_mask):
            return torch.nn.functional.one_hot(attention_mask.sum(dim=1) % 3, 3).float()

    _, _, predictions = training.evaluate(LengthClass(), val_loader, "cpu")
    assert predictions == [length % 3 for length in lengths] and len(set(predictions)) > 1


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_last_layer_computing_the_first_token_only_gives_the_same_logits_and_gradients(tiny_bert, attention):
    from transformers import AutoModelForSequenceClassification

    from src.models.first_token import compute_first_token_only_in_last_layer

    def load():  # no dropout, so that train mode is deterministic and gradients compare
        return AutoModelForSequenceClassification.from_pretrained(
            tiny_bert,
            num_labels=3,
            attn_implementation=attention,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )

    torch.manual_seed(0)
    full, fast = load(), load()
    fast.load_state_dict(full.state_dict())
    assert compute_first_token_only_in_last_layer(fast)
    assert fast.state_dict().keys() == full.state_dict().keys()  # the export stays a standard one
    input_ids = torch.randint(5, full.config.vocab_size, (4, 12))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 7:], attention_mask[2, 3:] = 0, 0  # padded rows
    labels = torch.tensor([0, 1, 2, 1])
    for model in (full, fast):
        model.train()
        model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss.backward()
    with torch.no_grad():
        torch.testing.assert_close(
            fast(input_ids=input_ids, attention_mask=attention_mask).logits,
            full(input_ids=input_ids, attention_mask=attention_mask).logits,
        )
    for (name, a), (_, b) in zip(full.named_parameters(), fast.named_parameters()):
        if a.grad is None:
            assert b.grad is None, name
        else:
            torch.testing.assert_close(b.grad, a.grad, atol=1e-6, rtol=1e-4, msg=name)
    assert not compute_first_token_only_in_last_layer(torch.nn.Linear(2, 2))  # not an encoder it knows


def test_training_on_a_cpu_uses_eager_attention_and_rand_dropout_and_exports_a_plain_model(tiny_bert, tmp_path):
    tokenizer, train_loader, val_loader = bert_loaders(tiny_bert)
    model, _ = training.train_model(
        train_loader,
        val_loader,
        tmp_path,
        num_epochs=1,
        device="cpu",
        model_name=tiny_bert,
        tokenizer=tokenizer,
        progress=False,
    )
    from src.models.dropout import ATTENTION, RandDropout

    # faster on a CPU: eager attention, dropout masks from torch.rand; the export is a plain one
    assert model.model.config._attn_implementation == ATTENTION
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and all(type(m) is RandDropout for m in dropouts)
    assert "attn_implementation" not in json.loads((tmp_path / "model/config.json").read_text())


def test_rand_dropout_keeps_1_minus_p_scaled_and_follows_the_seed():
    from src.models.dropout import RandDropout, eager_attention_rand_dropout

    x = torch.ones(200_000)
    dropout = RandDropout(0.1)
    torch.manual_seed(0)
    y = dropout(x)
    assert y.unique().tolist() == [0.0, pytest.approx(1 / 0.9)]
    assert (y > 0).float().mean().item() == pytest.approx(0.9, abs=0.005)
    torch.manual_seed(0)
    assert torch.equal(dropout(x), y)  # torch's generator: seeded runs repeat, resume stays exact
    assert torch.equal(dropout.eval()(x), x)
    # with dropout off, the attention is transformers' eager attention
    from transformers.models.bert.modeling_bert import eager_attention_forward

    module = torch.nn.Module()
    q, k, v = (torch.randn(2, 4, 5, 8) for _ in range(3))
    mask = torch.zeros(2, 1, 5, 5)
    mask[1, ..., 3:] = torch.finfo(torch.float32).min
    for got, want in zip(
        eager_attention_rand_dropout(module, q, k, v, mask, dropout=0.0),
        eager_attention_forward(module, q, k, v, mask, dropout=0.0),
    ):
        torch.testing.assert_close(got, want)


def _engine_call_of_train_model(tiny_bert, tmp_path, monkeypatch, **options):
    """(args, kwargs) train_model hands the engine, for one epoch on the tiny BERT with ``options``."""
    from src.recipes import bert_fine_tune

    calls, engine = [], bert_fine_tune.Trainer

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return engine(*args, **kwargs)

    monkeypatch.setattr(bert_fine_tune, "Trainer", spy)
    tokenizer, train_loader, val_loader = bert_loaders(tiny_bert)
    training.train_model(
        train_loader,
        val_loader,
        tmp_path,
        num_epochs=1,
        device="cpu",
        model_name=tiny_bert,
        tokenizer=tokenizer,
        progress=False,
        **options,
    )
    assert len(calls) == 1  # one engine per run
    return calls[0]


def _loss_of_train_model(tiny_bert, tmp_path, monkeypatch, **loss_options):
    """The criterion train_model hands the engine, for one epoch on the tiny BERT with ``loss_options``."""
    args, _ = _engine_call_of_train_model(tiny_bert, tmp_path, monkeypatch, **loss_options)
    return args[4]


def test_balanced_class_weights_reach_the_loss(tiny_bert, tmp_path, monkeypatch):
    from src.training.class_weights import class_weights

    weights = class_weights([0, 0, 0, 1, 2, 2], "balanced", 3, "bert.class_weights")
    assert weights.tolist() == pytest.approx([6 / 9, 2.0, 1.0])  # n / (k * count): each class weighs the same
    assert class_weights([0, 1], None, 3, "bert.class_weights") is None
    criterion = _loss_of_train_model(tiny_bert, tmp_path, monkeypatch, class_weights=weights)
    assert torch.equal(criterion.weight, weights)


def test_sqrt_class_weights_and_label_smoothing_reach_the_loss(tiny_bert, tmp_path, monkeypatch):
    from src.training.class_weights import class_weights

    weights = class_weights([0, 0, 0, 1, 2, 2], "sqrt", 3, "bert.class_weights")
    # the square root of the balanced weights: between unweighted (1, 1, 1) and balanced
    assert weights.tolist() == pytest.approx([(6 / 9) ** 0.5, 2.0**0.5, 1.0])
    criterion = _loss_of_train_model(tiny_bert, tmp_path, monkeypatch, class_weights=weights, label_smoothing=0.1)
    assert torch.equal(criterion.weight, weights)
    assert criterion.label_smoothing == 0.1


def test_batches_match_hand_written_padding_to_the_longest_tweet(tiny_bert):
    """The loaders pad with transformers' DataCollatorWithPadding: the same tensors as padding each batch
    by hand to its longest tweet (pad id on the right, mask 1 on real tokens, labels as int64)."""
    tokenizer, train_loader, val_loader = bert_loaders(tiny_bert)
    for loader in (train_loader, val_loader):
        for indices, batch in zip(loader.batch_sampler, loader):
            sequences = [loader.dataset.input_ids[i] for i in indices]
            width = max(len(s) for s in sequences)
            expected_ids = torch.full((len(sequences), width), tokenizer.pad_token_id, dtype=torch.long)
            expected_mask = torch.zeros((len(sequences), width), dtype=torch.long)
            for row, sequence in enumerate(sequences):
                expected_ids[row, : len(sequence)] = torch.as_tensor(sequence)
                expected_mask[row, : len(sequence)] = 1
            expected_labels = torch.as_tensor([loader.dataset.labels[i] for i in indices], dtype=torch.long)
            assert set(batch.keys()) == {"input_ids", "attention_mask", "labels"}
            for key, expected in (
                ("input_ids", expected_ids),
                ("attention_mask", expected_mask),
                ("labels", expected_labels),
            ):
                assert batch[key].dtype == expected.dtype and torch.equal(batch[key], expected), key


def test_train_bert_seed_members_write_beside_train_bert_and_refuse_a_bad_seed(capsys):
    from stages import train_bert

    assert train_bert.parse_member_seed([]) is None and train_bert.parse_member_seed(["-h"]) is None
    assert train_bert.parse_member_seed(["--seed", "43"]) == 43
    bert = (Path("models/bert"), Path("metrics/bert/train.json"), Path("dvclive/train_bert"))
    assert train_bert.outputs(None) == bert
    assert train_bert.outputs(43) == (
        Path("models/bert_seed43"),
        Path("metrics/bert_seed43/train.json"),
        Path("dvclive/train_bert_seed43"),
    )
    for argv, expected in (
        (["--seed", "-1"], "--seed: expected an integer from 0 to 4294967295, got -1"),
        (["--seed", "x"], "argument --seed: invalid int value: 'x'"),
        (["--sed", "4"], "unrecognized arguments: --sed 4"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            train_bert.parse_member_seed(argv)
        assert exit_info.value.code == 2 and expected in capsys.readouterr().err


def test_the_command_line_and_the_stages_give_train_model_the_same_run_settings():
    """scripts.train/tune (a JSON config) and train_bert/tune (params.yaml) map a BertConfig to train_model's
    keyword arguments through one function: every run setting reaches both, each a train_model parameter."""
    from src.recipes.bert_config import BertConfig
    from src.recipes.bert_files import train_options
    from src.recipes.bert_run import train_model_options

    config = BertConfig(label_names=("a", "b", "c"), label_smoothing=0.1, layer_decay=0.9, reinit_layers=1)
    from_file = train_options(config, None, ["a", "b", "c"], [0, 1, 2, 2], "data.csv")
    assert from_file.pop("num_classes") == 3 and from_file.pop("label_names") == ["a", "b", "c"]
    assert from_file == train_model_options(config, None, None)
    assert {"label_smoothing": 0.1, "layer_decay": 0.9, "reinit_layers": 1}.items() <= from_file.items()
    assert set(from_file) <= set(inspect.signature(training.train_model).parameters)


def _train_model_option_from_params(key: str, value):
    """train_model's option ``key`` when params.yaml's ``bert.<key>`` is ``value`` (params -> BertConfig -> run)."""
    from src.core.params import load_params
    from src.recipes.bert_config import BertConfig
    from src.recipes.bert_run import train_model_options

    params = load_params(REPO / "params.yaml")
    params["bert"][key] = value
    return train_model_options(BertConfig.from_params(params), None, None)[key]


def test_label_smoothing_reaches_the_engine_from_params(tiny_bert, tmp_path, monkeypatch):
    """bert.label_smoothing in params.yaml -> BertConfig -> train_model's options -> the Trainer's loss."""
    assert _train_model_option_from_params("label_smoothing", 0.2) == 0.2
    args, _ = _engine_call_of_train_model(tiny_bert, tmp_path, monkeypatch, label_smoothing=0.2)
    assert args[4].label_smoothing == 0.2

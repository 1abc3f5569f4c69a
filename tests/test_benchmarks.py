"""The benchmark scripts run end to end on tiny data and print the JSON their README tables quote."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from src.core.runtime import cpu_has_amx_bf16
from src.data.preprocess import Split, normalize_tweet, write_split
from tests.fixtures import LABEL_NAMES, tiny_splits, write_tiny_bert

ROOT = Path(__file__).resolve().parents[1]


def _tiny_data(tmp_path):
    """The tiny splits as preprocess writes them, in tmp_path/data."""
    for name, rows in tiny_splits().items():
        write_split(tmp_path / f"data/{name}.jsonl", Split([normalize_tweet(t) for t, _ in rows], [y for _, y in rows]))
    return tmp_path / "data"


def _benchmark_report(module: str, *args: str, timeout: int = 900) -> dict:
    """Run ``python -m benchmarks.<module> args`` from the repository root; the JSON it prints."""
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    return json.loads(done.stdout)


def test_bert_vs_hf_trainer_reports_each_seed_and_the_means(tmp_path):
    model, data = write_tiny_bert(tmp_path / "tiny-bert"), _tiny_data(tmp_path)
    args = ["--model", str(model), "--data-dir", str(data), "--train-samples", "0", "--batch-size", "8"]
    report = _benchmark_report("bert_vs_hf_trainer", *args, "--seeds", "1", "2", "--test", timeout=600)
    assert report["train_samples"] == len(tiny_splits()["train"]) and report["seeds"] == [1, 2]
    ours = "bf16" if cpu_has_amx_bf16() else "fp32"  # train_bert's own choice on this CPU
    assert report["precision"] == {"ours": ours, "hf_trainer": "fp32"}
    for side in ("ours", "hf_trainer"):
        runs = report["runs"][side]
        assert [run["seed"] for run in runs] == [1, 2]
        for run in runs:
            assert run["wall_s"] > 0 and run["samples_per_s"] > 0
            assert 0 <= run["val_macro_recall"] <= 1 and 0 <= run["test_macro_recall"] <= 1
        assert report["mean"][side]["wall_s"] == round(sum(r["wall_s"] for r in runs) / 2, 4)
    assert report["speedup"] == round(report["mean"]["hf_trainer"]["wall_s"] / report["mean"]["ours"]["wall_s"], 2)


def test_dvclive_overhead_reports_both_ways():
    report = _benchmark_report("dvclive_overhead", "--steps", "40", "--every", "10", timeout=300)
    assert report["steps"] == 40
    for way in ("next_step_per_step", "dvclive_log"):
        assert report[way]["ms_per_step"] > 0 and report[way]["ms_per_step_last"] > 0


def test_bert_recipes_screen_reports_mean_and_spread_per_candidate(tmp_path):
    model, data = write_tiny_bert(tmp_path / "tiny-bert"), _tiny_data(tmp_path)
    out = tmp_path / "screen.json"
    args = ["--model", str(model), "--data-dir", str(data), "--train-samples", "0", "--holdout-samples", "12"]
    args += ["--seeds", "1", "2", "--candidates", "unweighted_lr5e-5", "sqrt_lr5e-5", "--out", str(out)]
    report = _benchmark_report("bert_recipes", *args)
    assert json.loads(out.read_text()) == report
    assert set(report["candidates"]) == {"unweighted_lr5e-5", "sqrt_lr5e-5"}
    for candidate in report["candidates"].values():
        runs = candidate["runs"]
        assert [run["seed"] for run in runs] == [1, 2]
        values = [run["val_macro_recall"] for run in runs]
        assert candidate["val_macro_recall"]["mean"] == round(sum(values) / 2, 4)
        assert candidate["selection_score"] == round(
            sum((r["val_macro_recall"] + r["holdout_macro_recall"]) / 2 for r in runs) / 2, 4
        )
    assert report["chosen"] == max(report["candidates"], key=lambda n: report["candidates"][n]["selection_score"])


def test_bert_recipes_test_mode_scores_the_recipe_and_the_stock_trainer(tmp_path):
    model, data = write_tiny_bert(tmp_path / "tiny-bert"), _tiny_data(tmp_path)
    report = _benchmark_report("bert_recipes", "--model", str(model), "--data-dir", str(data), "--test", "--seeds", "1")
    assert report["mode"] == "test" and set(report["candidates"]) == {"shipped", "stock_trainer"}
    for candidate in report["candidates"].values():
        assert 0 <= candidate["runs"][0]["test_macro_recall"] <= 1


def test_gpu_check_runs_every_stage_on_a_cpu_and_reports_json(tmp_path):
    """The GPU check's whole path on the tiny BERT and tiny splits, on a CPU: tests, both trainings, JSON."""
    model, data = write_tiny_bert(tmp_path / "tiny-bert"), _tiny_data(tmp_path)
    test = "tests/test_training_integration.py::TestTrainingIntegration::test_cuda_requested_without_cuda_is_an_error"
    args = ["--device", "cpu", "--model", str(model), "--data-dir", str(data), "--batch-size", "8"]
    args += ["--peak-tflops", "1.5", "--tests", test, "--out", str(tmp_path / "gpu_check.json")]
    report = _benchmark_report("gpu_check", *args, timeout=600)
    assert json.loads((tmp_path / "gpu_check.json").read_text()) == report
    assert report["device"] == "cpu" and report["peak_bf16_tflops"] == 1.5 and report["parameters"] > 0
    assert report["cuda_tests"] == {"exit_code": 0, "passed": 1, "failed": 0, "skipped": 0, "files": [test]}
    assert report["train_samples"] == len(tiny_splits()["train"])
    tokens = report["mean_tokens_per_sample"]
    for side in ("train_bert", "hf_trainer"):
        figures = report[side]
        assert figures["samples_per_s"] > 0 and 0 <= figures["test_macro_recall"] <= 1
        expected = figures["samples_per_s"] * 6 * report["parameters"] * tokens / 1.5e12
        assert figures["mfu"] == round(expected, 4)
    assert [s["stage"] for s in report["stages"]] == ["environment", "cuda_tests", "train"]
    assert report["total_s"] >= sum(s["wall_s"] for s in report["stages"]) - 0.5


@pytest.mark.slow
def test_bert_vs_hf_trainer_end_to_end_times_the_stage_through_dvc_and_the_stock_trainer_script(tmp_path):
    model, data = write_tiny_bert(tmp_path / "tiny-bert"), _tiny_data(tmp_path)
    args = ["--end-to-end", "--model", str(model), "--data-dir", str(data), "--train-samples", "0"]
    args += ["--batch-size", "8", "--seeds", "1", "--sides", "dvc_repro", "stock_trainer"]
    report = _benchmark_report("bert_vs_hf_trainer", *args, timeout=600)
    assert report["mode"] == "end to end" and report["rev"] == "work tree"
    for side in ("dvc_repro", "stock_trainer"):
        (run,) = report["runs"][side]
        assert run["seed"] == 1 and run["wall_s"] > 0 and 0 <= run["val_macro_recall"] <= 1
    stage, stock = report["mean"]["dvc_repro"], report["mean"]["stock_trainer"]
    assert report["dvc_repro"]["speedup"] == round(stock["wall_s"] / stage["wall_s"], 2)
    delta = round(stage["val_macro_recall"] - stock["val_macro_recall"], 4)
    assert report["dvc_repro"]["val_macro_recall_delta"] == delta


def test_tfidf_fit_reports_iterations_and_validation_figures_per_tolerance(tmp_path):
    report = _benchmark_report(
        "tfidf_fit", "--data-dir", str(_tiny_data(tmp_path)), "--tol", "1e-4", "1e-6", timeout=300
    )
    fits = report["fits"]
    assert [fit["tol"] for fit in fits] == [1e-4, 1e-6]
    assert all(fit["iterations"] >= 1 and 0 <= fit["val_macro_recall"] <= 1 for fit in fits)
    assert fits[1]["iterations"] >= fits[0]["iterations"]  # a tighter stop never stops sooner


def test_bert_tapt_adapts_the_encoder_on_train_less_the_holdout_and_keeps_the_pooler(tmp_path):
    from transformers import AutoModel

    model, data = write_tiny_bert(tmp_path / "tiny-bert"), _tiny_data(tmp_path)
    out_dir = tmp_path / "adapted"
    args = ["--model", str(model), "--data-dir", str(data), "--holdout-samples", "12", "--epochs", "2"]
    args += ["--head-steps", "3", "--batch-size", "8", "--lr", "1e-3", "--out-dir", str(out_dir)]
    report = _benchmark_report("bert_tapt", *args)
    train_rows = sum(1 for _ in (data / "train.jsonl").open())
    assert report["texts"] == train_rows - 12  # the screen's held-out slice is never read
    assert report["head_phase"]["steps"] == 3
    assert report["all_phase"]["steps"] == 2 * -(-report["texts"] // 8)

    before, after = AutoModel.from_pretrained(model), AutoModel.from_pretrained(out_dir)
    before_state, after_state = before.state_dict(), after.state_dict()
    assert set(before_state) == set(after_state)
    changed = {k for k in before_state if not before_state[k].equal(after_state[k])}
    assert any(k.startswith("encoder.") for k in changed)  # the encoder was adapted
    assert not any(k.startswith("pooler.") for k in changed)  # the pooler is the original's
    assert (out_dir / "tokenizer_config.json").exists()


def test_the_frozen_words_screen_candidate_fine_tunes_everything_but_the_word_embeddings(tmp_path, monkeypatch):
    from transformers import AutoModel

    from benchmarks.bert_recipes import freeze_word_embeddings
    from src.models import training
    from tests.test_bert_training import _learn_tiny_tweets

    monkeypatch.setattr(training, "reinit_top_layers", training.reinit_top_layers)  # undone after the test
    freeze_word_embeddings()
    tiny_bert = str(write_tiny_bert(tmp_path / "tiny-bert"))
    _, model, _ = _learn_tiny_tweets(tiny_bert, tmp_path / "run", num_epochs=2, reinit_layers=1)
    before = AutoModel.from_pretrained(tiny_bert).embeddings
    after = model.model.base_model.embeddings
    assert after.word_embeddings.weight.equal(before.word_embeddings.weight)  # frozen
    assert not after.position_embeddings.weight.equal(before.position_embeddings.weight)  # the rest trained


@pytest.mark.parametrize("warmup_ratio", [1.0, 0.25], ids=["head-alone-throughout", "everything-after-warm-up"])
def test_the_head_first_screen_candidate_freezes_the_pretrained_layers_through_the_warm_up(
    tmp_path, monkeypatch, warmup_ratio
):
    from transformers import AutoModel

    from benchmarks.bert_recipes import train_head_first
    from src.models import training
    from tests.test_bert_training import _learn_tiny_tweets

    for name in ("reinit_top_layers", "build_scheduler"):  # undone after the test
        monkeypatch.setattr(training, name, getattr(training, name))
    train_head_first()
    tiny_bert = str(write_tiny_bert(tmp_path / "tiny-bert"))
    _, model, _ = _learn_tiny_tweets(tiny_bert, tmp_path / "run", 2, warmup_ratio=warmup_ratio, reinit_layers=1)
    before, after = AutoModel.from_pretrained(tiny_bert), model.model.base_model
    lower_unchanged = [
        a.equal(b)
        for module_after, module_before in [
            (after.embeddings, before.embeddings),
            (after.encoder.layer[0], before.encoder.layer[0]),
        ]
        for a, b in zip(module_after.parameters(), module_before.parameters(), strict=True)
    ]
    # a warm-up over every step keeps the pretrained layers as they were; one over a quarter of the steps
    # ends inside the first epoch, so whichever epoch is exported has trained them
    assert all(lower_unchanged) if warmup_ratio == 1.0 else not any(lower_unchanged)
    top_after, top_before = after.encoder.layer[-1], before.encoder.layer[-1]
    assert not top_after.attention.self.query.weight.equal(top_before.attention.self.query.weight)  # trained


def test_validation_marks_scores_the_marked_and_the_unmarked_tweets_apart(tmp_path):
    """A JSON escape or a CSV field's opening quote marks a tweet; each model is scored on both parts."""
    from src.scoring.probabilities import write_probabilities

    texts = ["plain one", '"quoted, tweet"', "a\\u002cb", "plain two", 'also \\"x\\"', "plain three"]
    labels = [0, 1, 2, 0, 1, 2]
    write_split(tmp_path / "data/val.jsonl", Split(texts, labels))
    predicted = [0, 1, 2, 1, 1, 2]  # right on every marked tweet, wrong on one unmarked "negative"
    write_probabilities(
        tmp_path / "predictions/m/probs_val.csv",
        [[0.8 if c == p else 0.1 for c in range(3)] for p in predicted],
        LABEL_NAMES,
    )
    report = _benchmark_report(
        "validation_marks",
        "m",
        "m+m",
        "--data-dir",
        str(tmp_path / "data"),
        "--predictions",
        str(tmp_path / "predictions"),
    )
    assert report["tweets"] == {"all": 6, "json_escape": 2, "csv_quote": 1, "marked": 3, "unmarked": 3}
    for model in ("m", "m+m"):  # a group of one model twice is that model
        recall = report["val_macro_recall"][model]
        assert recall["marked"] == 1.0 and recall["json_escape"] == 1.0 and recall["csv_quote"] == 1.0
        assert recall["all"] == round((1 / 2 + 1 + 1) / 3, 4)  # negative 1 of 2, neutral 2 of 2, positive 2 of 2
        assert recall["unmarked"] == round((1 / 2 + 0 + 1) / 3, 4)  # "neutral" predicted there, never true: 0

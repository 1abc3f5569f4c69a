"""The benchmarks a user runs (the Trainer comparison, the GPU check) end to end on tiny data: the JSON they print."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from src.core.runtime import cpu_has_amx_bf16
from src.data.preprocess import Split, normalize_tweet, write_split
from tests.fixtures import tiny_splits, write_tiny_bert

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
    assert report["precision"] == {"ours": ours, "hf_trainer": ours}  # the Trainer at the stage's precision
    assert report["class_weights"]["ours_unweighted"] is None and report["class_weights"]["hf_trainer"] is None
    for side in ("ours", "ours_unweighted", "hf_trainer"):
        runs = report["runs"][side]
        assert [run["seed"] for run in runs] == [1, 2]
        for run in runs:
            assert run["wall_s"] > 0 and run["samples_per_s"] > 0
            assert 0 <= run["val_macro_recall"] <= 1 and 0 <= run["test_macro_recall"] <= 1
        assert report["mean"][side]["wall_s"] == round(sum(r["wall_s"] for r in runs) / 2, 4)
    assert report["speedup"] == round(report["mean"]["hf_trainer"]["wall_s"] / report["mean"]["ours"]["wall_s"], 2)
    unweighted = report["mean"]["ours_unweighted"]
    assert report["like_for_like"]["speedup"] == round(report["mean"]["hf_trainer"]["wall_s"] / unweighted["wall_s"], 2)
    effect = round(report["mean"]["ours"]["val_macro_recall"] - unweighted["val_macro_recall"], 4)
    assert report["class_weights_effect"]["val_macro_recall_delta"] == effect


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
    assert {row["family"] for row in report["families"]} >= {"bertweet", "deberta-v2", "modernbert"}
    assert all(row["status"] == "ok" for row in report["families"]), report["families"]
    assert [s["stage"] for s in report["stages"]] == ["environment", "cuda_tests", "families", "train"]
    assert report["total_s"] >= sum(s["wall_s"] for s in report["stages"]) - 0.5


@pytest.mark.slow
def test_bert_vs_hf_trainer_end_to_end_times_the_stage_through_dvc_and_the_stock_trainer_script(tmp_path):
    model, data = write_tiny_bert(tmp_path / "tiny-bert"), _tiny_data(tmp_path)
    args = ["--end-to-end", "--model", str(model), "--data-dir", str(data), "--train-samples", "0"]
    args += ["--batch-size", "8", "--max-length", "32", "--seeds", "1"]  # the tiny BERT embeds 64 positions
    args += ["--sides", "dvc_repro", "dvc_repro_unweighted", "stock_trainer"]
    report = _benchmark_report("bert_vs_hf_trainer", *args, timeout=600)
    assert report["mode"] == "end to end" and report["rev"] == "work tree"
    for side in ("dvc_repro", "stock_trainer"):
        (run,) = report["runs"][side]
        assert run["seed"] == 1 and run["wall_s"] > 0 and 0 <= run["val_macro_recall"] <= 1
    stage, stock = report["mean"]["dvc_repro"], report["mean"]["stock_trainer"]
    assert report["dvc_repro"]["speedup"] == round(stock["wall_s"] / stage["wall_s"], 2)
    unweighted = report["mean"]["dvc_repro_unweighted"]
    assert report["dvc_repro_unweighted"]["speedup"] == round(stock["wall_s"] / unweighted["wall_s"], 2)
    effect = round(stage["val_macro_recall"] - unweighted["val_macro_recall"], 4)
    assert report["class_weights_effect"]["val_macro_recall_delta"] == effect
    delta = round(stage["val_macro_recall"] - stock["val_macro_recall"], 4)
    assert report["dvc_repro"]["val_macro_recall_delta"] == delta

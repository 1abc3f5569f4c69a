"""The benchmark scripts run end to end on tiny data and print the JSON their README tables quote."""
import json
import subprocess
import sys
from pathlib import Path

from src.preprocess import Split, normalize_tweet, write_split
from src.training.trainer import cpu_has_amx_bf16
from tests.fixtures import tiny_splits, write_tiny_bert

ROOT = Path(__file__).resolve().parents[1]


def test_bert_vs_hf_trainer_reports_each_seed_and_the_means(tmp_path):
    model = write_tiny_bert(tmp_path / "tiny-bert")
    for name, rows in tiny_splits().items():
        write_split(tmp_path / f"data/{name}.jsonl", Split([normalize_tweet(t) for t, _ in rows], [y for _, y in rows]))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bert_vs_hf_trainer", "--model", str(model), "--data-dir",
         str(tmp_path / "data"), "--train-samples", "0", "--batch-size", "8", "--seeds", "1", "2", "--test"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
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
    done = subprocess.run([sys.executable, "-m", "benchmarks.dvclive_overhead", "--steps", "40", "--every", "10"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["steps"] == 40
    for way in ("next_step_per_step", "dvclive_log"):
        assert report[way]["ms_per_step"] > 0 and report[way]["ms_per_step_last"] > 0

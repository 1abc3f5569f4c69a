"""benchmarks/gpu_check: its arguments, its plan and its figures, on a CPU (the GPU run itself needs a GPU)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu_check

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "tpu"], "error: --device = 'tpu': expected cuda, cuda:N or cpu"),
        (["--batch-size", "0"], "error: --batch-size = 0: expected a positive integer"),
        (["--train-samples", "-1"], "error: --train-samples = -1: expected 0 (all) or a positive integer"),
        (["--peak-tflops", "0"], "error: --peak-tflops = 0.0: expected a positive number"),
        (["--data-dir", "/nonexistent"], "error: --data-dir /nonexistent: no train.jsonl (run `dvc repro preprocess`"),
    ],
)
def test_bad_arguments_get_one_error_line(args, message):
    done = run(*args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_dry_run_prints_the_plan_as_json_and_runs_nothing(tmp_path):
    done = run("--dry-run", "--device", "cuda:1", "--timeout-s", "60", "--out", str(tmp_path / "x.json"))
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["dry_run"] is True and plan["device"] == "cuda:1" and plan["timeout_s"] == 60
    tests, train = plan["commands"]["cuda_tests"], plan["commands"]["train"]
    assert tests[1:3] == ["-m", "pytest"] and tests[-2:] == list(gpu_check.CUDA_TESTS)
    assert train[2] == "benchmarks.bert_vs_hf_trainer" and train[train.index("--device") + 1] == "cuda:1"
    assert train[train.index("--epochs") + 1] == "1" and train[train.index("--train-samples") + 1] == "0"
    families = plan["commands"]["families"]
    assert families[2] == "benchmarks.family_check" and families[families.index("--device") + 1] == "cuda:1"
    assert "--compile" in families
    assert not (tmp_path / "x.json").exists()  # nothing ran, nothing written
    shell = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run"], cwd=ROOT, capture_output=True, text=True)
    assert shell.returncode == 0 and json.loads(shell.stdout)["dry_run"] is True  # the shell part installs nothing


def test_peak_by_gpu_name_and_model_flops_utilisation():
    assert gpu_check.peak_tflops("NVIDIA H200", None) == 989.4
    assert gpu_check.peak_tflops("NVIDIA H100 PCIe", None) == 756.0  # the longest name that matches wins
    assert gpu_check.peak_tflops("NVIDIA A100-SXM4-80GB", None) == 312.0
    assert gpu_check.peak_tflops("Some Future GPU", None) is None and gpu_check.peak_tflops(None, 5.0) == 5.0
    # 1000 samples/s x 6 x 22.7M parameters x 30 tokens = 4.09 PFLOP/s of 989.4 TFLOPS
    assert gpu_check.mfu(1000, 22_700_000, 30, 989.4) == round(1000 * 6 * 22.7e6 * 30 / 989.4e12, 4)
    assert gpu_check.mfu(1000, 22_700_000, 30, None) is None


def test_the_family_check_prints_one_ok_row_per_family_on_a_cpu():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.family_check", "--device", "cpu", "--families", "bertweet", "distilbert"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(done.stdout)["families"]
    assert [row["family"] for row in rows] == ["bertweet", "distilbert"]
    for row in rows:
        assert row["status"] == "ok" and row["loss_down"] and row["export_matches"], row
        assert row["autocast"] in ("fp32", "bfloat16") and row["compiled"] is False

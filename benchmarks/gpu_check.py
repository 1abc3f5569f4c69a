"""The GPU check: the CUDA-dependent tests, then train_bert's code and the stock Trainer for one epoch
on the same GPU; prints one JSON object.

    benchmarks/gpu_check.sh                    # on a GPU machine: installs the CUDA torch, then this
    python -m benchmarks.gpu_check --dry-run   # the plan (commands, limits) as JSON; runs nothing

Stages, each timed (``stages[].wall_s``):

1. ``environment``: torch and CUDA versions, the GPU's name, its dense bf16 peak (``PEAK_BF16_TFLOPS``
   by name, or ``--peak-tflops``).
2. ``cuda_tests``: pytest (``-m "not slow"``) on the tests whose code takes another branch on a GPU
   (device choice, autocast dtype, fused AdamW, the engine and BERT training): passed, failed, skipped.
3. ``families``: ``benchmarks.family_check --compile``: each encoder family's tiny stand-in (BERT,
   RoBERTa, XLM-R, BERTweet, DistilBERT, DeBERTa-v2, ELECTRA, ModernBERT) through train_model on the
   GPU (bf16 autocast, the family's attention implementation, fused AdamW, torch.compile), one row per
   family: loss down, export reloads to the run's validation figures, ``status``.
4. ``train``: ``benchmarks.bert_vs_hf_trainer`` with ``--sides ours hf_trainer --epochs 1
   --train-samples 0 --test --device cuda``: train_bert's code (train_model: bf16 autocast, TF32,
   fused AdamW) and the stock Trainer (``bf16=True``) on the full train split, each in a fresh
   process; samples/s end to end (start-up and validation included), val and test macro-recall.

Model FLOPs utilisation (``mfu``) counts ``6 * parameters * tokens`` per training sample (forward
and backward; attention's own FLOPs left out) over the end-to-end time, against the bf16 peak: a
lower bound on the training loop's. Designed to finish within 8 minutes on an H200 (MiniLM,
45,615 tweets, one epoch per side); ``--timeout-s`` bounds each stage.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Dense bf16 tensor-core peak, TFLOPS (vendor datasheets, without sparsity); matched by name, longest first.
PEAK_BF16_TFLOPS = {
    "H200": 989.4,
    "H100 SXM": 989.4,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 756.0,
    "GH200": 989.4,
    "B200": 2250.0,
    "A100": 312.0,
    "L40S": 362.1,
    "L4": 121.0,
    "A10G": 70.0,
    "A10": 125.0,
    "RTX 4090": 165.2,
}
# tests whose code takes a CUDA branch: device resolution, autocast dtype, fused AdamW, pinned memory
CUDA_TESTS = ("tests/test_training_integration.py", "tests/test_bert_training.py")


def peak_tflops(gpu_name: str | None, override: float | None) -> float | None:
    if override is not None:
        return override
    if not gpu_name:
        return None
    for name in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if name.lower() in gpu_name.lower():
            return PEAK_BF16_TFLOPS[name]
    return None


def mfu(samples_per_s: float, parameters: int, tokens_per_sample: float, peak: float | None) -> float | None:
    """Training FLOPs per second (6 x parameters x tokens per sample) over the peak; None without a peak."""
    if not peak:
        return None
    return round(samples_per_s * 6 * parameters * tokens_per_sample / (peak * 1e12), 4)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from src.core.params import load_params

    params = load_params(ROOT / "params.yaml")
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=params["model_name"])
    parser.add_argument("--data-dir", default=str(ROOT / "data/processed"))
    parser.add_argument("--device", default="cuda", help="cuda (the check), or cpu (a tiny rehearsal)")
    parser.add_argument("--batch-size", type=int, default=params["batch_size"])
    parser.add_argument("--train-samples", type=int, default=0, help="0: the whole train split")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's bf16 peak (else by GPU name)")
    parser.add_argument("--tests", nargs="*", default=list(CUDA_TESTS), help="test files for the CUDA branches")
    parser.add_argument("--timeout-s", type=int, default=420, help="the limit for each stage, seconds")
    parser.add_argument("--out", default=None, help="also write the JSON to this file")
    parser.add_argument("--dry-run", action="store_true", help="print the plan as JSON; run nothing")
    args = parser.parse_args(argv)
    if args.device not in ("cuda", "cpu") and not args.device.startswith("cuda:"):
        parser.error(f"--device = {args.device!r}: expected cuda, cuda:N or cpu")
    for flag, value in (("--batch-size", args.batch_size), ("--timeout-s", args.timeout_s)):
        if value <= 0:
            parser.error(f"{flag} = {value}: expected a positive integer")
    if args.train_samples < 0:
        parser.error(f"--train-samples = {args.train_samples}: expected 0 (all) or a positive integer")
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        parser.error(f"--peak-tflops = {args.peak_tflops}: expected a positive number")
    if not args.dry_run:
        for split in ("train", "val", "test"):
            if not (Path(args.data_dir) / f"{split}.jsonl").is_file():
                parser.error(f"--data-dir {args.data_dir}: no {split}.jsonl (run `dvc repro preprocess` first)")
    return args


def commands(args: argparse.Namespace, junit: str) -> dict[str, list[str]]:
    tests = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", f"--junitxml={junit}"]
    tests += args.tests
    train = [
        *(sys.executable, "-m", "benchmarks.bert_vs_hf_trainer", "--sides", "ours", "hf_trainer"),
        *("--seeds", "42", "--epochs", "1", "--test", "--device", args.device),
        *("--model", args.model, "--data-dir", args.data_dir, "--batch-size", str(args.batch_size)),
        *("--train-samples", str(args.train_samples)),
    ]
    families = [sys.executable, "-m", "benchmarks.family_check", "--device", args.device]
    families += ["--compile"] if args.device.startswith("cuda") else []  # a CPU rehearsal skips the compile
    return {"cuda_tests": tests, "families": families, "train": train}


def run(command: list[str], timeout_s: int) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(command, 124, exc.stdout or "", f"timed out after {timeout_s} s")


def test_counts(junit: str) -> dict[str, int]:
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total, failed = int(suite.get("tests", 0)), int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped = int(suite.get("skipped", 0))
    return {"passed": total - failed - skipped, "failed": failed, "skipped": skipped}


def model_size(model: str, data_dir: str, max_length: int) -> tuple[int, float]:
    """(parameters, mean tokens per train tweet) of ``model`` on the train split."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from src.data.preprocess import read_split
    from src.models.bert_model import load_tokenizer

    config = AutoConfig.from_pretrained(model, num_labels=3)
    parameters = sum(p.numel() for p in AutoModelForSequenceClassification.from_config(config).parameters())
    tokenizer = load_tokenizer(model)
    texts = read_split(Path(data_dir) / "train.jsonl").texts
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    return parameters, round(statistics.fmean(lengths), 2)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        junit = str(Path(scratch) / "tests.xml")
        plan = commands(args, junit)
        if args.dry_run:
            report = {"dry_run": True, "device": args.device, "timeout_s": args.timeout_s, "commands": plan}
            print(json.dumps(report, indent=2))
            return 0
        import torch

        from src.core.params import load_params

        stages, started = [], time.perf_counter()
        cuda = args.device.startswith("cuda")
        if cuda and not torch.cuda.is_available():
            print(f"error: --device {args.device}: torch {torch.__version__} sees no GPU", file=sys.stderr)
            return 2
        gpu = torch.cuda.get_device_name(torch.device(args.device)) if cuda else None
        peak = peak_tflops(gpu, args.peak_tflops)
        parameters, tokens = model_size(args.model, args.data_dir, load_params(ROOT / "params.yaml")["max_length"])
        stages.append({"stage": "environment", "wall_s": round(time.perf_counter() - started, 1)})
        report = {
            "device": gpu or "cpu",
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "peak_bf16_tflops": peak,
            "model": args.model,
            "parameters": parameters,
            "mean_tokens_per_sample": tokens,
        }

        tests_started = time.perf_counter()
        done = run(plan["cuda_tests"], args.timeout_s)
        counts = test_counts(junit) if Path(junit).is_file() else {"passed": 0, "failed": 0, "skipped": 0}
        report["cuda_tests"] = {"exit_code": done.returncode, **counts, "files": args.tests}
        if done.returncode not in (0, 5):  # 5: no tests collected
            report["cuda_tests"]["tail"] = (done.stdout + done.stderr)[-2000:]
        stages.append({"stage": "cuda_tests", "wall_s": round(time.perf_counter() - tests_started, 1)})

        families_started = time.perf_counter()
        done = run(plan["families"], args.timeout_s)
        try:
            report["families"] = json.loads(done.stdout)["families"]
        except (json.JSONDecodeError, KeyError):
            report["families"] = {"exit_code": done.returncode, "tail": (done.stdout + done.stderr)[-2000:]}
        stages.append({"stage": "families", "wall_s": round(time.perf_counter() - families_started, 1)})

        train_started = time.perf_counter()
        done = run(plan["train"], args.timeout_s)
        if done.returncode == 0:
            result = json.loads(done.stdout)
            report["train_samples"] = result["train_samples"]
            report["precision"] = result["precision"]
            for side, label in (("ours", "train_bert"), ("hf_trainer", "hf_trainer")):
                (side_run,) = result["runs"][side]
                report[label] = {
                    "samples_per_s": side_run["samples_per_s"],
                    "wall_s": side_run["wall_s"],
                    "mfu": mfu(side_run["samples_per_s"], parameters, tokens, peak),
                    "val_macro_recall": side_run["val_macro_recall"],
                    "test_macro_recall": side_run["test_macro_recall"],
                }
            report["speedup_vs_hf_trainer"] = result.get("speedup")
        else:
            report["train"] = {"exit_code": done.returncode, "tail": (done.stdout + done.stderr)[-2000:]}
        stages.append({"stage": "train", "wall_s": round(time.perf_counter() - train_started, 1)})
        report["stages"] = stages
        report["total_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        from src.core.atomic import write_json

        write_json(Path(args.out), report)
    families_ok = isinstance(report["families"], list) and all(r["status"] == "ok" for r in report["families"])
    failed = report["cuda_tests"]["exit_code"] not in (0, 5) or "train" in report or not families_ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

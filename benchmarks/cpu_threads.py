"""Seconds per MiniLM training step on the CPU under a controlled background load, per thread setting.

    python -m benchmarks.cpu_threads --load 0 2 --settings default threads1 passive
    python -m benchmarks.cpu_threads --load 2 --settings default project --steps 8

Each measurement is a fresh process (OpenMP reads its environment once, when torch loads it) that
fine-tunes sentence-transformers/all-MiniLM-L6-v2 (from the Hugging Face cache, HF_HOME) on real
tweets (TweetEval's train split in the offline mirror, SENTIMENT_MIRROR) for ``--steps`` batches of 16
at max_length 64 after one warm-up step. ``--load N`` starts N busy Python processes
(``while True: pass``) beside it and kills them when it ends. Settings:

- ``default``: torch as installed (as many threads as cores, OpenMP's default wait policy);
- ``threads1``: OMP_NUM_THREADS=1;
- ``passive``: OMP_WAIT_POLICY=PASSIVE (idle threads sleep instead of spinning);
- ``spin1k``, ``spin10k``, ``spin100k``: GOMP_SPINCOUNT (idle threads spin that many times, then sleep);
- ``project``: what src (src/__init__.py, src.core.runtime.use_all_cpu_cores) sets by itself.

Prints JSON lines: the cores, then per run the machine's load average before it and the seconds per step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TWEETS = "raw.githubusercontent.com/cardiffnlp/tweeteval/main/datasets/sentiment/train_text.txt"
SETTINGS = {
    "default": {},
    "threads1": {"OMP_NUM_THREADS": "1"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin1k": {"GOMP_SPINCOUNT": "1000"},
    "spin10k": {"GOMP_SPINCOUNT": "10000"},
    "spin100k": {"GOMP_SPINCOUNT": "100000"},
    "project": {},
}
OPENMP_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GOMP_SPINCOUNT")  # a setting's alone
CHILD = r"""
import json, os, sys, time
project = sys.argv[4] == "project"
if project:
    import src  # noqa: F401  (sets the OpenMP environment before torch loads)
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
if project:
    from src.core.runtime import use_all_cpu_cores
    use_all_cpu_cores()
texts = open(sys.argv[1], encoding="utf-8").read().splitlines()[: 16 * (int(sys.argv[2]) + 1)]
name = "sentence-transformers/all-MiniLM-L6-v2"
tokenizer = AutoTokenizer.from_pretrained(name)
model = AutoModelForSequenceClassification.from_pretrained(name, num_labels=3)
optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
torch.manual_seed(0)
times = []
for start in range(0, len(texts), 16):
    batch = tokenizer(texts[start : start + 16], truncation=True, max_length=64, padding=True, return_tensors="pt")
    labels = torch.randint(0, 3, (len(batch["input_ids"]),))
    began = time.perf_counter()
    loss = model(**batch, labels=labels).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    times.append(time.perf_counter() - began)
print(json.dumps({"threads": torch.get_num_threads(), "s_per_step": round(sum(times[1:]) / len(times[1:]), 3)}))
"""


def measure(setting: str, load: int, steps: int, mirror: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in OPENMP_VARIABLES}
    env.update(SETTINGS[setting], PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
    try:
        time.sleep(1 if load else 0)
        load_before = round(os.getloadavg()[0], 2)
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(mirror / TWEETS), str(steps), "", setting],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        wall = time.perf_counter() - started
    finally:
        for process in busy:
            process.kill()
            process.wait()
    return {
        "setting": setting,
        "background_load": load,
        "loadavg_1min_before": load_before,
        **json.loads(result.stdout),
        "wall_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, nargs="+", default=[0, 2], help="busy processes beside the run")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per measurement")
    parser.add_argument("--mirror", default=os.environ.get("SENTIMENT_MIRROR", "../shared/mirror"))
    args = parser.parse_args(argv)
    print(json.dumps({"cores": len(os.sched_getaffinity(0))}), flush=True)
    for load in args.load:
        for setting in args.settings:  # one line each as it completes: a slow machine still shows progress
            print(json.dumps(measure(setting, load, args.steps, Path(args.mirror))), flush=True)


if __name__ == "__main__":
    main()

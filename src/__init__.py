"""Twitter sentiment pipeline: data, models and training for TweetEval's 3-class task."""

import os

# OpenMP reads its environment once, when torch loads it; every entry point (stages, src.launch and the
# torchrun workers it starts, the command lines, examples) imports this package before torch. Idle OpenMP
# threads spin for about 0.1 ms (10,000 spins), then sleep. OpenMP's default (3 ms of spinning) takes the
# cores that the working threads need on a CPU other processes share: 2.9 s a MiniLM step beside two busy
# processes, 1.4 s with the short spin. Never spinning (OMP_WAIT_POLICY=PASSIVE) is as good under load but
# costs 20-35% of a small step (batch 16 of 64 tokens) on an idle machine, where the short spin is as fast
# as the default (0.51 s a step against 0.51-0.54; 0.64-0.71 passive). Measured in
# docs/decisions.md (docs/troubleshooting.md).
# Settings only a user's own environment overrides; none changes a result, only its speed.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")  # GNU OpenMP (torch's CPU builds)
os.environ.setdefault("KMP_BLOCKTIME", "1")  # Intel OpenMP (MKL-threaded builds): spin 1 ms, then sleep

"""Twitter sentiment pipeline: data, models and training for TweetEval's 3-class task."""

import os

# OpenMP reads its environment once, when torch loads it; every entry point (stages, src.launch and the
# torchrun workers it starts, the command lines, examples) imports this package before torch. Idle OpenMP
# threads then sleep instead of spinning: on a CPU that other processes share, spinning threads take the
# cores the working ones need (docs/troubleshooting.md, "Training is slow on a busy machine": 12 s a MiniLM
# step with spinning, 2.5 s without, at load 11 on 2 cores). On an idle machine the cost is nil.
# Settings only a user's own environment overrides; none changes a result, only its speed.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # GNU OpenMP (torch's CPU builds)
os.environ.setdefault("KMP_BLOCKTIME", "0")  # Intel OpenMP (MKL-threaded builds): the same

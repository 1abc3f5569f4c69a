"""The launcher's target for tests/test_distributed.py (torchrun's worker, or for one process the launcher's
own process): runs a stage module as ``python -m`` would, with test-only changes to one rank chosen by
environment variables.

    TEST_RANK_DIR_<r>=DIR   rank r works in DIR (a copy of the stage's inputs): whatever it writes
                            lands there, where the test can see it
    TEST_FAIL_RANK=r        rank r runs out of memory in its second training step
    TEST_HANG_RANK=r        rank r stops responding in its second training step
"""

import os
import runpy
import sys
import time

rank = int(os.environ.get("RANK", "0"))  # one process runs in the launcher's own process: no torchrun RANK
if os.environ.get(f"TEST_RANK_DIR_{rank}"):
    os.chdir(os.environ[f"TEST_RANK_DIR_{rank}"])


def misbehave(fault):
    import torch

    from src.training import trainer

    forward, steps = trainer.forward_logits, []

    def forward_logits(model, batch):
        if model.training:
            steps.append(1)
            if len(steps) == 2 and fault == "fail":
                raise torch.OutOfMemoryError("CUDA out of memory (simulated on one rank)")
            if len(steps) == 2 and fault == "hang":
                time.sleep(3600)
        return forward(model, batch)

    trainer.forward_logits = forward_logits


for fault in ("fail", "hang"):
    if os.environ.get(f"TEST_{fault.upper()}_RANK") == str(rank):
        misbehave(fault)

module = sys.argv[1]
sys.argv = [module]
runpy.run_module(module, run_name="__main__", alter_sys=True)

"""train_bert: fine-tune model_name with the top-level hyperparameters -> models/bert/, metrics/bert/train.json,
dvclive/train_bert/ (the training curves, per step and per epoch).

    python -m src.launch stages.train_bert             # params.yaml's seed: models/bert/ (stage train_bert)
    python -m src.launch stages.train_bert --seed 43   # an ensemble member (stage train_bert_seed@43):
                                                       # models/bert_seed43/, metrics/bert_seed43/train.json,
                                                       # dvclive/train_bert_seed43/

The recipe is params.yaml's in both cases; only the seed (initialisation of the classifier, dropout,
batch order) differs, which is what makes the seeds' errors partly independent and their ensemble
better than any one of them.
"""

import argparse
import dataclasses
import sys
from functools import partial
from pathlib import Path
from typing import NamedTuple

from src.checkpoints.resume import run_fingerprint, source_files
from src.checkpoints.resume_dir import is_publisher, probe_outputs, publish, resume_dir
from src.core.atomic import write_json
from src.core.cli import run_stage
from src.core.runtime import out_of_memory_names, resolve_device, use_all_cpu_cores
from src.recipes.bert_config import BertConfig
from src.recipes.bert_fine_tune import fine_tune
from src.recipes.bert_run import load_bert_data, loss_weights, make_loaders
from src.training import distributed
from src.training.history import best_epoch_metrics
from src.training.live import DVCLiveLog

MODEL_DIR = Path("models/bert")
METRICS_PATH = Path("metrics/bert/train.json")  # the same keys as metrics/lstm/train.json
LIVE_DIR = Path("dvclive/train_bert")  # DVCLive: per-step loss and per-epoch validation while it trains
INPUTS = (Path("data/processed/train.jsonl"), Path("data/processed/val.jsonl"))
MAX_SEED = 2**32 - 1  # as params.yaml's seed (numpy's limit)


class Outputs(NamedTuple):
    model_dir: Path
    metrics_path: Path
    live_dir: Path


def outputs(member_seed: int | None) -> Outputs:
    """Where a run writes: train_bert's paths, or a seed member's (``bert_seed<N>``, ``train_bert_seed<N>``)."""
    if member_seed is None:
        return Outputs(MODEL_DIR, METRICS_PATH, LIVE_DIR)
    name = f"bert_seed{member_seed}"
    return Outputs(Path("models") / name, Path("metrics") / name / "train.json", Path(f"dvclive/train_{name}"))


def parse_member_seed(argv: list[str]) -> int | None:
    """``--seed N`` (a seed member), or None (params.yaml's seed, train_bert itself)."""
    if "-h" in argv or "--help" in argv:  # run_stage prints the stage's usage (this docstring)
        return None
    parser = argparse.ArgumentParser(prog="python -m stages.train_bert", add_help=False)
    parser.add_argument("--seed", type=int)
    seed = parser.parse_args(argv).seed
    if seed is not None and not 0 <= seed <= MAX_SEED:
        parser.error(f"--seed: expected an integer from 0 to {MAX_SEED}, got {seed}")
    return seed


def main(params: dict, member_seed: int | None = None) -> None:
    use_all_cpu_cores()
    config = BertConfig.from_params(params)
    if member_seed is not None:
        config = dataclasses.replace(config, seed=member_seed)
    # resolved once, before any work (no GPU for `cuda` is an error); under torchrun: one process per GPU
    # (or CPU slot), and batch_size is the global batch
    device = resolve_device(config.device, key="bert.device")
    with distributed.process_group(device, params["distributed"]["timeout_s"]) as device:
        train(config, device, outputs(member_seed))


def train(config: BertConfig, device, out: Outputs = outputs(None)) -> None:
    data = load_bert_data(config)
    train_loader, val_loader = make_loaders(data, config, config.batch_size, device)
    # dropout streams and summation order differ with the process count
    training_params = {**config.fingerprint_params(), "distributed": {"world_size": distributed.world_size()}}
    live = DVCLiveLog(out.live_dir) if distributed.is_main_process() else None  # rank 0 alone logs
    fingerprint = run_fingerprint(training_params, INPUTS, source_files(__file__))
    # trains in .resume/train_bert/<key of the fingerprint>/, outside the DVC output (a plain cached one, so
    # DVC's run-cache covers the stage): a rerun after a kill resumes from its checkpoints there
    work = resume_dir(f"train_{out.model_dir.name}", fingerprint)
    if is_publisher():  # the outputs take the model and summary when it ends: writable before it starts
        probe_outputs(out.model_dir.parent, out.metrics_path.parent)
    model, history = fine_tune(
        config,
        train_loader,
        val_loader,
        work,
        device,
        tokenizer=data.tokenizer,
        class_weights=loss_weights(config, data),
        resume=True,
        fingerprint=fingerprint,
        training_log=live,
    )
    if not distributed.is_main_process():  # rank 0 writes the summary; DVCLive has the curves
        return
    write_json(out.metrics_path, best_epoch_metrics(history, model))
    live.close()
    publish(work, out.model_dir)  # last: the model's files (no checkpoint) into models/bert, the resume state removed


if __name__ == "__main__":
    member = parse_member_seed(sys.argv[1:])
    run_stage(out_of_memory_names(("batch_size",), eval_key="bert.eval_batch_size")(partial(main, member_seed=member)))

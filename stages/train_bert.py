"""train_bert: fine-tune model_name with the top-level hyperparameters -> models/bert/, metrics/bert/train.json,
dvclive/train_bert/ (the training curves, per step and per epoch)."""

from pathlib import Path

from src.checkpoints.resume import run_fingerprint, source_files
from src.core.atomic import write_json
from src.core.cli import run_stage
from src.core.runtime import out_of_memory_names, resolve_device, use_all_cpu_cores
from src.models.training import train_model
from src.recipes.bert_config import BertConfig
from src.recipes.bert_run import load_bert_data, make_loaders, run_options
from src.training import distributed
from src.training.history import best_epoch_metrics
from src.training.live import DVCLiveLog

MODEL_DIR = Path("models/bert")
METRICS_PATH = Path("metrics/bert/train.json")  # the same keys as metrics/lstm/train.json
LIVE_DIR = Path("dvclive/train_bert")  # DVCLive: per-step loss and per-epoch validation while it trains
INPUTS = (Path("data/processed/train.jsonl"), Path("data/processed/val.jsonl"))


@out_of_memory_names(("batch_size",), eval_key="bert.eval_batch_size")
def main(params: dict) -> None:
    use_all_cpu_cores()
    config = BertConfig.from_params(params)
    # resolved once, before any work (no GPU for `cuda` is an error); under torchrun: one process per GPU
    # (or CPU slot), and batch_size is the global batch
    device = resolve_device(config.device, key="bert.device")
    with distributed.process_group(device, params["distributed"]["timeout_s"]) as device:
        train(config, device)


def train(config: BertConfig, device) -> None:
    data = load_bert_data(config)
    train_loader, val_loader = make_loaders(data, config, config.batch_size, device)
    # dropout streams and summation order differ with the process count
    training_params = {**config.fingerprint_params(), "distributed": {"world_size": distributed.world_size()}}
    live = DVCLiveLog(LIVE_DIR) if distributed.is_main_process() else None  # rank 0 alone logs
    # MODEL_DIR is a persisted DVC output: a rerun after a kill resumes from its checkpoints
    model, history = train_model(
        train_loader,
        val_loader,
        MODEL_DIR,
        config.num_epochs,
        config.learning_rate,
        config.weight_decay,
        config.warmup_ratio,
        device,
        num_classes=len(config.label_names),
        dropout_prob=config.dropout_prob,
        seed=config.seed,
        label_names=list(config.label_names),
        resume=True,
        fingerprint=run_fingerprint(training_params, INPUTS, source_files(__file__)),
        training_log=live,
        **run_options(config, data),
    )
    if not distributed.is_main_process():  # rank 0 writes the summary; DVCLive has the curves
        return
    write_json(METRICS_PATH, best_epoch_metrics(history, model))
    live.close()


if __name__ == "__main__":
    run_stage(main)

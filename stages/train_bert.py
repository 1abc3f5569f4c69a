"""train_bert: fine-tune model_name with the top-level hyperparameters -> models/bert/, metrics/bert/train.json,
dvclive/train_bert/ (the training curves, per step and per epoch)."""

from pathlib import Path

from src.checkpoints.resume import run_fingerprint, source_files
from src.core.atomic import write_json
from src.core.cli import run_stage
from src.core.runtime import out_of_memory_names, resolve_device, use_all_cpu_cores
from src.models.training import train_model
from src.recipes.bert_run import load_bert_data, make_loaders, run_options
from src.training import distributed
from src.training.history import best_epoch_metrics
from src.training.live import DVCLiveLog

MODEL_DIR = Path("models/bert")
METRICS_PATH = Path("metrics/bert/train.json")  # the same keys as metrics/lstm/train.json
LIVE_DIR = Path("dvclive/train_bert")  # DVCLive: per-step loss and per-epoch validation while it trains
# what shapes training, as listed for this stage in dvc.yaml
TRAINING_PARAMS = (
    "model_name",
    "num_epochs",
    "learning_rate",
    "batch_size",
    "weight_decay",
    "warmup_ratio",
    "dropout_prob",
    "max_length",
    "seed",
    "bert",
)
INPUTS = (Path("data/processed/train.jsonl"), Path("data/processed/val.jsonl"))


@out_of_memory_names(("batch_size",), eval_key="bert.eval_batch_size")
def main(params: dict) -> None:
    use_all_cpu_cores()
    device = resolve_device(params["bert"]["device"], key="bert.device")
    # under torchrun: one process per GPU (or CPU slot); batch_size is the global batch
    with distributed.process_group(device, params["distributed"]["timeout_s"]) as device:
        train(params, device)


def train(params: dict, device) -> None:
    data = load_bert_data(params)
    train_loader, val_loader = make_loaders(data, params, params["batch_size"])
    training_params = {
        **{key: params[key] for key in TRAINING_PARAMS},
        "data": {"label_names": params["data"]["label_names"]},
        # dropout streams and summation order differ with the process count
        "distributed": {"world_size": distributed.world_size()},
    }
    live = DVCLiveLog(LIVE_DIR) if distributed.is_main_process() else None  # rank 0 alone logs
    # MODEL_DIR is a persisted DVC output: a rerun after a kill resumes from its checkpoints
    model, history = train_model(
        train_loader,
        val_loader,
        MODEL_DIR,
        params["num_epochs"],
        params["learning_rate"],
        params["weight_decay"],
        params["warmup_ratio"],
        device,
        num_classes=len(params["data"]["label_names"]),
        dropout_prob=params["dropout_prob"],
        seed=params["seed"],
        label_names=params["data"]["label_names"],
        resume=True,
        fingerprint=run_fingerprint(training_params, INPUTS, source_files(__file__)),
        training_log=live,
        **run_options(params, data),
    )
    if not distributed.is_main_process():  # rank 0 writes the summary; DVCLive has the curves
        return
    write_json(METRICS_PATH, best_epoch_metrics(history, model))
    live.close()


if __name__ == "__main__":
    run_stage(main)

"""tune: the seed's hyperparameter search, scored on validation only -> models/tune/, metrics/tune.json."""
import json
from pathlib import Path

from src.atomic import write_json
from src.cli import run_stage
from src.models.bert_run import load_bert_data, make_loaders, run_options
from src.runtime import out_of_memory_names, use_all_cpu_cores
from src.models.training import TUNABLE, hyperparameter_tuning
from src.preprocess import read_split, stratified_subset

OUTPUT_DIR = Path("models/tune")
METRICS_PATH = Path("metrics/tune.json")


@out_of_memory_names(("tune.search_space.batch_size", "batch_size"), eval_key="bert.eval_batch_size")
def main(params: dict) -> None:
    tune = params["tune"]
    use_all_cpu_cores()
    train = read_split("data/processed/train.jsonl")
    train = stratified_subset(train, max(1, round(tune["train_fraction"] * len(train))), tune["seed"])
    data = load_bert_data(params, train_split=train)
    # Untuned values come from the top level; learning_rate is always searched (schema), so a
    # `-S learning_rate=...` experiment does not re-run the search.
    base = {name: params[name] for name in TUNABLE if name not in tune["search_space"]}
    train_loader, val_loader = make_loaders(data, params, params["batch_size"])  # re-batched per trial when searched
    _, best = hyperparameter_tuning(
        train_loader, val_loader, None, OUTPUT_DIR, tune["search_space"], params["bert"]["device"],
        base_hyperparameters=base, method=tune["method"], n_trials=tune["n_trials"], seed=tune["seed"],
        num_classes=len(params["data"]["label_names"]), label_names=params["data"]["label_names"],
        max_checkpoints=1, keep_checkpoints=False, **run_options(params, data),
    )
    write_json(OUTPUT_DIR / "best_hyperparameters.json", best)
    results = json.loads((OUTPUT_DIR / "tuning_results.json").read_text())
    best_trial = results["trials"][results["best_trial"]]
    write_json(METRICS_PATH, {
        "trials": len(results["trials"]), "train_rows": len(data.train), "best_trial": best_trial["trial"],
        "best_hyperparameters": best,
        "val": {key: best_trial[f"val_{key}"] for key in ("loss", "accuracy", "macro_recall", "macro_f1")},
    })


if __name__ == "__main__":
    run_stage(main)

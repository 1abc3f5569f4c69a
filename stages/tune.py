"""tune: the BERT fine-tuning guide's hyperparameter search on Optuna, on validation -> models/tune/, metrics/tune.json.

`python -m stages.tune` runs the search with `tune.workers` processes (the DVC stage).
`python -m stages.tune --worker` joins a running search from another machine: it needs `tune.storage`
(an RDB URL every machine reaches), `tune.artifact_store` (a directory every machine reaches, where its
trials' models go) and the same params, data and code as the machine running the stage.
"""

import sys
from pathlib import Path

from src import tuning
from src.checkpoints.resume import run_fingerprint, source_files
from src.checkpoints.resume_dir import RESUME_STATE, publish, resume_dir
from src.core.atomic import write_json
from src.core.cli import run_stage
from src.core.runtime import out_of_memory_names, resolve_device, use_all_cpu_cores
from src.data.preprocess import read_split, stratified_subset
from src.recipes.bert_config import BertConfig
from src.recipes.bert_fine_tune import TrialRun
from src.recipes.bert_run import load_bert_data, loss_weights, make_loaders

OUTPUT_DIR = Path("models/tune")
METRICS_PATH = Path("metrics/tune.json")
INPUTS = (Path("data/processed/train.jsonl"), Path("data/processed/val.jsonl"))
# what shapes a trial's result (tune's dvc.yaml params but how many trials, where and how many at once)
TRIAL_PARAMS = (
    "model_name",
    "num_epochs",
    "batch_size",
    "weight_decay",
    "warmup_ratio",
    "dropout_prob",
    "max_length",
    "seed",
    "bert",
)
NOT_IN_FINGERPRINT = ("n_trials", "workers", "storage", "artifact_store")


def search_fingerprint(params: dict) -> dict:
    """Params, input files and code a trial's result depends on: a killed search resumes only when
    they are unchanged. `tune.n_trials`, `tune.workers`, `tune.storage` and `tune.artifact_store` are
    left out: the trials already finished stay valid when they change."""
    tune = {key: value for key, value in params["tune"].items() if key not in NOT_IN_FINGERPRINT}
    return run_fingerprint(
        {
            **{key: params[key] for key in TRIAL_PARAMS},
            "tune": tune,
            "data": {"label_names": params["data"]["label_names"]},
        },
        INPUTS,
        source_files(__file__),
    )


def _search_inputs(params: dict) -> tuple:
    """The loaders, and tune's keyword arguments, from params."""
    tune = params["tune"]
    tuning.check_storage(tune["storage"], OUTPUT_DIR)  # before any work: a database outside the output is refused
    tuning.check_artifact_store(tune["artifact_store"])
    use_all_cpu_cores()
    train = read_split("data/processed/train.jsonl")
    train = stratified_subset(train, max(1, round(tune["train_fraction"] * len(train))), tune["seed"])
    config = BertConfig.from_params(params)
    device = resolve_device(config.device, key="bert.device")  # no GPU for `cuda`: fail before any work
    data = load_bert_data(config, train_split=train)
    # Untuned values come from the top level; learning_rate is always searched (schema), so a
    # `-S learning_rate=...` experiment does not re-run the search.
    base = {name: params[name] for name in tuning.TUNABLE if name not in tune["search_space"]}
    train_loader, val_loader = make_loaders(data, config, config.batch_size, device)  # re-batched per trial if searched
    arguments = dict(
        train=TrialRun(config),  # each trial: the config with its hyperparameters, through fine_tune
        base_hyperparameters=base,
        method=tune["method"],
        n_trials=tune["n_trials"],
        seed=tune["seed"],
        pruning=tune["pruning"],
        workers=tune["workers"],
        storage=tune["storage"],
        artifact_store=tune["artifact_store"],
        fingerprint=search_fingerprint(params),
        num_classes=len(params["data"]["label_names"]),
        monitor=config.monitor,
        tokenizer=data.tokenizer,
        class_weights=loss_weights(config, data),
    )
    return data, train_loader, val_loader, arguments


def work_directory(arguments: dict) -> tuple[Path, tuple[str, ...]]:
    """Where the search runs: .resume/tune/<key of its fingerprint>/ (src/checkpoints/resume_dir.py), outside
    the DVC output, so DVC's run-cache covers the stage and a rerun after a kill continues the study there.
    A SQLite ``tune.storage`` named inside models/tune moves into it too (``arguments`` is updated). Returns
    the directory and the names of the study's files, which stay out of the published models/tune."""
    work = resume_dir("tune", arguments["fingerprint"])
    study_files = (f"{tuning.JOURNAL_NAME}*",)
    storage = arguments["storage"]
    if storage and storage.startswith("sqlite:///"):  # check_storage: a file inside models/tune
        database = Path(storage.removeprefix("sqlite:///")).resolve()
        relative = database.relative_to((Path.cwd() / OUTPUT_DIR).resolve())
        arguments["storage"] = f"sqlite:///{(work.resolve() / relative).as_posix()}"
        study_files += (f"{relative.as_posix()}*",)
    return work, study_files


@out_of_memory_names(("tune.search_space.batch_size", "batch_size"), eval_key="bert.eval_batch_size")
def main(params: dict) -> None:
    data, train_loader, val_loader, arguments = _search_inputs(params)
    work, study_files = work_directory(arguments)
    results = tuning.tune(
        train_loader, val_loader, work, params["tune"]["search_space"], params["bert"]["device"], **arguments
    )
    best_trial = next(t for t in results["trials"] if t["trial"] == results["best_trial"])
    write_json(
        METRICS_PATH,
        {
            "trials": len(results["trials"]),
            "pruned": results["pruned"],
            "train_rows": len(data.train),
            "best_trial": best_trial["trial"],
            "best_hyperparameters": results["best_hyperparameters"],
            "val": {key: best_trial[f"val_{key}"] for key in ("loss", "accuracy", "macro_recall", "macro_f1")},
        },
    )
    publish(work, OUTPUT_DIR, leave_out=RESUME_STATE + study_files)  # last: the trials and results into models/tune


@out_of_memory_names(("tune.search_space.batch_size", "batch_size"), eval_key="bert.eval_batch_size")
def join(params: dict) -> None:
    """`--worker`: run `tune.workers` more workers on this machine for the search in `tune.storage`."""
    _, train_loader, val_loader, arguments = _search_inputs(params)
    work, _ = work_directory(arguments)  # the stage's own, for the same params, data and code
    tuning.join_search(
        train_loader, val_loader, work, params["tune"]["search_space"], params["bert"]["device"], **arguments
    )


if __name__ == "__main__":
    run_stage(join if "--worker" in sys.argv[1:] else main, argv=sys.argv[1:], flags=("--worker",))

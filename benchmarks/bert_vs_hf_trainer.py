"""train_bert against the stock Hugging Face Trainer: same model, data, hyperparameters, machine, seeds.

Prints JSON: for each side and seed the wall time (a fresh process from launch to exit: Python
start-up, imports, model load, tokenisation, training, validation and, for ours, the per-epoch
checkpoint and the export), end-to-end samples/s and the validation metrics; then the means over
the seeds, the speed-up (the Trainer's mean wall time over ours) and the macro-recall difference.

    HF_HOME=../shared/hf HF_HUB_OFFLINE=1 python -m benchmarks.bert_vs_hf_trainer \
        --train-samples 4000 --epochs 1 --seeds 42 43 44

Hyperparameters default to params.yaml's (model_name, batch_size, learning_rate, weight_decay,
warmup_ratio, dropout_prob, max_length); flags override them. Both sides train on the same
stratified subset of data/processed/train.jsonl (picked with data seed 0, whatever the training
seed) and score the full validation split; run `dvc repro preprocess` first.

- **Ours** runs train_bert's own code: the stage's tokenisation and loaders (length-grouped,
  padded per batch), its loss (``bert.class_weights`` from params.yaml: balanced by default),
  ``train_model`` with its per-epoch checkpoint, validation and export.
- **The Trainer** gets its default ``TrainingArguments`` except what the work itself fixes: epochs,
  batch size, learning rate, seed, and the pipeline's weight decay, warmup ratio and dropout
  (without them it would train another model). It tokenises once and pads per batch
  (``DataCollatorWithPadding``), as a user would, and scores validation with ``predict``. It is
  spared its default step checkpoints (``save_strategy="no"``), which ours does not skip.

Like for like: the Trainer gets the precision train_bert uses on this machine (``bf16=True`` where
the stage runs bf16 autocast: a GPU, a CPU with AMX; fp32 elsewhere), and the class weighting, which
the Trainer's default loss lacks, is reported apart: ``ours_unweighted`` (``dvc_repro_unweighted``
end to end) is the stage with ``bert.class_weights: null``; ``like_for_like`` compares it with the
Trainer and ``class_weights_effect`` with the weighted stage. ``--precision fp32`` / ``bf16`` force
ours (and so the Trainer) to one precision; ``--hf-bf16`` gives the Trainer ``bf16=True`` regardless.

``--test`` also scores the test split once per run (the honest report; nothing is chosen on it).
The ablation flags (``--pool-batches``, ``--schedule-epochs``, ``--no-class-weights``,
``--stock-model``) change ours only, to find where quality goes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.processes import timed_run

ROOT = Path(__file__).resolve().parents[1]
# ours_unweighted: ours with an unweighted loss, as the Trainer's (the like-for-like pair)
SIDES = ("ours", "ours_unweighted", "hf_trainer")
# --end-to-end: the stage through DVC (and unweighted), through its launcher, the stock Trainer as a plain script
END_TO_END_SIDES = ("dvc_repro", "dvc_repro_unweighted", "launch", "stock_trainer")
STAGE_OUTPUTS = ("models/bert", "dvclive/train_bert", "metrics/bert")  # removed before each run (models/bert persists)
# the environment this benchmark was started with, before importing src set the project's CPU settings: the
# stock Trainer gets the user's environment, the stage sets its own
LAUNCH_ENV = dict(os.environ)


def _split(args, name: str):
    from src.data.preprocess import read_split, stratified_subset

    split = read_split(Path(args.data_dir) / f"{name}.jsonl")
    return stratified_subset(split, args.train_samples, 0) if name == "train" else split


def _metrics(labels, predictions) -> dict:
    from src.scoring.metrics import classification_metrics

    return {k: round(v, 4) for k, v in classification_metrics(labels, predictions).items()}


class _StopAfterEpochs(Exception):
    pass


def run_ours(args, seed: int, device) -> dict:
    """train_bert's path: bert_run's tokenisation and loaders, then train_model into a temp dir."""
    from src.core.params import load_params
    from src.models.bert_data import TokenizedTweets, make_bert_loader
    from src.models.bert_model import load_tokenizer
    from src.models.training import evaluate, train_model
    from src.recipes.bert_config import BertConfig
    from src.recipes.bert_run import BertData, make_loaders, run_options

    if args.stock_model:  # ablation: transformers' default attention and dropout, every token in the last layer
        from src.models import bert_model
        from src.models import training as bert_training

        bert_training.register_attention = lambda: None
        bert_training.use_rand_dropout = lambda model: model
        bert_model.compute_first_token_only_in_last_layer = lambda model: False
    params = load_params(ROOT / "params.yaml")
    params.update(model_name=args.model, batch_size=args.batch_size, max_length=args.max_length, seed=seed)
    params["bert"].update(mixed_precision=args.precision != "fp32", device=args.device)
    if args.no_class_weights:  # ablation: the unweighted loss, as the Trainer's
        params["bert"]["class_weights"] = None
    if args.precision == "bf16":  # ablation: bf16 autocast on this CPU even where it is not the faster choice
        from src.core import runtime

        runtime.cpu_has_amx_bf16 = lambda: True
    tokenizer = load_tokenizer(args.model)
    tokenizer.model_max_length = args.max_length
    train, val = _split(args, "train"), _split(args, "val")
    data = BertData(
        tokenizer,
        TokenizedTweets(train.texts, train.labels, tokenizer, args.max_length),
        TokenizedTweets(val.texts, val.labels, tokenizer, args.max_length),
    )
    config = BertConfig.from_params(params)
    train_loader, val_loader = make_loaders(data, config, args.batch_size, device)
    if args.pool_batches is not None:  # ablation: another length-grouping pool
        from torch.utils.data import DataLoader

        from src.data.batching import BucketBatchSampler

        sampler = BucketBatchSampler(data.train.lengths(), args.batch_size, seed=seed, pool_batches=args.pool_batches)
        train_loader = DataLoader(data.train, batch_sampler=sampler, collate_fn=train_loader.collate_fn)
    epochs = args.schedule_epochs or args.epochs
    epoch_metrics = []

    def stop_after_epochs(epoch: int, metrics: dict) -> None:
        epoch_metrics.append(metrics)
        if epoch == args.epochs and epochs > args.epochs:  # ablation: the longer schedule, cut short
            raise _StopAfterEpochs

    options = run_options(config, data)
    with tempfile.TemporaryDirectory() as model_dir:
        try:
            model, _ = train_model(
                train_loader,
                val_loader,
                model_dir,
                epochs,
                args.lr,
                args.weight_decay,
                args.warmup_ratio,
                device,
                dropout_prob=args.dropout,
                seed=seed,
                progress=False,
                on_epoch_end=stop_after_epochs,
                **options,
            )
        except _StopAfterEpochs:
            model = None
        result = {
            "val_" + k.removeprefix("val_"): round(v, 4)
            for k, v in epoch_metrics[-1].items()
            if k in ("val_accuracy", "val_macro_recall", "val_macro_f1")
        }
        if args.test and model is not None:
            test = _split(args, "test")
            loader = make_bert_loader(
                TokenizedTweets(test.texts, test.labels, tokenizer, args.max_length),
                params["bert"]["eval_batch_size"],
                shuffle=False,
            )
            _, _, predictions = evaluate(model, loader, device, mixed_precision=options["mixed_precision"])
            result.update({f"test_{k}": v for k, v in _metrics(test.labels, predictions).items()})
    return result


def run_hf_trainer(args, seed: int, device) -> dict:
    """The stock Trainer on the same work (benchmarks/stock_trainer.py; see its docstring)."""
    from benchmarks.stock_trainer import train_and_score

    args = argparse.Namespace(**{**vars(args), "seed": seed})
    train, val = _split(args, "train"), _split(args, "val")
    scored = {"val": (val.texts, val.labels)}
    if args.test:
        test = _split(args, "test")
        scored["test"] = (test.texts, test.labels)
    return train_and_score(args, (train.texts, train.labels), scored, bf16=trainer_bf16(args, device))


def stage_bf16(args, device) -> bool:
    """Whether train_bert's code runs bf16 autocast here (a GPU, a CPU with AMX, or ``--precision bf16``)."""
    from src.core.runtime import autocast_dtype

    return args.precision == "bf16" or (args.precision == "auto" and autocast_dtype(device, True) is not None)


def trainer_bf16(args, device) -> bool:
    """The Trainer's ``bf16``: the stage's precision, like for like (``--hf-bf16`` forces it on)."""
    return stage_bf16(args, device) or args.hf_bf16


def run_side(args) -> None:
    """One side, one seed, in this (fresh) process: prints its result as one JSON line."""
    from src.core.runtime import resolve_device, use_all_cpu_cores

    use_all_cpu_cores()
    device = resolve_device(args.device)
    if args.side == "ours_unweighted":
        args.no_class_weights = True
    run = run_hf_trainer if args.side == "hf_trainer" else run_ours
    print(json.dumps(run(args, args.seed, device)))


def _stage_val_scores(work: Path) -> dict:
    """The stage's validation figures at its best epoch (metrics/bert/train.json, this and older layouts)."""
    summary = json.loads((work / "metrics/bert/train.json").read_text())
    val = summary.get("val") or {k.removeprefix("val_"): v for k, v in summary.items() if k.startswith("val_")}
    return {f"val_{k}": round(val[k], 4) for k in ("accuracy", "macro_recall")}


def _row(seed: int, wall: float, n_train: int, epochs: int) -> dict:
    return {"seed": seed, "wall_s": round(wall, 1), "samples_per_s": round(n_train * epochs / wall, 1)}


def end_to_end(args, n_train: int) -> dict[str, list[dict]]:
    """Each side in a fresh process as a user runs it, timed from launch to exit (see --end-to-end)."""
    from benchmarks.stage_copy import copy_repository, set_params
    from src.core.params import load_params
    from src.core.runtime import resolve_device

    bf16 = trainer_bf16(args, resolve_device(args.device))
    class_weights = load_params(ROOT / "params.yaml")["bert"]["class_weights"]
    class_weights = "null" if class_weights is None else class_weights

    hyperparameters = {
        "model_name": args.model,
        "num_epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "weight_decay": args.weight_decay,
        "warmup_ratio": args.warmup_ratio,
        "dropout_prob": args.dropout,
        "max_length": args.max_length,
    }
    env = {k: v for k, v in LAUNCH_ENV.items() if k != "PYTHONPATH"}
    if env.get("HF_HOME"):  # the copy lives elsewhere: a relative cache path must still find the cache
        env["HF_HOME"] = str(Path(env["HF_HOME"]).resolve())
    work = Path(tempfile.mkdtemp(prefix="bert_vs_hf_trainer_"))
    runs: dict[str, list[dict]] = {side: [] for side in args.sides}
    try:
        overrides = [f"{k}={v}" for k, v in hyperparameters.items()]
        copy_repository(work, args.train_samples, overrides, rev=args.rev, data_dir=Path(args.data_dir))
        for seed in args.seeds:  # interleaved, so that a drift in the machine's speed hits every side alike
            for side in args.sides:
                if side == "stock_trainer":
                    command = [sys.executable, str(ROOT / "benchmarks/stock_trainer.py"), "--seed", str(seed)]
                    command += ["--train", "data/processed/train.jsonl", "--val", "data/processed/val.jsonl"]
                    command += ["--model", args.model, "--epochs", str(args.epochs)]
                    command += ["--batch-size", str(args.batch_size), "--lr", str(args.lr)]
                    command += ["--weight-decay", str(args.weight_decay), "--warmup-ratio", str(args.warmup_ratio)]
                    command += ["--dropout", str(args.dropout), "--max-length", str(args.max_length)]
                    command += ["--bf16"] if bf16 else []  # the stage's precision on this machine
                else:
                    weights = "null" if side == "dvc_repro_unweighted" else class_weights
                    set_params(work, [f"seed={seed}", f"bert.class_weights={weights}"])
                    for out in STAGE_OUTPUTS:
                        shutil.rmtree(work / out, ignore_errors=True)
                    command = (
                        ["dvc", "repro", "-s", "-f", "train_bert"]
                        if side == "dvc_repro"
                        else [sys.executable, "-m", "src.launch", "stages.train_bert"]
                    )
                load = round(os.getloadavg()[0], 2)
                wall, stdout = timed_run(command, work, f"{side} seed {seed}", env)
                scores = (
                    json.loads(stdout.strip().splitlines()[-1]) if side == "stock_trainer" else _stage_val_scores(work)
                )
                row = _row(seed, wall, n_train, args.epochs)
                runs[side].append({**row, **{k: v for k, v in scores.items() if not k.endswith("macro_f1")}})
                runs[side][-1]["loadavg_1min_before"] = load
                print(f"{side} seed {seed}: {runs[side][-1]}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return runs


def in_processes(args, n_train: int) -> dict[str, list[dict]]:
    """Each side and seed in a fresh process running this module's --side code (see the module docstring)."""
    forwarded = sys.argv[1:]
    runs: dict[str, list[dict]] = {side: [] for side in args.sides}
    for seed in args.seeds:  # interleaved, so that a drift in the machine's speed hits both sides alike
        for side in args.sides:
            command = [sys.executable, "-m", "benchmarks.bert_vs_hf_trainer", *forwarded, "--side", side]
            wall, stdout = timed_run([*command, "--seed", str(seed)], ROOT, f"{side} seed {seed}")
            result = json.loads(stdout.strip().splitlines()[-1])
            runs[side].append({**_row(seed, wall, n_train, args.epochs), **result})
            print(f"{side} seed {seed}: {runs[side][-1]}", file=sys.stderr, flush=True)
    return runs


def _mean(rows: list[dict], key: str) -> float:
    return round(statistics.fmean(row[key] for row in rows), 4)


def main() -> None:
    from src.core.params import load_params

    params = load_params(ROOT / "params.yaml")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=params["model_name"])
    parser.add_argument("--train-samples", type=int, default=4000, help="0: the whole train split")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=params["batch_size"])
    parser.add_argument("--lr", type=float, default=params["learning_rate"])
    parser.add_argument("--weight-decay", type=float, default=params["weight_decay"])
    parser.add_argument("--warmup-ratio", type=float, default=params["warmup_ratio"])
    parser.add_argument("--dropout", type=float, default=params["dropout_prob"])
    parser.add_argument("--max-length", type=int, default=params["max_length"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--sides", nargs="+", choices=SIDES + END_TO_END_SIDES, help="default: every side of the mode")
    parser.add_argument(
        "--end-to-end",
        action="store_true",
        help="time the stage as a user runs it (dvc repro, src.launch) beside benchmarks/stock_trainer.py",
    )
    parser.add_argument("--rev", help="--end-to-end: the stage's code at this git revision (a bisect)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="ours: auto = train_bert's choice; fp32; bf16 (autocast on a CPU too: an ablation)",
    )
    parser.add_argument("--hf-bf16", action="store_true", help="bf16=True for the Trainer on a CPU too")
    parser.add_argument("--test", action="store_true", help="also score the test split (once, for the report)")
    parser.add_argument("--pool-batches", type=int, default=None, help="ablation: ours' length-grouping pool")
    parser.add_argument(
        "--schedule-epochs",
        type=int,
        default=None,
        help="ablation: ours' LR schedule spans this many epochs, training stops after --epochs",
    )
    parser.add_argument(
        "--no-class-weights",
        action="store_true",
        help="ablation: ours with an unweighted loss (params.yaml: bert.class_weights)",
    )
    parser.add_argument(
        "--stock-model",
        action="store_true",
        help="ablation: ours without its CPU speed-ups (eager attention, rand dropout, first token)",
    )
    parser.add_argument("--data-dir", default=str(ROOT / "data/processed"))
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # internal: one run in this process
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_samples == 0:
        args.train_samples = None
    if args.side:
        return run_side(args)
    sides = END_TO_END_SIDES if args.end_to_end else SIDES
    args.sides = args.sides or list(sides)
    if not set(args.sides) <= set(sides):
        parser.error(f"--sides: {'--end-to-end takes' if args.end_to_end else 'takes'} {', '.join(sides)}")

    import torch

    from src.core.runtime import cpu_has_amx_bf16, resolve_device

    device = resolve_device(args.device)
    n_train = len(_split(args, "train"))  # the subset both modes train on (stage_copy takes the same one)
    runs = end_to_end(args, n_train) if args.end_to_end else in_processes(args, n_train)
    means = {side: {key: _mean(rows, key) for key in rows[0] if key != "seed"} for side, rows in runs.items()}
    stock = "stock_trainer" if args.end_to_end else "hf_trainer"
    summary = {}
    for side in (s for s in runs if s != stock and stock in runs):  # each of ours against the Trainer
        summary[side] = {
            "speedup": round(means[stock]["wall_s"] / means[side]["wall_s"], 2),
            "val_macro_recall_delta": round(means[side]["val_macro_recall"] - means[stock]["val_macro_recall"], 4),
        }
    weighted, unweighted = ("dvc_repro", "dvc_repro_unweighted") if args.end_to_end else ("ours", "ours_unweighted")
    if weighted in means and unweighted in means:  # what the balanced loss alone changes, reported apart
        summary["class_weights_effect"] = {
            "val_macro_recall_delta": round(
                means[weighted]["val_macro_recall"] - means[unweighted]["val_macro_recall"], 4
            ),
            "wall_s_ratio": round(means[weighted]["wall_s"] / means[unweighted]["wall_s"], 2),
        }
    if not args.end_to_end and "ours" in summary:  # the layout earlier results were committed in
        summary.update(summary.pop("ours"))
        if "ours_unweighted" in summary:
            summary["like_for_like"] = summary.pop("ours_unweighted")
    ours_bf16 = stage_bf16(args, device)
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name(0)
                if device.type == "cuda"
                else f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
                f"AMX: {cpu_has_amx_bf16()})",
                "torch": torch.__version__,
                "model": args.model,
                "train_samples": n_train,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "learning_rate": args.lr,
                "seeds": args.seeds,
                **({"mode": "end to end", "rev": args.rev or "work tree"} if args.end_to_end else {}),
                "loadavg_1min_after": round(os.getloadavg()[0], 2),
                "precision": {
                    "ours": "bf16" if ours_bf16 else "fp32",
                    "hf_trainer": "bf16" if trainer_bf16(args, device) else "fp32",
                },
                "class_weights": {
                    "ours": None if args.no_class_weights else params["bert"]["class_weights"],
                    "ours_unweighted": None,
                    "hf_trainer": None,
                },
                **(
                    {
                        "ablation": {
                            "pool_batches": args.pool_batches,
                            "schedule_epochs": args.schedule_epochs,
                            "stock_model": args.stock_model,
                        }
                    }
                    if args.pool_batches is not None or args.schedule_epochs or args.stock_model
                    else {}
                ),
                "runs": runs,
                "mean": means,
                **summary,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

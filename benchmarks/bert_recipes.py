"""Which train_bert recipe to ship: candidates screened on validation over seeds, then one report on test.

Screen (the default): every candidate trains train_bert's own code (tokenisation, loaders, loss,
``train_model``) on the same stratified subset of train, once per seed, each run in a fresh
process. Each is scored on two held-out sets that nothing is selected on during training:

- ``val``: TweetEval's validation split (2,000 tweets of the SemEval-2016 dev set);
- ``holdout``: a stratified slice of train that the subset leaves out (``--holdout-samples``).

The selection score is the mean over seeds of the mean of the two macro recalls: 3x the tweets of
validation alone, so about 0.6x its standard error, and averaged over seeds so one lucky
initialisation does not decide. Macro recall does not depend on a set's class balance, so test's
larger negative share (32% against 16%) does not by itself favour any candidate.

    HF_HOME=../shared/hf HF_HUB_OFFLINE=1 python -m benchmarks.bert_recipes \
        --train-samples 8000 --seeds 42 43 44 --out bert_recipes.json

``--test``: the once-on-test report. The recipe in params.yaml (train_bert's defaults) and the
stock Hugging Face ``Trainer`` (its default ``TrainingArguments``: learning rate 5e-5, batch 8, no
warmup, no weight decay; unweighted loss), given the same number of epochs, both on the whole train
split, each scored once on validation and test:

    HF_HOME=../shared/hf HF_HUB_OFFLINE=1 python -m benchmarks.bert_recipes --test --seeds 42

Prints JSON; with ``--out`` it also writes it there after every run, so a long screen that is
stopped keeps what it measured. Needs data/processed (``dvc repro preprocess``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.processes import timed_run

ROOT = Path(__file__).resolve().parents[1]
# under params.yaml's `bert:`; the rest are top level
BERT_KEYS = (
    "class_weights",
    "label_smoothing",
    "mixed_precision",
    "layer_decay",
    "reinit_layers",
    "ema_decay",
    "rdrop_alpha",
    "pooling",
)

# screen-only switches, not params keys: fine-tune with the word-embedding matrix frozen; train the
# head (and the re-initialised top layer) alone through the warm-up, then everything
FREEZE_WORDS = "freeze_word_embeddings"
HEAD_FIRST = "train_head_first"
# name -> params.yaml overrides; "shipped" is whatever params.yaml holds
CANDIDATES = {
    "shipped": {},
    "balanced_lr2e-5": {"class_weights": "balanced", "learning_rate": 2e-5},
    "unweighted_lr2e-5": {"class_weights": None, "learning_rate": 2e-5},
    "sqrt_lr2e-5": {"class_weights": "sqrt", "learning_rate": 2e-5},
    "balanced_lr5e-5": {"class_weights": "balanced", "learning_rate": 5e-5},
    "unweighted_lr5e-5": {"class_weights": None, "learning_rate": 5e-5},
    "sqrt_lr5e-5": {"class_weights": "sqrt", "learning_rate": 5e-5},
    "sqrt_lr5e-5_smooth0.1": {"class_weights": "sqrt", "learning_rate": 5e-5, "label_smoothing": 0.1},
    "sqrt_lr1e-4": {"class_weights": "sqrt", "learning_rate": 1e-4},
    "sqrt_lr5e-5_2ep": {"class_weights": "sqrt", "learning_rate": 5e-5, "num_epochs": 2},
    "shipped_fp32": {"mixed_precision": False},  # the shipped recipe without bf16 autocast (speed on AMX CPUs)
    "sqrt_lr5e-5_3ep": {"class_weights": "sqrt", "learning_rate": 5e-5, "num_epochs": 3},
    "sqrt_lr1e-4_llrd0.8": {"class_weights": "sqrt", "learning_rate": 1e-4, "layer_decay": 0.8},
    "sqrt_lr5e-5_reinit1": {"class_weights": "sqrt", "learning_rate": 5e-5, "reinit_layers": 1},
    "sqrt_lr5e-5_reinit0": {"class_weights": "sqrt", "learning_rate": 5e-5, "reinit_layers": 0},  # before the re-init
    "unweighted_lr5e-5_2ep": {"class_weights": None, "learning_rate": 5e-5, "num_epochs": 2},
    # an average over about the last 40% of a 4,000-tweet epoch's 250 steps (1 / (1 - decay) = 100 steps)
    "sqrt_lr5e-5_ema0.99": {"class_weights": "sqrt", "learning_rate": 5e-5, "ema_decay": 0.99},
    # R-Drop on the re-init recipe (params.yaml's since the second screen); alpha as in its GLUE runs
    "sqrt_lr5e-5_reinit1_rdrop0.5": {
        "class_weights": "sqrt",
        "learning_rate": 5e-5,
        "reinit_layers": 1,
        "rdrop_alpha": 0.5,
    },
    "sqrt_lr5e-5_reinit1_rdrop1": {
        "class_weights": "sqrt",
        "learning_rate": 5e-5,
        "reinit_layers": 1,
        "rdrop_alpha": 1.0,
    },
    # the classifier on the mean token, as sentence-transformers trained all-MiniLM-L6-v2, rather than on
    # [CLS] through a pooler that its sentence training never used; with and without the re-initialised top layer
    "sqrt_lr5e-5_reinit1_mean": {"class_weights": "sqrt", "learning_rate": 5e-5, "reinit_layers": 1, "pooling": "mean"},
    "sqrt_lr5e-5_reinit0_mean": {"class_weights": "sqrt", "learning_rate": 5e-5, "reinit_layers": 0, "pooling": "mean"},
    # the shipped recipe with the word-embedding matrix frozen (not a params key: see freeze_word_embeddings)
    "shipped_frozen_words": {FREEZE_WORDS: True},
    # the shipped recipe exporting a weight average at a full-split epoch's horizon (2,721 steps at batch
    # 16): 1 / (1 - decay) = 500 and 1,000 steps, where the 4,000-tweet screen's 0.99 averaged in warm-up
    "shipped_ema0.998": {"ema_decay": 0.998},
    "shipped_ema0.999": {"ema_decay": 0.999},
    # the shipped recipe, the pretrained layers frozen through the warm-up (not a params key: see train_head_first)
    "shipped_head_first": {HEAD_FIRST: True},
    # the two choices made on 4,000-tweet subsets only, asked again on the full split: the loss
    # unweighted, and the learning rate tune's search picks (and the BERT fine-tuning guide's 2e-5)
    "shipped_unweighted": {"class_weights": None},
    "shipped_lr3e-5": {"learning_rate": 3e-5},
    "shipped_lr2e-5": {"learning_rate": 2e-5},
}
# the stock Trainer's defaults (transformers' TrainingArguments), for the test report
TRAINER_DEFAULTS = {"lr": 5e-5, "batch_size": 8, "weight_decay": 0.0, "warmup_ratio": 0.0, "dropout": 0.1}


def screen_splits(data_dir: Path, train_samples: int | None, holdout_samples: int):
    """(train subset, holdout): disjoint stratified slices of train, picked with data seed 0 whatever the
    training seed, so every candidate and seed sees the same tweets."""
    from sklearn.model_selection import train_test_split

    from src.data.preprocess import Split, read_split

    train = read_split(data_dir / "train.jsonl")
    rest, holdout_idx = train_test_split(
        list(range(len(train))), test_size=holdout_samples, stratify=train.labels, random_state=0
    )
    if train_samples is not None and train_samples < len(rest):
        rest, _ = train_test_split(
            rest, train_size=train_samples, stratify=[train.labels[i] for i in rest], random_state=0
        )

    def take(idx):
        idx = sorted(idx)
        return Split([train.texts[i] for i in idx], [train.labels[i] for i in idx])

    return take(rest), take(holdout_idx)


def freeze_word_embeddings() -> None:
    """From here on, fine_tune freezes the word-embedding matrix after building the model.

    Half of all-MiniLM-L6-v2's 22.7M parameters are its 30,522 x 384 word embeddings. Fine-tuning
    moves the rows of the words in train and leaves the rest where pretraining put them, so a word
    that only test uses (2017's topics) meets a network that has drifted away from its embedding;
    frozen, every row stays consistent with the encoder. Screened before any params key exists."""
    from src.models import training

    reinit = training.reinit_top_layers

    def reinit_then_freeze(model, n_layers):
        reinit(model, n_layers)
        model.model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)

    training.reinit_top_layers = reinit_then_freeze


def apply_overrides(params: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        (params["bert"] if key in BERT_KEYS else params)[key] = value
    return params


def train_head_first() -> None:
    """From here on, fine_tune trains the head alone through the warm-up's steps, then everything.

    Linear probing, then fine-tuning (LP-FT, Kumar et al. 2022): a random head sends large, random
    gradients into the pretrained layers while it is still learning, which distorts the features a
    shifted test set (2017's topics) needs. Here the pretrained embeddings and layers are frozen
    while the classifier, the pooler and the re-initialised top layer train through the warm-up
    (10% of the steps, ending at the peak learning rate), then they join. Screened before any
    params key exists."""
    import math

    from src.models import training

    reinit, schedule = training.reinit_top_layers, training.build_scheduler
    built: dict = {}

    def reinit_and_keep(model, n_layers):
        reinit(model, n_layers)
        built["model"], built["n_layers"] = model, n_layers

    def schedule_head_first(optimizer, total_steps, warmup_ratio):
        # after build_optimizer, which leaves out what does not require a gradient
        scheduler = schedule(optimizer, total_steps, warmup_ratio)
        base = built["model"].model.base_model
        layers = base.encoder.layer
        pretrained = [base.embeddings, *layers[: len(layers) - built["n_layers"]]]
        frozen = [p for module in pretrained for p in module.parameters() if p.requires_grad]
        for parameter in frozen:
            parameter.requires_grad_(False)  # no gradient: AdamW and the clipping skip them
        head_steps, steps_taken = math.ceil(warmup_ratio * total_steps), [0]

        def unfreeze_after_warm_up(optimizer, args, kwargs):  # a hook, so checkpoints hold no closure
            steps_taken[0] += 1
            if steps_taken[0] == head_steps:
                for parameter in frozen:
                    parameter.requires_grad_(True)

        optimizer.register_step_post_hook(unfreeze_after_warm_up)
        return scheduler

    training.reinit_top_layers, training.build_scheduler = reinit_and_keep, schedule_head_first


def _scores(model, split, tokenizer, params, device, options) -> dict:
    from src.models.bert_data import TokenizedTweets, make_bert_loader
    from src.models.training import evaluate
    from src.scoring.metrics import classification_metrics

    loader = make_bert_loader(
        TokenizedTweets(split.texts, split.labels, tokenizer, params["max_length"]),
        params["bert"]["eval_batch_size"],
        shuffle=False,
    )
    _, _, predictions = evaluate(model, loader, device, mixed_precision=options["mixed_precision"])
    return {k: round(v, 4) for k, v in classification_metrics(split.labels, predictions).items()}


def run_recipe(args, overrides: dict, seed: int) -> dict:
    """One candidate, one seed, in this process: train_bert's code on the screen's train subset."""
    from src.core.params import load_params
    from src.core.runtime import resolve_device
    from src.data.preprocess import read_split
    from src.models.bert_data import TokenizedTweets
    from src.models.bert_model import load_tokenizer
    from src.models.training import train_model
    from src.recipes.bert_config import BertConfig
    from src.recipes.bert_run import BertData, make_loaders, run_options

    overrides = dict(overrides)
    if overrides.pop(FREEZE_WORDS, False):
        freeze_word_embeddings()
    if overrides.pop(HEAD_FIRST, False):
        train_head_first()
    params = apply_overrides(load_params(ROOT / "params.yaml"), overrides)
    params["seed"] = seed
    if args.model:
        params["model_name"] = args.model
    device = resolve_device(params["bert"]["device"])
    data_dir = Path(args.data_dir)
    if args.test:
        train, held_out = read_split(data_dir / "train.jsonl"), {"test": read_split(data_dir / "test.jsonl")}
    else:
        train, holdout = screen_splits(data_dir, args.train_samples, args.holdout_samples)
        held_out = {"holdout": holdout}
    val = read_split(data_dir / "val.jsonl")
    tokenizer = load_tokenizer(params["model_name"])
    tokenizer.model_max_length = params["max_length"]
    data = BertData(
        tokenizer,
        TokenizedTweets(train.texts, train.labels, tokenizer, params["max_length"]),
        TokenizedTweets(val.texts, val.labels, tokenizer, params["max_length"]),
    )
    config = BertConfig.from_params(params)
    train_loader, val_loader = make_loaders(data, config, config.batch_size, device)
    options = run_options(config, data)
    with tempfile.TemporaryDirectory() as model_dir:
        model, _ = train_model(
            train_loader,
            val_loader,
            model_dir,
            params["num_epochs"],
            params["learning_rate"],
            params["weight_decay"],
            params["warmup_ratio"],
            device,
            dropout_prob=params["dropout_prob"],
            seed=seed,
            progress=False,
            **options,
        )
    result = {f"val_{k}": v for k, v in _scores(model, val, tokenizer, params, device, options).items()}
    for name, split in held_out.items():
        result.update({f"{name}_{k}": v for k, v in _scores(model, split, tokenizer, params, device, options).items()})
    return result


def run_stock_trainer(args, seed: int) -> dict:
    """The stock Trainer (defaults but the epochs) on the whole train split, scored on val and test."""
    from benchmarks.bert_vs_hf_trainer import run_hf_trainer
    from src.core.params import load_params
    from src.core.runtime import resolve_device

    params = load_params(ROOT / "params.yaml")
    trainer_args = argparse.Namespace(
        model=args.model or params["model_name"],
        max_length=params["max_length"],
        epochs=params["num_epochs"],
        train_samples=None,
        data_dir=args.data_dir,
        test=True,
        hf_bf16=False,
        **TRAINER_DEFAULTS,
    )
    return run_hf_trainer(trainer_args, seed, resolve_device("auto"))


def _summary(runs: list[dict]) -> dict:
    summary = {}
    for key in runs[0]:
        if key.endswith(("macro_recall", "accuracy", "macro_f1", "wall_s")):
            values = [run[key] for run in runs]
            summary[key] = {
                "mean": round(statistics.fmean(values), 4),
                "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
            }
    if "holdout_macro_recall" in runs[0]:
        summary["selection_score"] = round(
            statistics.fmean((run["val_macro_recall"] + run["holdout_macro_recall"]) / 2 for run in runs), 4
        )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--candidates",
        nargs="+",
        choices=[*sorted(CANDIDATES), "stock_trainer"],
        default=None,
        help="screen: these candidates (default: all); --test: shipped and/or stock_trainer (default: both)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--train-samples", type=int, default=8000, help="screen: train subset size (0: all)")
    parser.add_argument("--holdout-samples", type=int, default=4000, help="screen: held-out slice of train")
    parser.add_argument(
        "--test",
        action="store_true",
        help="the once-on-test report: params.yaml's recipe and the stock Trainer, whole train split",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here (after every run)")
    parser.add_argument("--data-dir", default=str(ROOT / "data/processed"))
    parser.add_argument("--model", help="default: params.yaml's model_name")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # internal: one run in this (fresh) process
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_samples == 0:
        args.train_samples = None
    if args.run:
        from src.core.runtime import use_all_cpu_cores

        use_all_cpu_cores()
        result = (
            run_stock_trainer(args, args.seed)
            if args.run == "stock_trainer"
            else run_recipe(args, CANDIDATES.get(args.run, {}), args.seed)
        )
        print(json.dumps(result))
        return

    names = (args.candidates or ["shipped", "stock_trainer"]) if args.test else (args.candidates or list(CANDIDATES))
    report = {
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "mode": "test" if args.test else "screen",
        "seeds": args.seeds,
        "train_samples": "all" if args.test else args.train_samples,
        "holdout_samples": None if args.test else args.holdout_samples,
        "candidates": {},
    }
    for name in names:
        runs = []
        for seed in args.seeds:
            forwarded = (
                ["--test"]
                if args.test
                else ["--train-samples", str(args.train_samples or 0), "--holdout-samples", str(args.holdout_samples)]
            )
            load = round(os.getloadavg()[0], 2)
            if args.model:
                forwarded += ["--model", args.model]
            command = [sys.executable, "-m", "benchmarks.bert_recipes", *forwarded, "--data-dir", args.data_dir]
            wall, stdout = timed_run([*command, "--run", name, "--seed", str(seed)], ROOT, f"{name} seed {seed}")
            runs.append(
                {
                    "seed": seed,
                    "wall_s": round(wall, 1),
                    "loadavg_1min_before": load,
                    **json.loads(stdout.strip().splitlines()[-1]),
                }
            )
            print(f"{name} seed {seed}: {runs[-1]}", file=sys.stderr, flush=True)
            overrides = CANDIDATES.get(name, TRAINER_DEFAULTS if name == "stock_trainer" else {})
            report["candidates"][name] = {"overrides": overrides, "runs": runs, **_summary(runs)}
            if args.out:
                args.out.write_text(json.dumps(report, indent=2) + "\n")
    if not args.test:
        report["chosen"] = max(report["candidates"], key=lambda n: report["candidates"][n]["selection_score"])
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Hyperparameter tuning for BERT fine-tuning: train one model per configuration, keep the best on validation.

    python -m scripts.tune --data_dir data/raw --output_dir ./tuning_results \
        --config ./config/hyperparameter_config.json

--config: JSON whose top-level keys are fixed settings (model_name, num_epochs, ... as for scripts.train,
plus method: grid | random | tpe and n_trials), and "hyperparameters": the values to try, as
{"learning_rate": [2e-5, 3e-5], ...} (every combination) or as named configurations
{"config_1": {"learning_rate": 2e-5, ...}, ...} (or a list of them).
Writes into --output_dir: config_X/ per trained configuration, tuning_results.json (every trial, the best),
best_hyperparameters.json. Configurations are scored on validation only. The tune stage runs the same
search (src.tuning.tune) with params.yaml's values.
"""

from __future__ import annotations

import argparse
import json

from src.core.errors import PipelineError


def build_parser() -> argparse.ArgumentParser:
    doc = __doc__.split("\n\n")
    parser = argparse.ArgumentParser(
        prog="python -m scripts.tune",
        description=doc[0],
        epilog="\n\n".join(doc[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data_dir", required=True, help="the data set (directory or .csv/.tsv file)")
    parser.add_argument("--output_dir", default="./tuning_results", help="default ./tuning_results")
    parser.add_argument("--config", default="./config/hyperparameter_config.json", help="JSON of settings and grid")
    return parser


def main(argv: list[str] | None = None) -> None:
    from src.core.cli import run_command

    def work() -> None:
        args = build_parser().parse_args(argv)
        from src.core.runtime import resolve_device, use_all_cpu_cores
        from src.models.training import train_model
        from src.recipes.bert_config import BertConfig
        from src.recipes.bert_files import TUNING, bert_loaders, train_options
        from src.tuning import tune

        use_all_cpu_cores()
        config, search = BertConfig.from_file(args.config, TUNING)
        if not search["hyperparameters"]:
            raise PipelineError(f'{args.config}: missing "hyperparameters" (the values to try)')
        resolve_device(config.device, key=f"{args.config}: device")  # no GPU for `cuda`: fail before any work
        # the test split, if any, is never read: configurations are scored on validation only
        tokenizer, label_names, train_loader, val_loader, _, train_labels = bert_loaders(args.data_dir, config)
        results = tune(
            train_loader,
            val_loader,
            args.output_dir,
            search["hyperparameters"],
            config.device,
            train=train_model,  # the BERT fine-tuning guide's train_model trains each configuration
            base_hyperparameters=config.hyperparameters(),
            method=search["method"],
            n_trials=search["n_trials"],
            seed=config.seed,
            **train_options(config, tokenizer, label_names, train_labels, args.data_dir),
        )
        print(
            json.dumps(
                {"output_dir": args.output_dir, "best_hyperparameters": results["best_hyperparameters"]}, indent=2
            )
        )

    run_command(work)


if __name__ == "__main__":
    main()

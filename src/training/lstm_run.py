"""The LSTM training run behind `python src/training/train_model.py` and the train_lstm stage: its options
(build_parser) and what they do (run). The command line adds GloVe downloads (--use-glove without a
built vocabulary); the stage passes the GloVe rows build_vocab aligned, so it never imports the downloader.

Train the (Bi)LSTM sentiment classifier from the command line:

    python src/training/train_model.py --data-dir data/raw --epochs 20
    python -m src.training.train_model --data-dir data/processed --use-glove --glove-corpus twitter.27B \\
        --glove-dim 25d --epochs 20 --early-stopping-patience 5

DATA (``--data-dir``): a TweetEval-layout directory, the processed directory of `dvc repro preprocess`, or
one CSV/TSV file (see src/data/data_sources.py). The vocabulary is built from its train split, or read from
``--vocab-dir`` (a `dvc repro build_vocab` output: vocab.json, and embeddings.npy used by --use-glove).
``--config FILE.json`` sets any option by its name (``batch_size``, ``learning_rate``, ``epochs``,
``output_dim``, ...), flat or as ``{"model_config": {...}, "training_config": {...}}``; options given on
the command line win. A two-class data set with ``--output-dim 1`` trains one logit with binary
cross-entropy.

Writes, in ``--checkpoint-dir``: checkpoint_epoch_X.pt and best_model.pt; in ``--output-dir``:
best_model.pt, model_config.json, vocab.json, training_history.json (and ``--metrics-file``,
``--plots-file`` when given). A rerun after a kill resumes from the checkpoints of the same run.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from src.data.data_sources import add_data_options
from src.errors import PipelineError
from src.json_files import read_json_object

log = logging.getLogger(__name__)

SCHEDULERS = ("plateau", "step", "cosine", "none")
MONITORS = ("val_loss", "val_accuracy", "val_macro_recall", "val_macro_f1")
# --config keys that are no option of their own
CONFIG_SECTIONS = ("model_config", "training_config")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python src/training/train_model.py",
        description=__doc__.split("\n\n")[1],
        epilog="\n\n".join(__doc__.split("\n\n")[3:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", required=True, help="TweetEval-layout or processed directory, or a .csv/.tsv file")
    data.add_argument("--vocab-dir", help="a built vocabulary (vocab.json, embeddings.npy) instead of building one")
    data.add_argument("--min-freq", type=int, default=2, help="building a vocabulary: keep tokens seen this often")
    data.add_argument("--max-vocab-size", type=int, default=30000, help="building a vocabulary: at most this many")
    data.add_argument("--max-length", type=int, default=128, help="tokens kept per text (default 128)")
    add_data_options(parser)  # --label-names, CSV/TSV columns and random split, --seed: as src.evaluation's

    model = parser.add_argument_group("model")
    model.add_argument("--vocab-size", type=int, help="must equal the vocabulary's size (default: that size)")
    model.add_argument("--embedding-dim", type=int, help="default: the GloVe dimension with --use-glove, else 100")
    model.add_argument("--hidden-dim", type=int, default=128)
    model.add_argument("--output-dim", type=int, help="logits: the number of classes (default), or 1 for two classes")
    model.add_argument("--n-layers", type=int, default=2)
    model.add_argument("--dropout", type=float, default=0.3)
    model.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=True)

    glove = parser.add_argument_group("GloVe embeddings")
    glove.add_argument("--use-glove", action="store_true", help="initialise the embedding with GloVe vectors")
    glove.add_argument("--glove-corpus", default="twitter.27B", help="6B | 42B | 840B | twitter.27B")
    glove.add_argument("--glove-dim", default="25d", help="e.g. 25d, 100d, 300d (or 25, 100, 300)")
    glove.add_argument("--glove-dir", default="data/glove", help="where GloVe files are downloaded and cached")
    glove.add_argument("--freeze-embeddings", action="store_true")

    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=int, default=20)
    training.add_argument("--batch-size", type=int, default=64)
    training.add_argument("--learning-rate", type=float, default=1e-3)
    training.add_argument("--weight-decay", type=float, default=1e-5)
    training.add_argument("--gradient-clip", type=float, default=1.0, help="max gradient norm (0: no clipping)")
    training.add_argument("--early-stopping-patience", type=int, default=5, help="0: no early stopping")
    training.add_argument("--scheduler", choices=SCHEDULERS, default="plateau")
    training.add_argument(
        "--monitor",
        choices=MONITORS,
        default="val_macro_recall",
        help="picks the best epoch, drives early stopping and the plateau scheduler",
    )
    training.add_argument(
        "--class-weights",
        choices=("balanced", "sqrt", "none"),
        default="none",
        help="balanced: every class weighs the same in the loss",
    )
    training.add_argument("--device", default="auto", help="auto | cpu | cuda")
    training.add_argument("--timeout-s", type=float, default=600.0, help="data-parallel collectives' time limit")

    output = parser.add_argument_group("output")
    output.add_argument("--output-dir", default="models", help="the trained model's files (default models)")
    output.add_argument("--checkpoint-dir", default="checkpoints", help="epoch checkpoints (default checkpoints)")
    output.add_argument("--max-checkpoints", type=int, default=2, help="epoch checkpoints kept (default 2)")
    output.add_argument("--metrics-file", help="also write the best epoch's validation metrics here (JSON)")
    output.add_argument("--plots-file", help="also write per-epoch rows for DVC plots here (JSON)")
    output.add_argument("--live-dir", help="also log per-step loss and per-epoch validation here with DVCLive")
    parser.add_argument("--config", help="a JSON file of option values by name (see above)")
    return parser


def _config_defaults(parser: argparse.ArgumentParser, path: str) -> dict:
    """The values of a --config JSON file by option name, type-checked as the command line would be."""
    raw = read_json_object(path)
    flat = {k: v for k, v in raw.items() if k not in CONFIG_SECTIONS}
    for section in CONFIG_SECTIONS:
        if not isinstance(raw.get(section, {}), dict):
            raise PipelineError(f"{path}: {section} must be an object")
        flat.update(raw.get(section, {}))
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config", "data_dir")}
    values = {}
    for key, value in flat.items():
        dest = key.replace("-", "_")
        action = actions.get(dest)
        if action is None:
            raise PipelineError(f"{path}: unknown key {key!r}; expected one of {', '.join(sorted(actions))}")
        if dest == "scheduler" and value is None:  # the seed's "no scheduler"
            value = "none"
        expected = action.type if action.type in (int, float) else (bool if action.nargs == 0 else None)
        wrong = (
            value is not None
            and expected is not None
            and (
                isinstance(value, bool) != (expected is bool)
                or not isinstance(value, {int: int, float: (int, float), bool: bool}[expected])
            )
        )
        if wrong or (action.choices and value not in action.choices and value is not None):
            kind = (
                f"one of {', '.join(map(str, action.choices))}"
                if action.choices
                else {int: "a whole number", float: "a number", bool: "true or false"}[expected]
            )
            raise PipelineError(f"{path}: {key} = {value!r}: expected {kind}")
        values[dest] = value
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options over --config values over the defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        parser.set_defaults(**_config_defaults(parser, args.config))
        args = parser.parse_args(argv)
    return args


def _glove_dim(value: str) -> str:
    return value if value.endswith("d") else f"{value}d"


def _input_files(args: argparse.Namespace) -> list[Path]:
    data = Path(args.data_dir)
    files = sorted(p for p in data.iterdir() if p.is_file()) if data.is_dir() else [data]
    if args.vocab_dir:
        files += [
            p for p in (Path(args.vocab_dir) / "vocab.json", Path(args.vocab_dir) / "embeddings.npy") if p.is_file()
        ]
    return files


def run(args: argparse.Namespace, glove_init=None, names: dict | None = None) -> dict:
    """Train as ``args`` say (see build_parser); returns the best epoch's metrics. Under torchrun, one
    process per GPU (or CPU slot) with ``--batch-size`` the global batch. ``names``: what data errors
    call the settings (default: the command line's flags; the train_lstm stage passes params keys)."""
    from src.runtime import resolve_device, use_all_cpu_cores
    from src.training import distributed

    use_all_cpu_cores()
    with distributed.process_group(resolve_device(args.device, key="--device"), args.timeout_s) as device:
        return _train(args, device, glove_init, names)


def _train(args: argparse.Namespace, device, glove_init, names: dict | None) -> dict:
    import numpy as np

    from src.atomic import publish_copy, write_json
    from src.data.data_sources import COMMAND_LINE_NAMES, csv_options, read_dataset
    from src.data.vocab import Vocabulary
    from src.models.lstm_data import make_loader
    from src.models.lstm_model import LSTMClassifier
    from src.runtime import seed_everything
    from src.training import create_trainer, distributed
    from src.training.class_weights import class_weights
    from src.training.history import best_epoch_metrics, epoch_rows, seed_history
    from src.training.live import DVCLiveLog
    from src.training.resume import run_fingerprint, source_files
    from src.training.trainer import check_output_dim, default_criterion

    seed_everything(args.seed)
    output_dir, checkpoint_dir = Path(args.output_dir), Path(args.checkpoint_dir)
    splits, label_names = read_dataset(
        args.data_dir, args.label_names, csv_options(args), seed=args.seed, names=names or COMMAND_LINE_NAMES
    )
    train, val = splits["train"], splits["val"]
    output_dim = args.output_dim or len(label_names)
    check_output_dim(output_dim, label_names, args.data_dir)

    embeddings = None
    if args.vocab_dir:
        vocab = Vocabulary.load(Path(args.vocab_dir) / "vocab.json")
        if args.use_glove:
            embeddings = np.load(Path(args.vocab_dir) / "embeddings.npy")
    else:
        vocab = Vocabulary.build(train.texts, args.min_freq, args.max_vocab_size)
    if args.vocab_size is not None and args.vocab_size != len(vocab):
        relation = "smaller than" if args.vocab_size < len(vocab) else "larger than"
        raise PipelineError(
            f"vocab_size = {args.vocab_size} is {relation} the vocabulary ({len(vocab)} words, built "
            f"from {args.vocab_dir or args.data_dir}): set vocab_size to {len(vocab)} or leave it out"
        )
    glove_dim = _glove_dim(args.glove_dim)
    embedding_dim = args.embedding_dim or (
        embeddings.shape[1] if embeddings is not None else int(glove_dim[:-1]) if args.use_glove else 100
    )

    train_loader = make_loader(
        train.texts, train.labels, vocab, args.batch_size, shuffle=True, seed=args.seed, max_length=args.max_length
    )
    val_loader = make_loader(val.texts, val.labels, vocab, 256, shuffle=False, max_length=args.max_length)
    model = LSTMClassifier(
        len(vocab), embedding_dim, args.hidden_dim, output_dim, args.n_layers, args.dropout, args.bidirectional
    )
    if embeddings is not None:
        model.load_pretrained_embeddings(embeddings, freeze=args.freeze_embeddings)
    elif args.use_glove:
        if glove_init is None:
            raise PipelineError(
                "--use-glove without --vocab-dir: run python src/training/train_model.py, which "
                "reads GloVe files, or pass a --vocab-dir holding embeddings.npy"
            )
        glove_init(
            model, vocab, args.glove_corpus, glove_dim, args.freeze_embeddings, cache_dir=args.glove_dir, seed=args.seed
        )
    mode = None if args.class_weights == "none" else args.class_weights
    weights = class_weights(train.labels, mode, len(label_names), "--class-weights", str(args.data_dir))

    # what shapes the result: a rerun after a kill resumes only when these are unchanged
    shaping = {
        k: v
        for k, v in vars(args).items()
        if k not in ("output_dir", "checkpoint_dir", "metrics_file", "plots_file", "live_dir", "config", "timeout_s")
    }
    trainer = create_trainer(
        model,
        train_loader,
        val_loader,
        learning_rate=args.learning_rate,
        scheduler_type=None if args.scheduler == "none" else args.scheduler,
        weight_decay=args.weight_decay,
        gradient_clip=args.gradient_clip or None,
        checkpoint_dir=checkpoint_dir,
        epochs=args.epochs,
        monitor=args.monitor,
        criterion=default_criterion(model, weights),
        # two epoch checkpoints by default: if the newest is unreadable, resume falls back to the one before
        max_checkpoints=args.max_checkpoints,
        save_best_n=1,
        device=device,
        fingerprint=run_fingerprint(
            {"lstm": shaping, "label_names": label_names, "distributed": {"world_size": distributed.world_size()}},
            _input_files(args),
            source_files(__file__),
        ),
        # rank 0 alone logs
        training_log=DVCLiveLog(args.live_dir) if args.live_dir and distributed.is_main_process() else None,
    )

    def write_model_files(published: dict) -> None:
        """Beside the new best_model.pt, what describes it; model_config.json last, naming its model
        id: until it is written, evaluate and predict report the directory as incomplete."""
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json(output_dir / "training_history.json", trainer.history)
        vocab.save(output_dir / "vocab.json")  # the model directory is self-contained for evaluation
        if output_dir.resolve() != checkpoint_dir.resolve():
            publish_copy(checkpoint_dir / "best_model.pt", output_dir / "best_model.pt")
        write_json(
            output_dir / "model_config.json",
            {
                **model.config,
                "label_names": label_names,
                "max_length": args.max_length,
                "vocab": "vocab.json",
                "weights": "best_model.pt",
                "model_id": published["model_id"],
            },
        )

    trainer.on_publish = write_model_files
    trainer.resume()  # continues a killed run with the same fingerprint; otherwise clears its checkpoints
    history = trainer.train(args.epochs, early_stopping_patience=args.early_stopping_patience or None)
    if not distributed.is_main_process():  # rank 0 writes the model directory, metrics and plots
        return {}
    if trainer.model_id is None:  # no epoch ever improved on the monitored metric (NaN losses)
        raise PipelineError(f"{checkpoint_dir}: no best model to save ({args.monitor} never improved)")
    metrics = best_epoch_metrics(seed_history(history), model)
    if args.metrics_file:
        write_json(args.metrics_file, metrics)
    if args.plots_file:
        write_json(args.plots_file, epoch_rows(seed_history(history)))
    if trainer.training_log is not None:
        trainer.training_log.close()
    return metrics

"""The LSTM recipe's settings: one frozen LstmConfig, from params.yaml or from the LSTM training guide's command line.

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
import dataclasses
from dataclasses import dataclass

from src.core.errors import PipelineError
from src.core.json_files import MAX_CONFIG_BYTES, read_json_object
from src.core.params import check_values
from src.core.params_schema import LSTM_RUN

SCHEDULERS = ("plateau", "step", "cosine", "none")
MONITORS = ("val_loss", "val_accuracy", "val_macro_recall", "val_macro_f1")
CONFIG_SECTIONS = ("model_config", "training_config")  # --config keys that are no option of their own
# where the run's files go, and how long a collective may wait: not part of what a run computes
LOCATIONS = ("output_dir", "checkpoint_dir", "metrics_file", "plots_file", "live_dir", "timeout_s")


@dataclass(frozen=True)
class LstmConfig:
    """Every setting of one LSTM training run, validated (src/core/params_schema.py's LSTM_RUN).

    ``None`` switches a feature off (gradient_clip, early_stopping_patience, scheduler, class_weights);
    ``embedding_dim`` None: the GloVe dimension with use_glove, else 100; ``output_dim`` None: one logit
    per class."""

    data_dir: str
    label_names: tuple[str, ...] | None = None
    validation_split: float = 0.1
    vocab_dir: str | None = None
    min_freq: int = 2
    max_vocab_size: int | None = 30000
    max_length: int = 128
    seed: int = 42
    vocab_size: int | None = None
    embedding_dim: int | None = None
    hidden_dim: int = 128
    output_dim: int | None = None
    n_layers: int = 2
    dropout: float = 0.3
    bidirectional: bool = True
    use_glove: bool = False
    glove_corpus: str = "twitter.27B"
    glove_dim: str = "25d"
    glove_dir: str = "data/glove"
    freeze_embeddings: bool = False
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    gradient_clip: float | None = 1.0
    early_stopping_patience: int | None = 5
    scheduler: str | None = "plateau"
    monitor: str = "val_macro_recall"
    class_weights: str | None = None
    device: str = "auto"
    timeout_s: float = 600.0
    output_dir: str = "models"
    checkpoint_dir: str = "checkpoints"
    max_checkpoints: int = 2
    metrics_file: str | None = None
    plots_file: str | None = None
    live_dir: str | None = None

    @classmethod
    def build(cls, values: dict) -> LstmConfig:
        """From values already validated, in the command line's conventions (0 or "none": off; "25": 25d)."""
        off = {"gradient_clip": 0, "early_stopping_patience": 0, "scheduler": "none", "class_weights": "none"}
        plain = {k: None if k in off and v == off[k] else v for k, v in values.items()}
        floats = {f.name for f in dataclasses.fields(cls) if str(f.type).startswith("float")}
        plain = {k: float(v) if k in floats and v is not None else v for k, v in plain.items()}
        if plain.get("label_names") is not None:
            plain["label_names"] = tuple(plain["label_names"])
        if "glove_dim" in plain and not plain["glove_dim"].endswith("d"):
            plain["glove_dim"] += "d"
        return cls(**plain)

    @classmethod
    def from_params(cls, params: dict, **run: object) -> LstmConfig:
        """params.yaml's ``lstm`` section (validated by load_params against the same definitions),
        ``data.label_names`` and ``distributed.timeout_s``; ``run``: the stage's paths and monitor."""
        lstm = params["lstm"]
        return cls.build(
            {
                **{k: v for k, v in lstm.items() if k in cls.__dataclass_fields__},
                "label_names": params["data"]["label_names"],
                "timeout_s": params["distributed"]["timeout_s"],
                **run,
            }
        )

    def shaping(self) -> dict:
        """What shapes the result, for the run fingerprint: every setting but where files go."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in LOCATIONS}


DEFAULTS = {f.name: f.default for f in dataclasses.fields(LstmConfig) if f.default is not dataclasses.MISSING}


def build_parser() -> argparse.ArgumentParser:
    """The command line's options; an option not given is absent from the result (its default is LstmConfig's)."""
    parser = argparse.ArgumentParser(
        prog="python src/training/train_model.py",
        description=__doc__.split("\n\n")[1],
        epilog="\n\n".join(__doc__.split("\n\n")[3:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", required=True, help="TweetEval-layout or processed directory, or a .csv/.tsv file")
    data.add_argument(
        "--label-names", nargs="+", help="class names in label-id order (default: mapping.txt, else the labels found)"
    )
    data.add_argument(
        "--validation-split",
        type=float,
        help="share of a CSV/TSV without a split column held out for validation (default 0.1)",
    )
    data.add_argument("--vocab-dir", help="a built vocabulary (vocab.json, embeddings.npy) instead of building one")
    data.add_argument("--min-freq", type=int, help="building a vocabulary: keep tokens seen this often (default 2)")
    data.add_argument("--max-vocab-size", type=int, help="building a vocabulary: at most this many (default 30000)")
    data.add_argument("--max-length", type=int, help="tokens kept per text (default 128)")
    data.add_argument("--seed", type=int, help="default 42")

    model = parser.add_argument_group("model")
    model.add_argument("--vocab-size", type=int, help="must equal the vocabulary's size (default: that size)")
    model.add_argument("--embedding-dim", type=int, help="default: the GloVe dimension with --use-glove, else 100")
    model.add_argument("--hidden-dim", type=int, help="default 128")
    model.add_argument("--output-dim", type=int, help="logits: the number of classes (default), or 1 for two classes")
    model.add_argument("--n-layers", type=int, help="default 2")
    model.add_argument("--dropout", type=float, help="default 0.3")
    model.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, help="default: bidirectional")

    glove = parser.add_argument_group("GloVe embeddings")
    glove.add_argument("--use-glove", action="store_true", help="initialise the embedding with GloVe vectors")
    glove.add_argument("--glove-corpus", help="6B | 42B | 840B | twitter.27B (default twitter.27B)")
    glove.add_argument("--glove-dim", help="e.g. 25d, 100d, 300d (or 25, 100, 300; default 25d)")
    glove.add_argument("--glove-dir", help="where GloVe files are downloaded and cached (default data/glove)")
    glove.add_argument("--freeze-embeddings", action="store_true")

    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=int, help="default 20")
    training.add_argument("--batch-size", type=int, help="default 64")
    training.add_argument("--learning-rate", type=float, help="default 0.001")
    training.add_argument("--weight-decay", type=float, help="default 1e-05")
    training.add_argument("--gradient-clip", type=float, help="max gradient norm (0: no clipping; default 1.0)")
    training.add_argument("--early-stopping-patience", type=int, help="0: no early stopping (default 5)")
    training.add_argument("--scheduler", choices=SCHEDULERS, help="default plateau")
    training.add_argument(
        "--monitor",
        choices=MONITORS,
        help="picks the best epoch, drives early stopping and the plateau scheduler (default val_macro_recall)",
    )
    training.add_argument(
        "--class-weights",
        choices=("balanced", "sqrt", "none"),
        help="balanced: every class weighs the same in the loss (default none)",
    )
    training.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    training.add_argument("--timeout-s", type=float, help="data-parallel collectives' time limit (default 600)")

    output = parser.add_argument_group("output")
    output.add_argument("--output-dir", help="the trained model's files (default models)")
    output.add_argument("--checkpoint-dir", help="epoch checkpoints (default checkpoints)")
    output.add_argument("--max-checkpoints", type=int, help="epoch checkpoints kept (default 2)")
    output.add_argument("--metrics-file", help="also write the best epoch's validation metrics here (JSON)")
    output.add_argument("--plots-file", help="also write per-epoch rows for DVC plots here (JSON)")
    output.add_argument("--live-dir", help="also log per-step loss and per-epoch validation here with DVCLive")
    parser.add_argument("--config", help="a JSON file of option values by name (see above)")
    return parser


def _config_file_values(path: str) -> dict:
    """A --config JSON file's values by option name (flat, or in model_config / training_config)."""
    raw = read_json_object(path, max_bytes=MAX_CONFIG_BYTES)
    flat = {k: v for k, v in raw.items() if k not in CONFIG_SECTIONS}
    for section in CONFIG_SECTIONS:
        if not isinstance(raw.get(section, {}), dict):
            raise PipelineError(f"{path}: {section} must be an object")
        flat.update(raw.get(section, {}))
    allowed = sorted(set(DEFAULTS) | {"scheduler"})
    values = {}
    for key, value in flat.items():
        name = key.replace("-", "_")
        if name not in DEFAULTS:  # data_dir too: the command line names the data
            raise PipelineError(f"{path}: unknown key {key!r}; expected one of {', '.join(allowed)}")
        values[name] = value
    return values


def parse_args(argv: list[str] | None = None) -> LstmConfig:
    """Command-line options over --config values over LstmConfig's defaults, validated once: an error
    names the option as written (``--hidden-dim``) or the config file and its key."""
    given = vars(build_parser().parse_args(argv))
    config_file = given.pop("config", None)
    from_file = _config_file_values(config_file) if config_file else {}

    def written(path: list) -> str:
        key = str(path[0]) if path else ""
        shown = f"{config_file}: {key}" if key in from_file and key not in given else f"--{key.replace('_', '-')}"
        return ".".join([shown, *map(str, path[1:])])

    values = check_values({**DEFAULTS, **from_file, **given}, LSTM_RUN, "", written)
    return LstmConfig.build(values)

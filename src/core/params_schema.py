"""JSON Schema for params.yaml. Every key is declared: an unknown key is an error, not a silent no-op."""

HEX64 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}
POSITIVE_INT = {"type": "integer", "minimum": 1}
# Upper bounds on sizes: far above any setting that trains on one machine, low enough that a typo
# (an extra zero or three) is an error naming the key rather than an allocation that never ends.
MAX_BATCH_SIZE = 1 << 16
MAX_UNITS = 1 << 14  # hidden units, embedding dimensions, logits
MAX_LAYERS = 64
MAX_EPOCHS = 10_000
MAX_TRIALS = 10_000
MAX_PROCESSES = 1024  # tune workers, data-parallel processes, machines, DataLoader workers
MAX_LENGTH = 4096  # tokens kept per tweet


def positive_int(maximum: int) -> dict:
    return {"type": "integer", "minimum": 1, "maximum": maximum}


BATCH_SIZE = positive_int(MAX_BATCH_SIZE)
EPOCHS = positive_int(MAX_EPOCHS)
UNITS = positive_int(MAX_UNITS)
SEED = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
# Names that become paths (src/core/paths.py checks them again where they are used); \Z, not $: $ also
# matches before a final newline. One file name: no '/', '\', control characters, not '.' or '..':
FILE_NAME = {
    "type": "string",
    "pattern": r"^(?!\.{1,2}\Z)[^/\\\x00-\x1f]+\Z",
    "description": "a plain file name (no '/', '\\', '..' or control characters)",
}
# a path inside the repository: relative, no '..' component, no '~', '\' or control characters
REPO_PATH = {
    "type": "string",
    "pattern": r"^(?![/~])(?!(.*/)?\.\.(/|\Z))[^\\\x00-\x1f]+\Z",
    "description": "a relative path inside the repository (not absolute, no '..', '~' or '\\')",
}
# a label name: no surrounding whitespace, not all digits (those are label ids), one line
LABEL_NAME = {
    "type": "string",
    "pattern": r"^(?![0-9]+\Z)[^\s](?:[^\x00-\x1f]*[^\s])?\Z",
    "description": "a label name: not all digits, no surrounding spaces, one line",
}

LABEL_NAMES = {"type": "array", "items": LABEL_NAME, "minItems": 2, "uniqueItems": True}
MONITOR = {"enum": ["val_loss", "val_accuracy", "val_macro_recall", "val_macro_f1"]}


def _section(properties: dict, required: list[str] | None = None) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


DATA = _section(
    {
        "base_url": {"type": "string", "pattern": "^(https?|file)://.+/$"},
        "files": {"type": "array", "items": FILE_NAME, "minItems": 1, "uniqueItems": True},
        "sha256": {"type": "object", "propertyNames": FILE_NAME, "additionalProperties": HEX64},
        "input": REPO_PATH,
        "label_names": LABEL_NAMES,
        "csv": _section(
            {
                "text_column": {"type": "string", "minLength": 1},
                "label_column": {"type": "string", "minLength": 1},
                "split_column": {"type": ["string", "null"]},
                "val_size": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "test_size": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            }
        ),
        "max_train_samples": {"type": ["integer", "null"], "minimum": 1},
        "seed": SEED,
    }
)

GLOVE = _section(
    {
        "base_url": {"type": "string", "pattern": "^(https?|file)://.+/$"},
        "corpus": {"enum": ["6B", "42B", "840B", "twitter.27B"]},
        "dimension": {"type": "string", "pattern": "^[0-9]+d$"},
        "sha256": {"anyOf": [HEX64, {"type": "null"}]},
    }
)

VOCAB = _section(
    {
        "min_freq": POSITIVE_INT,
        "max_size": {"type": ["integer", "null"], "minimum": 3},
    }
)

LSTM = _section(
    {
        "embedding_dim": UNITS,
        "hidden_dim": UNITS,
        "n_layers": positive_int(MAX_LAYERS),
        "dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "bidirectional": {"type": "boolean"},
        "max_length": {"type": "integer", "minimum": 1, "maximum": MAX_LENGTH},  # tokens kept per tweet
        "batch_size": BATCH_SIZE,
        "learning_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
        "epochs": EPOCHS,
        "weight_decay": {"type": "number", "minimum": 0},
        "gradient_clip": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "early_stopping_patience": {"type": ["integer", "null"], "minimum": 1},
        "scheduler": {"enum": ["plateau", "step", "cosine", None]},
        "use_glove": {"type": "boolean"},
        "freeze_embeddings": {"type": "boolean"},
        "class_weights": {"enum": ["balanced", "sqrt", None]},
        "seed": SEED,
    }
)

HYPERPARAMETER_VALUES = {"type": "array", "minItems": 1}
TUNE = _section(
    {
        "method": {"enum": ["grid", "random", "tpe"]},
        "n_trials": positive_int(MAX_TRIALS),
        "train_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "seed": SEED,
        "workers": positive_int(MAX_PROCESSES),
        "storage": {"type": ["string", "null"], "pattern": "^[a-z][a-z0-9+]*://"},  # an SQLAlchemy URL
        "artifact_store": {"type": ["string", "null"], "minLength": 1},  # a directory every machine reaches
        "pruning": _section(
            {
                "enabled": {"type": "boolean"},
                "startup_trials": {"type": "integer", "minimum": 0},
                "warmup_epochs": {"type": "integer", "minimum": 0},
            }
        ),
        "search_space": {
            "type": "object",
            "required": ["learning_rate"],  # so `-S learning_rate=...` never re-runs the search
            "additionalProperties": False,
            "properties": {
                "learning_rate": {**HYPERPARAMETER_VALUES, "items": {"type": "number", "exclusiveMinimum": 0}},
                "num_epochs": {**HYPERPARAMETER_VALUES, "items": EPOCHS},
                "batch_size": {**HYPERPARAMETER_VALUES, "items": BATCH_SIZE},
                "weight_decay": {**HYPERPARAMETER_VALUES, "items": {"type": "number", "minimum": 0}},
                "warmup_ratio": {**HYPERPARAMETER_VALUES, "items": PROBABILITY},
                "dropout_prob": {
                    **HYPERPARAMETER_VALUES,
                    "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                },
            },
        },
    }
)

# BERT fine-tuning: the BERT fine-tuning guide's hyperparameters, params.yaml's top level and its config files' keys
BERT_HYPERPARAMETERS = {
    "model_name": {"type": "string", "minLength": 1},
    "num_epochs": EPOCHS,
    "learning_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "batch_size": BATCH_SIZE,
    "weight_decay": {"type": "number", "minimum": 0},
    "warmup_ratio": PROBABILITY,
    "dropout_prob": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    "max_length": {"type": "integer", "minimum": 8, "maximum": MAX_LENGTH},
    "seed": SEED,
}

DEVICE = {"enum": ["auto", "cuda", "cpu"]}  # cuda without a GPU is an error, never a silent CPU run

BERT = _section(
    {
        "device": DEVICE,
        "monitor": MONITOR,
        "gradient_clip": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "early_stopping_patience": {"type": ["integer", "null"], "minimum": 1},
        "mixed_precision": {"type": "boolean"},
        "class_weights": {"enum": ["balanced", "sqrt", None]},
        "label_smoothing": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "layer_decay": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},  # per layer, top to bottom
        "reinit_layers": {"type": "integer", "minimum": 0, "maximum": 48},  # top encoder layers re-initialised
        "compile": {"type": "boolean"},
        "eval_batch_size": BATCH_SIZE,
        "num_workers": {"type": "integer", "minimum": 0, "maximum": MAX_PROCESSES},
    }
)

EVALUATE = _section({"batch_size": BATCH_SIZE, "device": DEVICE})

NGRAM_RANGE = {"type": "array", "items": POSITIVE_INT, "minItems": 2, "maxItems": 2}  # [low, high]

# train_tfidf: the TF-IDF logistic regression (src/models/tfidf.py)
TFIDF = _section(
    {
        "word_ngrams": NGRAM_RANGE,  # word n-gram lengths, [1, 2]: words and word pairs
        "char_ngrams": NGRAM_RANGE,  # character n-gram lengths inside word boundaries
        "min_df": POSITIVE_INT,  # n-grams in fewer train tweets than this are dropped
        "C": {"type": "number", "exclusiveMinimum": 0},  # inverse L2 regularisation strength
        "class_weight": {"enum": ["balanced", None]},
        "max_iter": POSITIVE_INT,  # lbfgs iterations
    }
)

_MEMBER_MODEL = "(bert|tune_best|lstm|tfidf|bert_seed[0-9]{1,10})"
# the ensemble stage: which evaluated models it combines, and the weight grid it searches on validation
ENSEMBLE = _section(
    {
        "members": {
            "type": "array",
            # evaluated models; bert_seed<N>: train_bert_seed@N's (dvc.yaml), train_bert's recipe with seed N;
            # models joined by "+" are one member, averaged with equal weights (bert+bert_seed43)
            "items": {
                "type": "string",
                "pattern": f"^{_MEMBER_MODEL}([+]{_MEMBER_MODEL})*$",
                "description": "one of bert, tune_best, lstm, tfidf, bert_seed<N>, or several joined by '+'",
            },
            "minItems": 1,  # one member: weight 1 (a "+" group alone is its models' average)
            "uniqueItems": True,
        },
        "grid_step": {"enum": [0.5, 0.25, 0.2, 0.1, 0.05]},  # 1 / a whole number: the grid ends at 1
        "seed": SEED,  # folds of the cross-validated estimate
        "class_bias": {"type": "boolean"},  # per-class log offsets fitted on validation after the weights
    }
)

# torchrun's process layout for train_bert and train_lstm (dvc.yaml passes these to torchrun)
DISTRIBUTED = _section(
    {
        "nproc_per_node": positive_int(MAX_PROCESSES),
        "nnodes": positive_int(MAX_PROCESSES),
        "rdzv_backend": {"enum": ["c10d", "static"]},  # static: the node running dvc is node rank 0
        "rdzv_endpoint": {
            "type": "string",
            "pattern": "^([^\\s:\\[\\]]+|\\[[0-9a-fA-F:.]+\\]):[0-9]+$",
        },  # host:port or [v6]:port
        "timeout_s": {"type": "number", "minimum": 10},
    }
)

PARAMS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "params.yaml",
    "type": "object",
    "properties": {
        # the BERT fine-tuning guide's hyperparameters at the top level: `dvc exp run -S learning_rate=3e-5` works
        **BERT_HYPERPARAMETERS,
        "bert": BERT,
        "data": DATA,
        "glove": GLOVE,
        "vocab": VOCAB,
        "lstm": LSTM,
        "tune": TUNE,
        "evaluate": EVALUATE,
        "tfidf": TFIDF,
        "ensemble": ENSEMBLE,
        "distributed": DISTRIBUTED,
    },
    "required": [
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
        "data",
        "glove",
        "vocab",
        "distributed",
    ],
    "additionalProperties": False,
}


# ---- The command lines' front doors: the same definitions, the command lines' conventions ----------------
OPTIONAL_TEXT = {"type": ["string", "null"], "minLength": 1}
TEXT = {"type": "string", "minLength": 1}
# a torch device a command line may name (params.yaml's bert.device and evaluate.device take DEVICE)
DEVICE_NAME = {"type": "string", "pattern": r"^(auto|cpu|cuda(:[0-9]+)?)\Z", "description": "auto, cpu, cuda or cuda:N"}

# scripts.train / scripts.tune's --config JSON (config/model_config.json): the BERT fine-tuning guide's
# hyperparameters with the same bounds as params.yaml's, and the ``bert`` section's run settings
BERT_CONFIG = _section(
    {
        **BERT_HYPERPARAMETERS,
        **BERT["properties"],
        "device": DEVICE_NAME,
        "label_names": {**LABEL_NAMES, "type": ["array", "null"]},
    },
    required=[],
)
_ONE_VALUE = {k: BERT_HYPERPARAMETERS[k] for k in ("num_epochs", "learning_rate", "batch_size")} | {
    k: BERT_HYPERPARAMETERS[k] for k in ("weight_decay", "warmup_ratio", "dropout_prob")
}
_NAMED_CONFIGURATION = {"type": "object", "properties": _ONE_VALUE, "additionalProperties": False, "minProperties": 1}
# scripts.tune's extra keys (config/hyperparameter_config.json): the search and the values to try
TUNE_CONFIG = _section(
    {
        "method": TUNE["properties"]["method"],
        "n_trials": {**positive_int(MAX_TRIALS), "type": ["integer", "null"]},
        "hyperparameters": {
            "description": (
                "the values to try: {name: [values]} (names: " + ", ".join(_ONE_VALUE) + "), "
                "{configuration name: {name: value}}, or a list of {name: value}"
            ),
            "anyOf": [
                {
                    "type": "object",
                    "minProperties": 1,
                    "properties": {k: {**HYPERPARAMETER_VALUES, "items": v} for k, v in _ONE_VALUE.items()},
                    "additionalProperties": False,
                },
                {"type": "object", "minProperties": 1, "additionalProperties": _NAMED_CONFIGURATION},
                {"type": "array", "minItems": 1, "maxItems": MAX_TRIALS, "items": _NAMED_CONFIGURATION},
            ],
        },
    },
    required=[],
)

# the LSTM training guide's command line (src/training/train_model.py and its --config JSON): params.yaml's
# ``lstm`` definitions, where 0 or "none" switches a feature off as the command line writes it
LSTM_RUN = _section(
    {
        **{k: LSTM["properties"][k] for k in ("hidden_dim", "n_layers", "dropout", "bidirectional", "max_length")},
        **{k: LSTM["properties"][k] for k in ("batch_size", "learning_rate", "epochs", "weight_decay", "seed")},
        **{k: LSTM["properties"][k] for k in ("use_glove", "freeze_embeddings")},
        "embedding_dim": {**UNITS, "type": ["integer", "null"]},
        "gradient_clip": {"type": ["number", "null"], "minimum": 0},
        "early_stopping_patience": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_EPOCHS},
        "scheduler": {"enum": ["plateau", "step", "cosine", "none", None]},
        "class_weights": {"enum": ["balanced", "sqrt", "none", None]},
        "monitor": MONITOR,
        "data_dir": TEXT,
        "label_names": {**LABEL_NAMES, "type": ["array", "null"]},
        "validation_split": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "test_split": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "text_column": TEXT,
        "label_column": TEXT,
        "split_column": OPTIONAL_TEXT,
        "vocab_dir": OPTIONAL_TEXT,
        "min_freq": POSITIVE_INT,
        "max_vocab_size": {"type": ["integer", "null"], "minimum": 3},
        "vocab_size": {"type": ["integer", "null"], "minimum": 3, "maximum": 1 << 24},
        "output_dim": {**UNITS, "type": ["integer", "null"]},
        "glove_corpus": GLOVE["properties"]["corpus"],
        "glove_dim": {"type": "string", "pattern": r"^[0-9]+d?\Z", "description": "a dimension such as 25d or 25"},
        "glove_dir": TEXT,
        "device": DEVICE_NAME,
        "timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "output_dir": TEXT,
        "checkpoint_dir": TEXT,
        "max_checkpoints": positive_int(MAX_EPOCHS),
        "metrics_file": OPTIONAL_TEXT,
        "plots_file": OPTIONAL_TEXT,
        "live_dir": OPTIONAL_TEXT,
    }
)

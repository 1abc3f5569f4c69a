"""JSON Schema for params.yaml. Every key is declared: an unknown key is an error, not a silent no-op."""

HEX64 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}
POSITIVE_INT = {"type": "integer", "minimum": 1}
SEED = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
# Names that become paths (src/paths.py checks them again where they are used); \Z, not $: $ also
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
        "label_names": {"type": "array", "items": LABEL_NAME, "minItems": 2, "uniqueItems": True},
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
        "embedding_dim": POSITIVE_INT,
        "hidden_dim": POSITIVE_INT,
        "n_layers": POSITIVE_INT,
        "dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "bidirectional": {"type": "boolean"},
        "max_length": {"type": "integer", "minimum": 1, "maximum": 4096},  # tokens kept per tweet
        "batch_size": POSITIVE_INT,
        "learning_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
        "epochs": POSITIVE_INT,
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
        "n_trials": POSITIVE_INT,
        "train_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "seed": SEED,
        "workers": POSITIVE_INT,
        "storage": {"type": ["string", "null"], "pattern": "^[a-z][a-z0-9+]*://"},  # an SQLAlchemy URL
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
                "num_epochs": {**HYPERPARAMETER_VALUES, "items": POSITIVE_INT},
                "batch_size": {**HYPERPARAMETER_VALUES, "items": POSITIVE_INT},
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

DEVICE = {"enum": ["auto", "cuda", "cpu"]}  # cuda without a GPU is an error, never a silent CPU run

BERT = _section(
    {
        "device": DEVICE,
        "monitor": {"enum": ["val_loss", "val_accuracy", "val_macro_recall", "val_macro_f1"]},
        "gradient_clip": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "early_stopping_patience": {"type": ["integer", "null"], "minimum": 1},
        "mixed_precision": {"type": "boolean"},
        "class_weights": {"enum": ["balanced", "sqrt", None]},
        "label_smoothing": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "compile": {"type": "boolean"},
        "eval_batch_size": POSITIVE_INT,
        "num_workers": {"type": "integer", "minimum": 0},
    }
)

EVALUATE = _section({"batch_size": POSITIVE_INT, "device": DEVICE})

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

# the ensemble stage: which evaluated models it combines, and the weight grid it searches on validation
ENSEMBLE = _section(
    {
        "members": {
            "type": "array",
            "items": {"enum": ["bert", "tune_best", "lstm", "tfidf"]},
            "minItems": 2,
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
        "nproc_per_node": POSITIVE_INT,
        "nnodes": POSITIVE_INT,
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
        # BERT fine-tuning (seed 000): top level, so `dvc exp run -S learning_rate=3e-5` works as written.
        "model_name": {"type": "string", "minLength": 1},
        "num_epochs": POSITIVE_INT,
        "learning_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "batch_size": POSITIVE_INT,
        "weight_decay": {"type": "number", "minimum": 0},
        "warmup_ratio": PROBABILITY,
        "dropout_prob": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "max_length": {"type": "integer", "minimum": 8, "maximum": 4096},
        "seed": SEED,
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

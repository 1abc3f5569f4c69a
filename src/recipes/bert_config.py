"""The BERT recipe's settings: one frozen BertConfig, from params.yaml or from a command line's JSON config file.

Both go through the same definitions (src/core/params_schema.py: BERT_HYPERPARAMETERS and the ``bert``
section), validated once where they are read: params.yaml by load_params, a config file here.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from src.core.json_files import MAX_CONFIG_BYTES, read_json_object
from src.core.params import check_values
from src.core.params_schema import BERT, BERT_CONFIG, BERT_HYPERPARAMETERS
from src.models.bert_hyperparameters import RECOMMENDED


@dataclass(frozen=True)
class BertConfig:
    """Every setting of one BERT fine-tuning run: the BERT fine-tuning guide's hyperparameters (defaults:
    its recommended values), then how the run goes (params.yaml's ``bert`` section)."""

    model_name: str = "sentence-transformers/all-MiniLM-L6-v2"  # the same as params.yaml's, in the offline cache
    num_epochs: int = RECOMMENDED["num_epochs"]
    learning_rate: float = RECOMMENDED["learning_rate"]
    batch_size: int = RECOMMENDED["batch_size"]
    weight_decay: float = RECOMMENDED["weight_decay"]
    warmup_ratio: float = RECOMMENDED["warmup_ratio"]
    dropout_prob: float = RECOMMENDED["dropout_prob"]
    max_length: int = 128
    seed: int = 42
    label_names: tuple[str, ...] | None = None  # None: the data set's (mapping.txt, else the labels found)
    device: str = "auto"
    monitor: str = "val_macro_recall"
    gradient_clip: float | None = 1.0
    early_stopping_patience: int | None = None
    mixed_precision: bool = True
    class_weights: str | None = None
    label_smoothing: float = 0.0
    layer_decay: float = 1.0
    reinit_layers: int = 0
    compile: bool = False
    eval_batch_size: int = 128
    num_workers: int = 0

    @classmethod
    def from_params(cls, params: dict) -> BertConfig:
        """params.yaml's top-level hyperparameters, its ``bert`` section and ``data.label_names``
        (validated by load_params)."""
        return cls(
            **{k: params[k] for k in BERT_HYPERPARAMETERS},
            **params["bert"],
            label_names=tuple(params["data"]["label_names"]),
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike, extra: dict | None = None) -> tuple[BertConfig, dict]:
        """(the config in the JSON file ``path``, its ``extra`` keys' values): the file is size-capped,
        then every key is checked against the same definitions as params.yaml's, plus ``extra``'s
        {key: (schema, default)}; an error names the file and the key."""
        extra = extra or {}
        raw = read_json_object(path, max_bytes=MAX_CONFIG_BYTES)
        schema = {
            **BERT_CONFIG,
            "properties": {**BERT_CONFIG["properties"], **{k: schema for k, (schema, _) in extra.items()}},
        }
        check_values(raw, schema, str(Path(path)))
        settings = {k: v for k, v in raw.items() if k not in extra}
        if settings.get("label_names") is not None:
            settings["label_names"] = tuple(settings["label_names"])
        return cls(**settings), {k: raw.get(k, default) for k, (_, default) in extra.items()}

    def hyperparameters(self) -> dict:
        """The BERT fine-tuning guide's hyperparameters (what a search may set)."""
        return {k: getattr(self, k) for k in RECOMMENDED}

    def fingerprint_params(self) -> dict:
        """What shapes the result, named as in params.yaml: a resumed run's change message names the key."""
        settings = dataclasses.asdict(self)
        return {
            **{k: settings[k] for k in BERT_HYPERPARAMETERS},
            "bert": {k: settings[k] for k in BERT["properties"]},
            "data": {"label_names": list(self.label_names or ())},
        }

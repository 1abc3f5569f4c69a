"""Sentiment models and their input pipelines.

``LSTMClassifier`` is imported on first use (PEP 562), so that BERT's modules do not import the
LSTM's (tests/test_stage_deps.py reads ``_EXPORTS``).
"""
from __future__ import annotations

import importlib

_EXPORTS = {"LSTMClassifier": "src.models.lstm_model"}  # name -> the module that defines it

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

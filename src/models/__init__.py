"""Sentiment models and their input pipelines.

``LSTMClassifier`` is imported on first use (PEP 562), so that BERT's modules do not import the
LSTM's (tests/test_stage_deps.py reads ``_EXPORTS``).
"""

from __future__ import annotations

from src.core.lazy import lazy_exports

_EXPORTS = {"LSTMClassifier": "src.models.lstm_model"}  # name -> the module that defines it

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

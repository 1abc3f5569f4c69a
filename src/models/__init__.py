"""Sentiment models and their input pipelines."""
from src.models.lstm_model import LSTMClassifier

__all__ = ["LSTMClassifier"]

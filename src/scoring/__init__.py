"""Scoring: classification metrics, per-tweet class probabilities, significance tests for a review,
and the ensemble that combines models' probabilities."""

"""Command lines for BERT fine-tuning: `python -m scripts.train`, `python -m scripts.tune`."""

"""The two training recipes side by side: params (or a guide's config file) to data loaders, model and Trainer.

``bert_run`` / ``bert_files``: BERT fine-tuning from params.yaml / from the BERT fine-tuning guide's
JSON config; ``lstm_run``: the BiLSTM from params.yaml or the LSTM training guide's command line.
"""

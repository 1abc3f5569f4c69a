"""The BERT fine-tuning guide's recommended hyperparameters, imported by the recipe, the search and the guide's API."""

# The BERT fine-tuning guide's recommended hyperparameters (config/model_config.json holds the same): train_model's
# defaults, and what a search does not tune.
RECOMMENDED = {
    "num_epochs": 4,
    "learning_rate": 2e-5,
    "batch_size": 16,
    "weight_decay": 0.01,
    "warmup_ratio": 0.1,
    "dropout_prob": 0.1,
}

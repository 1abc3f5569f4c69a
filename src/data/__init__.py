"""Data: download (mirror, retries, checksums), preprocess TweetEval into JSONL splits, tokenise,
build the vocabulary, read GloVe vectors, and batch tweets by length."""

"""Twitter sentiment pipeline: data, models and training for TweetEval's 3-class task."""

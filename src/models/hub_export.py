"""The Hugging Face Hub-ready export of train_bert's model: weights, tokenizer, normalisation and model card.

``export_for_hub`` copies train_bert's ``save_pretrained`` directory (models/bert/model) into one that
``transformers.pipeline("text-classification", model=...)``, ``huggingface_hub.upload_folder`` and the Hub
read as they are: ``normalize.py`` (src/data/normalization.py, the standard library only: the text
normalisation the model was trained on) and ``README.md``, a model card whose ``model-index`` holds the
evaluate stage's test figures, with the base model, the data set, the license and how to normalise text.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from src.core.errors import PipelineError
from src.core.json_files import read_json_object
from src.core.paths import check_model_dir
from src.data import normalization

NORMALIZATION_SOURCE = Path(normalization.__file__)  # copied beside the weights as normalize.py
DATASET = {"id": "cardiffnlp/tweet_eval", "config": "sentiment", "name": "TweetEval (sentiment)"}
# metrics/bert/test.json's keys, as the Hub's model-index names them: (key, metric type, display name, args)
TEST_FIGURES = (
    ("macro_recall", "recall", "Macro recall (TweetEval's sentiment score)", {"average": "macro"}),
    ("macro_f1", "f1", "Macro F1", {"average": "macro"}),
    ("f1_pn", "f1", "F1 PN (mean F1 of negative and positive)", None),
    ("accuracy", "accuracy", "Accuracy", None),
)


def base_model_card(model_name: str):
    """The base model's card (its README.md) from a local directory or the Hugging Face cache, or None."""
    from huggingface_hub import ModelCard

    local = Path(model_name) / "README.md"
    try:
        if Path(model_name).is_dir():
            return ModelCard.load(local) if local.is_file() else None
        return ModelCard.load(model_name)  # HF_HUB_OFFLINE=1: the cached README.md, when there is one
    except Exception:  # no card (or none cached): the export says the license is the base model's
        return None


def model_card(model_name: str, label_names: list[str], test: dict, max_length: int):
    """The ModelCard: model-index from ``test`` (metrics/bert/test.json), base model, data set, license, usage."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    base = base_model_card(model_name)
    license_id = getattr(base.data, "license", None) if base is not None else None
    on_hub = not Path(model_name).exists()  # a Hub id, not a local directory (no base_model for a path)
    results = [
        EvalResult(
            task_type="text-classification",
            task_name="Text Classification",
            dataset_type=DATASET["id"],
            dataset_name=DATASET["name"],
            dataset_config=DATASET["config"],
            dataset_split="test",
            metric_type=metric,
            metric_name=name,
            metric_value=float(test[key]),
            metric_args=args,
        )
        for key, metric, name, args in TEST_FIGURES
    ]
    data = ModelCardData(
        language="en",
        license=license_id or "other",
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=["sentiment-analysis", "twitter", "tweet_eval"],
        datasets=[DATASET["id"]],
        base_model=model_name if on_hub else None,
        model_name="tweet-sentiment",
        eval_results=results,
    )
    labels = ", ".join(f"{i} {name}" for i, name in enumerate(label_names))
    figures = "\n".join(f"| {name} | {float(test[key]):.4f} |" for key, _, name, _ in TEST_FIGURES)
    base_line = f"[{model_name}](https://huggingface.co/{model_name})" if on_hub else f"`{Path(model_name).name}`"
    body = f"""# Tweet sentiment ({", ".join(label_names)})

{base_line} fine-tuned for 3-class tweet sentiment on {DATASET["name"]} ({DATASET["id"]}, config
`{DATASET["config"]}`), by this project's `dvc repro` (stage train_bert; this card by export_bert). Labels:
{labels}. License: {license_id or "the base model's (no card was found to name it)"}.

## Results on the test split ({int(test.get("n", 0)):,} tweets)

| Metric | Value |
|---|---|
{figures}

## Use it: normalise text as the training data was

The model was trained on normalised tweets: `@mentions` as `@user`, links dropped, HTML entities unescaped,
emoji as their Unicode names, whitespace collapsed. `normalize.py` (here, the standard library only) does it:

```python
import sys
from transformers import pipeline

sys.path.insert(0, "<this directory>")  # or huggingface_hub.snapshot_download(<repo id>)
from normalize import normalize_tweet

classify = pipeline("text-classification", model="<this directory>", top_k=None)
classify([normalize_tweet(t) for t in ["what a great day :)", "worst service ever"]], truncation=True)
```

Texts are cut at {max_length} tokens, as in training.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def export_for_hub(
    export_dir: str | os.PathLike,
    test_metrics: str | os.PathLike,
    output: str | os.PathLike,
    model_name: str,
    label_names: list[str],
) -> Path:
    """``output``: ``export_dir``'s files, normalize.py and README.md (the card), swapped in whole."""
    export_dir, output = Path(export_dir), Path(output)
    check_model_dir(export_dir)  # no link out of the repository: the copy below follows links
    config_path = export_dir / "config.json"
    if not config_path.is_file():
        raise PipelineError(f"{config_path}: not found (run `dvc repro train_bert` first)")
    test = read_json_object(Path(test_metrics), "run `dvc repro evaluate@bert` again")
    missing = [key for key, *_ in TEST_FIGURES if not isinstance(test.get(key), (int, float))]
    if missing:
        raise PipelineError(f"{test_metrics}: no {', '.join(missing)} (expected evaluate@bert's test figures)")
    config = read_json_object(config_path, "run `dvc repro train_bert` again")
    exported_labels = [config.get("id2label", {}).get(str(i)) for i in range(len(label_names))]
    if exported_labels != list(label_names):
        raise PipelineError(
            f"{config_path}: id2label {config.get('id2label')} is not data.label_names {label_names} "
            "(run `dvc repro train_bert` again)"
        )
    tokenizer_config = read_json_object(export_dir / "tokenizer_config.json", "run `dvc repro train_bert` again")
    max_length = tokenizer_config.get("model_max_length", "the model's maximum")  # train_bert's max_length
    staging = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(export_dir, staging, symlinks=False)
    shutil.copy(NORMALIZATION_SOURCE, staging / "normalize.py")
    model_card(model_name, list(label_names), test, max_length).save(staging / "README.md")
    if output.exists():
        shutil.rmtree(output)
    os.replace(staging, output)
    return output

"""export_bert: models/bert's export with normalize.py and a model card -> models/bert_hub/, ready for the Hub.

    python -m stages.export_bert

The directory ``transformers.pipeline("text-classification", model="models/bert_hub")`` and
``python -m src.predict --model models/bert_hub`` load, and ``huggingface_hub.upload_folder`` publishes as
it is (src/models/hub_export.py): train_bert's save_pretrained files, the normalisation the model was
trained on (normalize.py) and README.md, whose model-index holds evaluate@bert's test figures
(metrics/bert/test.json), with the base model (params.yaml's ``model_name``), the data set and the license.
"""

import sys
from pathlib import Path

from src.core.cli import run_stage
from src.models.hub_export import export_for_hub

EXPORT_DIR = Path("models/bert/model")  # train_bert's save_pretrained directory
TEST_METRICS = Path("metrics/bert/test.json")  # evaluate@bert's test figures
OUTPUT = Path("models/bert_hub")


def main(params: dict) -> None:
    output = export_for_hub(EXPORT_DIR, TEST_METRICS, OUTPUT, params["model_name"], params["data"]["label_names"])
    print(f"export_bert: {output} (model card README.md, normalize.py): ready for pipeline() and the Hub")


if __name__ == "__main__":
    run_stage(main, argv=sys.argv[1:])

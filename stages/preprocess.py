"""preprocess: raw splits -> normalised, de-duplicated data/processed/{train,val,test}.jsonl + metrics/data.json."""

import sys
from pathlib import Path

from src.core.atomic import write_json
from src.core.cli import run_stage
from src.core.paths import relative_path
from src.data import preprocess as pp

PROCESSED_DIR = Path("data/processed")
METRICS_PATH = Path("metrics/data.json")


def main(params: dict) -> None:
    data = params["data"]
    # data.input is a dvc.yaml dep (${data.input}): it must name a path inside the repository
    source = relative_path(data["input"], "data.input")
    if source.suffix.lower() in {".csv", ".tsv", ".tab"}:
        raw = pp.read_csv_dataset(source, data["csv"], data["label_names"], data["seed"])
    else:
        raw = pp.read_tweeteval(source, data["label_names"])

    splits, dropped = pp.clean_splits(raw)
    kept_after_cleaning = len(splits["train"])
    splits["train"] = pp.stratified_subset(splits["train"], data["max_train_samples"], data["seed"])

    for name, split in splits.items():
        pp.write_split(PROCESSED_DIR / f"{name}.jsonl", split)
    write_json(
        METRICS_PATH,
        {
            "source": str(source),
            **{
                name: {"rows": len(split), "class_counts": pp.class_counts(split, data["label_names"])}
                for name, split in splits.items()
            },
            "train_raw_rows": len(raw["train"]),
            "train_dropped": {**dropped, "subsampled_out": kept_after_cleaning - len(splits["train"])},
        },
    )


if __name__ == "__main__":
    run_stage(main, argv=sys.argv[1:])

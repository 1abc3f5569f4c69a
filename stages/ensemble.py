"""ensemble: weights for the trained models' probabilities, fitted on validation -> models/ensemble/.

    python -m stages.ensemble

Reads each member's per-tweet probabilities from its evaluate stage (predictions/<model>/probs_val.csv
and probs_test.csv), chooses the weights of their geometric mean on validation alone (src/scoring/ensemble.py),
and writes models/ensemble/: ensemble.json (members, weights, validation figures) and the combined
probabilities of validation and test, which evaluate@ensemble scores like any other model. The directory
is replaced as a whole: a failure (a full disk) leaves the previous one as it was.
"""

from pathlib import Path

from src.core.atomic import replace_together, write_json
from src.core.cli import run_stage
from src.core.errors import ParamsError
from src.data.preprocess import read_split
from src.scoring.ensemble import combine, cross_validated_macro_recall, fit_weights, macro_recall
from src.scoring.probabilities import probabilities_file, read_probabilities, write_probabilities

DATA_DIR = Path("data/processed")
PREDICTIONS_DIR = Path("predictions")
MODEL_DIR = Path("models/ensemble")


def main(params: dict) -> None:
    if "ensemble" not in params:
        raise ParamsError("params.yaml: ensemble: missing (expected members, grid_step and seed)")
    cfg, label_names = params["ensemble"], params["data"]["label_names"]
    members = cfg["members"]
    splits = {name: read_split(DATA_DIR / f"{name}.jsonl", label_names) for name in ("val", "test")}
    probabilities = {
        split: [
            read_probabilities(PREDICTIONS_DIR / member / probabilities_file(split), label_names, len(data))
            for member in members
        ]
        for split, data in splits.items()
    }
    val_labels = splits["val"].labels
    weights = fit_weights(val_labels, probabilities["val"], cfg["grid_step"])
    cross_validated = cross_validated_macro_recall(val_labels, probabilities["val"], cfg["grid_step"], cfg["seed"])
    if cross_validated is not None:
        cross_validated = round(cross_validated, 6)
    summary = {
        "members": members,
        "weights": dict(zip(members, weights)),
        "method": "weighted geometric mean",
        "grid_step": cfg["grid_step"],
        "val_macro_recall": round(macro_recall(val_labels, combine(probabilities["val"], weights)), 6),
        # weights fitted on 4/5 of validation, scored on the rest: the in-sample figure less the fit's optimism
        "val_macro_recall_cross_validated": cross_validated,
        "members_val_macro_recall": {
            m: round(macro_recall(val_labels, p), 6) for m, p in zip(members, probabilities["val"])
        },
    }
    with replace_together([MODEL_DIR]) as (staged,):  # the three files change together or not at all
        for split in splits:
            write_probabilities(staged / probabilities_file(split), combine(probabilities[split], weights), label_names)
        write_json(staged / "ensemble.json", summary)
    print(
        f"ensemble: weights {summary['weights']}; val macro_recall {summary['val_macro_recall']:.4f} "
        f"(cross-validated {cross_validated}); members "
        + ", ".join(f"{m} {v:.4f}" for m, v in summary["members_val_macro_recall"].items())
    )


if __name__ == "__main__":
    run_stage(main)

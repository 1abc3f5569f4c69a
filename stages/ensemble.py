"""ensemble: weights for the trained models' probabilities, fitted on validation -> models/ensemble/.

    python -m stages.ensemble

Reads each member's per-tweet probabilities from its evaluate stage (predictions/<model>/probs_val.csv
and probs_test.csv), chooses the weights of their geometric mean on validation alone (src/scoring/ensemble.py),
and writes models/ensemble/: ensemble.json (members, weights, validation figures) and the combined
probabilities of validation and test, which evaluate@ensemble scores like any other model. With
``ensemble.class_bias`` the combination is then shifted by per-class offsets, also fitted on
validation; ensemble.json holds the cross-validated validation figure with and without them either way.
A member written ``bert+bert_seed43`` is those models averaged with equal weights, one weight for the group.
The directory is replaced as a whole: a failure (a full disk) leaves the previous one as it was.
"""

import sys
from pathlib import Path

from src.core.atomic import replace_together, write_json
from src.core.cli import run_stage
from src.core.errors import ParamsError
from src.data.preprocess import read_split
from src.scoring.ensemble import (
    apply_bias,
    check_grid,
    combine,
    cross_validated_macro_recall,
    fit_class_bias,
    fit_weights,
    macro_recall,
    models_of,
    read_member,
)
from src.scoring.probabilities import probabilities_file, write_probabilities

DATA_DIR = Path("data/processed")
PREDICTIONS_DIR = Path("predictions")
MODEL_DIR = Path("models/ensemble")


def main(params: dict) -> None:
    if "ensemble" not in params:
        raise ParamsError("params.yaml: ensemble: missing (expected members, grid_step, seed and class_bias)")
    cfg, label_names = params["ensemble"], params["data"]["label_names"]
    members = cfg["members"]
    models = models_of(members)
    repeated = sorted({model for model in models if models.count(model) > 1})
    if repeated:
        raise ParamsError(
            f"params.yaml: ensemble.members: {', '.join(repeated)} in more than one member "
            f"(got {members}); expected each model once, alone or in one '+' group"
        )
    check_grid(len(members), cfg["grid_step"])  # before any file is read: the grid's cost is bounded
    splits = {name: read_split(DATA_DIR / f"{name}.jsonl", label_names) for name in ("val", "test")}
    probabilities = {
        split: [
            read_member(member, probabilities_file(split), label_names, len(data), PREDICTIONS_DIR)
            for member in members
        ]
        for split, data in splits.items()
    }
    val_labels = splits["val"].labels
    weights = fit_weights(val_labels, probabilities["val"], cfg["grid_step"])
    combined = {split: combine(probabilities[split], weights) for split in splits}
    offsets = (0.0,) * len(label_names)
    if cfg["class_bias"]:
        offsets = fit_class_bias(val_labels, combined["val"])
        combined = {split: apply_bias(p, offsets) for split, p in combined.items()}
    # weights (and offsets) fitted on 4/5 of validation, scored on the rest, the same folds for both:
    # the in-sample figure less the fit's optimism, and what the offsets add out of sample
    cross_validated = {
        bias: cross_validated_macro_recall(
            val_labels, probabilities["val"], cfg["grid_step"], cfg["seed"], class_bias=bias
        )
        for bias in (False, True)
    }
    cross_validated = {bias: None if v is None else round(v, 6) for bias, v in cross_validated.items()}
    summary = {
        "members": members,
        "weights": dict(zip(members, weights)),
        "method": "weighted geometric mean" + (", class-bias offsets" if cfg["class_bias"] else ""),
        "grid_step": cfg["grid_step"],
        "class_bias": dict(zip(label_names, offsets)),  # added to the log-probabilities; all 0 when off
        "val_macro_recall": round(macro_recall(val_labels, combined["val"]), 6),
        "val_macro_recall_cross_validated": cross_validated[cfg["class_bias"]],
        "val_macro_recall_cross_validated_without_class_bias": cross_validated[False],
        "val_macro_recall_cross_validated_with_class_bias": cross_validated[True],
        "members_val_macro_recall": {
            m: round(macro_recall(val_labels, p), 6) for m, p in zip(members, probabilities["val"])
        },
    }
    with replace_together([MODEL_DIR]) as (staged,):  # the three files change together or not at all
        for split in splits:
            write_probabilities(staged / probabilities_file(split), combined[split], label_names)
        write_json(staged / "ensemble.json", summary)
    print(
        f"ensemble: weights {summary['weights']}; class bias {summary['class_bias']}; "
        f"val macro_recall {summary['val_macro_recall']:.4f} (cross-validated: {cross_validated[False]} "
        f"without class bias, {cross_validated[True]} with); members "
        + ", ".join(f"{m} {v:.4f}" for m, v in summary["members_val_macro_recall"].items())
    )


if __name__ == "__main__":
    run_stage(main, argv=sys.argv[1:])

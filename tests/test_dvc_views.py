"""What a reviewer sees in DVC: one metric per model, plots per step with one colour per revision,
confusion matrices with every class, DVCLive's files declared where the train stages write them, and the
models in DVC's model registry (docs/dvc_views.md)."""

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from stages import train_bert, train_lstm

REPO = Path(__file__).resolve().parents[1]
DVC_YAML = YAML(typ="safe").load(REPO / "dvc.yaml")


def _stage_plots() -> dict:
    plots = {}
    for stage in DVC_YAML["stages"].values():
        for entry in (stage.get("do", stage)).get("plots", []):
            plots.update(entry)
    return plots


def test_every_plot_has_a_title_and_axis_labels():
    top = {name: props for entry in DVC_YAML["plots"] for name, props in entry.items()}
    assert len(top) == 6  # loss, validation scores, learning rate: per train stage
    for name, props in {**top, **_stage_plots()}.items():
        assert {"title", "x_label", "y_label"} <= set(props), name
        assert not props["y_label"] == "y" and props["title"] != name, name


def test_curves_are_per_step_with_one_colour_per_revision_and_readable_ticks():
    """DVCLive's rows against the optimizer step (a one-epoch run still draws a line); the template takes
    DVC's colour anchor (one colour per revision) and dash anchor (one pattern per series), and formats
    ticks so that a learning rate of 5e-5 does not read as 0."""
    template = json.loads((REPO / ".dvc/plots/steps.json").read_text())
    encoding = template["encoding"]
    assert encoding["color"] == "<DVC_METRIC_COLOR>" and encoding["strokeDash"] == "<DVC_METRIC_STROKE_DASH>"
    assert encoding["y"]["axis"]["format"] == "~g" and encoding["y"]["scale"]["zero"] is False
    assert template["mark"]["point"]  # a per-epoch validation row is a visible point
    for entry in DVC_YAML["plots"]:
        ((name, props),) = entry.items()
        assert props["template"] == "steps" and props["x"] == "step", name
        assert all(str(source).startswith("dvclive/") for source in props["y"]), name


def test_confusion_matrices_show_every_class_on_both_axes():
    """A model that never predicts a class still gets its row: the template folds actual and predicted
    into one domain (zero-weight rows) before counting."""
    template = json.loads((REPO / ".dvc/plots/confusion_all_classes.json").read_text())
    assert template["transform"][0]["fold"] == ["<DVC_METRIC_X>", "<DVC_METRIC_Y>"]
    assert {"impute": "tweets", "key": "cell_x", "groupby": ["rev", "cell_y"], "value": 0} in template["transform"]
    plots = _stage_plots()
    assert plots["plots/confusion/${key}.csv"]["template"] == "confusion_all_classes"
    assert plots["plots/reliability/${key}.json"]["template"] == "reliability"


def test_one_dvc_metric_per_model_with_keys_unique_across_files():
    """`dvc exp show` names a column by its key alone when keys are unique: bert.test, bert.val, ..."""
    evaluate = DVC_YAML["stages"]["evaluate"]["do"]
    assert evaluate["metrics"] == [{"metrics/${key}/macro_recall.json": {"cache": False}}]
    for name, stage in DVC_YAML["stages"].items():
        if name != "evaluate":
            assert "metrics" not in stage, f"{name}: its summaries are outputs, not metrics"


@pytest.mark.parametrize("stage", [train_bert, train_lstm], ids=["train_bert", "train_lstm"])
def test_dvclive_files_are_declared_outputs_of_their_stage(stage):
    name = stage.__name__.rsplit(".", 1)[1]
    declared = DVC_YAML["stages"][name]
    live = stage.LIVE_DIR.as_posix()
    # plain cached outputs (a `cache: false` one that is no metric would cost the stage its run-cache entry);
    # not metrics: no copy in exp show
    assert f"{live}/plots" in declared["outs"] and f"{live}/metrics.json" in declared["outs"]
    assert "src/training/live.py" in declared["deps"]
    live_plots = [
        props
        for entry in DVC_YAML["plots"]
        for props in entry.values()
        if any(str(source).startswith(live) for source in props["y"])
    ]
    assert len(live_plots) == 3


def test_models_are_registered_as_dvc_artifacts():
    from dvc.repo import Repo

    artifacts = Repo(str(REPO)).artifacts.read()["dvc.yaml"]
    assert set(artifacts) == {"bert", "lstm"}
    outs = {
        out if isinstance(out, str) else next(iter(out))
        for stage in ("export_bert", "train_lstm")
        for out in DVC_YAML["stages"][stage]["outs"]
    }
    for artifact in artifacts.values():
        assert artifact.type == "model" and artifact.desc and artifact.labels
        assert any(artifact.path == out or artifact.path.startswith(out + "/") for out in outs), artifact.path

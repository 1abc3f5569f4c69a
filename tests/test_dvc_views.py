"""What a reviewer sees in DVC: plots with titles, labels and whole-epoch axes, DVCLive's files
declared where the train stages write them, and the models in DVC's model registry (docs/dvc_views.md)."""

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
    assert len(top) == 10
    for name, props in {**top, **_stage_plots()}.items():
        assert {"title", "x_label", "y_label"} <= set(props), name
        assert not props["y_label"] == "y" and props["title"] != name, name


def test_epoch_axes_use_the_whole_epoch_template():
    """Vega-Lite's linear axis ticks at 1.5; the project's template asks for integer ticks and
    colours each series (y field) on its own, revisions by dash pattern."""
    template = json.loads((REPO / ".dvc/plots/epochs.json").read_text())
    x = template["encoding"]["x"]
    assert x["axis"] == {"tickMinStep": 1, "format": "d"}
    assert template["encoding"]["color"]["field"] == "field"
    assert template["encoding"]["strokeDash"]["field"] == "rev"
    for entry in DVC_YAML["plots"]:
        ((name, props),) = entry.items()
        axis = props["x"] if isinstance(props["x"], str) else next(iter(props["x"].values()))
        assert (axis == "epoch") == (props["template"] == "epochs"), name


@pytest.mark.parametrize("stage", [train_bert, train_lstm], ids=["train_bert", "train_lstm"])
def test_dvclive_files_are_declared_outputs_of_their_stage(stage):
    name = stage.__name__.rsplit(".", 1)[1]
    declared = DVC_YAML["stages"][name]
    live = stage.LIVE_DIR.as_posix()
    assert {f"{live}/plots": {"cache": False}} in declared["outs"]
    assert {f"{live}/metrics.json": {"cache": False}} in declared["metrics"]
    assert "src/training/live.py" in declared["deps"]
    live_plots = [
        props
        for entry in DVC_YAML["plots"]
        for props in entry.values()
        if any(str(source).startswith(live) for source in props["y"])
    ]
    assert len(live_plots) == 2


def test_models_are_registered_as_dvc_artifacts():
    from dvc.repo import Repo

    artifacts = Repo(str(REPO)).artifacts.read()["dvc.yaml"]
    assert set(artifacts) == {"bert", "lstm"}
    outs = {
        out if isinstance(out, str) else next(iter(out))
        for stage in ("train_bert", "train_lstm")
        for out in DVC_YAML["stages"][stage]["outs"]
    }
    for artifact in artifacts.values():
        assert artifact.type == "model" and artifact.desc and artifact.labels
        assert any(artifact.path == out or artifact.path.startswith(out + "/") for out in outs), artifact.path

"""src.review's pieces and the CI workflow that posts its report (.github/workflows/review.yml).

The whole review path on real runs is in tests/test_pipeline_e2e.py::test_review_round_trip; the
workflow cannot run here, so this checks that everything it calls exists and parses.
"""

import hashlib
import importlib.util
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ruamel.yaml import YAML
from scipy.stats import binomtest

from src.core.errors import PipelineError
from src.review import evaluate_models, format_change, metrics_table, params_table, same_values
from src.scoring.metrics import detailed_metrics
from src.scoring.probabilities import write_probabilities
from src.scoring.significance import expected_calibration_error, mcnemar, paired_bootstrap, reliability_bins, verdict

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github/workflows/review.yml"


def workflow_commands() -> list[list[str]]:
    """Every command line of every `run:` step, split like a shell would (continuations and comments dropped)."""
    workflow = YAML(typ="safe", pure=True).load(WORKFLOW.read_text())
    commands = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            for line in step.get("run", "").splitlines():
                words = shlex.split(line, comments=True)
                if words:
                    commands.append(words)
    return commands


def test_workflow_runs_on_pull_requests_and_posts_the_report_with_cml():
    workflow = YAML(typ="safe", pure=True).load(WORKFLOW.read_text())
    assert workflow["on"] == "pull_request"
    assert workflow["permissions"] == {"contents": "read"}  # the pull request's token writes nothing
    assert workflow["concurrency"]["cancel-in-progress"] is True  # a new push cancels the old review
    commands = [" ".join(words) for words in workflow_commands()]
    order = [
        "python -m pip install -r requirements.txt",
        "python -m dvc pull --run-cache",
        "python -m dvc repro --pull",  # a stage in the run-cache: restored, its outputs pulled
        "python -m src.review --base origin/main",
    ]
    positions = [next(i for i, c in enumerate(commands) if c.startswith(expected)) for expected in order]
    assert positions == sorted(positions), commands
    review = workflow["jobs"]["review"]
    # no remote (a fork, a pull request from one): a job that says so, and the review is skipped
    assert review["needs"] == "remote" and review["if"] == "needs.remote.outputs.configured == 'true'"
    check = workflow["jobs"]["remote"]["steps"][0]["run"]
    assert "::notice title=review skipped::" in check and "GITHUB_STEP_SUMMARY" in check
    # the Hugging Face and DVC caches, keyed on dvc.lock
    caches = {s["with"]["path"]: s["with"] for s in review["steps"] if s.get("uses", "").startswith("actions/cache@")}
    assert set(caches) == {"~/.cache/huggingface", ".dvc/cache"}
    assert all("hashFiles('dvc.lock')" in cache["key"] for cache in caches.values())
    upload = next(s for s in review["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["name"] == "review" and "pull-request/" in upload["with"]["path"]

    # the comment: from a workflow_run workflow (the base repository's token), which runs nothing of the PR
    comment = YAML(typ="safe", pure=True).load((REPO / ".github/workflows/review-comment.yml").read_text())
    assert comment["on"] == {"workflow_run": {"workflows": [workflow["name"]], "types": ["completed"]}}
    assert comment["permissions"] == {"actions": "read", "pull-requests": "write"}
    steps = comment["jobs"]["comment"]["steps"]
    assert not [s for s in steps if s.get("uses", "").startswith("actions/checkout")]
    post = next(step for step in steps if "cml comment update" in step.get("run", ""))
    # the report and the PNGs it links by relative path, from the directory src.review wrote
    assert post["working-directory"] == "artifact/review"
    assert 'cml comment update --target "pr/${{ steps.pr.outputs.number }}" --publish report.md' in post["run"]


def test_the_workflows_use_actions_on_a_current_runtime():
    """Each action at (or past) its first major on Node 24: the Node 20 ones are retired by GitHub."""
    current = {
        "actions/checkout": 5,
        "actions/setup-python": 6,
        "actions/cache": 5,
        "actions/upload-artifact": 6,
        "actions/download-artifact": 7,
    }
    for path in sorted((REPO / ".github/workflows").glob("*.yml")):
        workflow = YAML(typ="safe", pure=True).load(path.read_text())
        for job in workflow["jobs"].values():
            for step in job["steps"]:
                if "uses" in step:
                    action, _, version = step["uses"].partition("@")
                    assert action in current, f"{path.name}: {action} (no known current version)"
                    assert int(version.lstrip("v").split(".")[0]) >= current[action], f"{path.name}: {step['uses']}"


def test_the_pull_request_workflow_runs_lint_and_the_quick_tests_on_the_cpu_build_with_a_pip_cache():
    workflow = YAML(typ="safe", pure=True).load((REPO / ".github/workflows/test.yml").read_text())
    assert "pull_request" in workflow["on"]
    steps = workflow["jobs"]["quick-tests"]["steps"]
    python = next(step for step in steps if step.get("uses", "").startswith("actions/setup-python"))
    assert python["with"]["cache"] == "pip" and python["with"]["cache-dependency-path"] == "requirements.txt"
    commands = [line.strip() for step in steps for line in step.get("run", "").splitlines() if line.strip()]
    torch_pin = next(
        line for line in (REPO / "requirements.txt").read_text().splitlines() if line.startswith("torch==")
    )
    cpu = next(i for i, c in enumerate(commands) if c.startswith(f"python -m pip install {torch_pin.split()[0]} "))
    assert "--index-url https://download.pytorch.org/whl/cpu" in commands[cpu]
    order = [cpu, commands.index("python -m pip install -r requirements.txt"), commands.index("python -m ruff check .")]
    assert order == sorted(order) and commands[-1] == 'python -m pytest -q -m "not slow"', commands


def test_every_python_entry_point_and_dvc_command_of_the_workflow_exists():
    from dvc.cli import parse_args

    for words in workflow_commands():
        if words[:2] != ["python", "-m"]:
            continue
        module, args = words[2], words[3:]
        assert importlib.util.find_spec(module) is not None, f"{WORKFLOW.name}: no module {module}"
        if module == "dvc":
            parse_args(args)  # DVC's own parser: an unknown command or option fails here
        elif module == "pip" and "-r" in args:
            assert (REPO / args[args.index("-r") + 1]).is_file()
        elif module.startswith("src."):
            result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True)
            assert result.returncode == 0, result.stderr
            for option in (a for a in args if a.startswith("--")):
                assert option in result.stdout, f"{module} has no option {option}"


@pytest.mark.skipif(shutil.which("cml") is None, reason="CML (npm @dvcorg/cml) is not installed here")
def test_cml_accepts_the_comment_command():
    result = subprocess.run(["cml", "comment", "update", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_tables_show_base_new_and_change():
    diff = {
        "metrics/bert/test.json": {
            "macro_recall": {"old": 0.43, "new": 0.6426, "diff": 0.2126},
            "accuracy": {"old": 0.5, "new": 0.5, "diff": 0},
        },
        "metrics/bert/train.json": {"val.macro_recall": {"new": 0.58}},
    }
    table, changed = metrics_table("bert", diff)
    assert changed
    assert "| test macro-recall | 0.4300 | 0.6426 | +0.2126 |" in table
    assert "| test accuracy | 0.5000 | 0.5000 | 0 |" in table
    assert "| val macro-recall (best epoch) | – | 0.5800 | – |" in table  # new in this change
    assert metrics_table("lstm", diff) == ("", False)
    assert format_change(0.5, 0.25) == "-0.2500"
    assert params_table({}) == "No params changed.\n"
    assert "| `learning_rate` | 2e-05 | 3e-05 |" in params_table(
        {"params.yaml": {"learning_rate": {"old": 2e-05, "new": 3e-05}}}
    )


def test_an_unknown_base_is_one_error_line(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    result = subprocess.run(
        [sys.executable, "-m", "src.review", "--base", "no-such-rev"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: --base no-such-rev: not a git revision here (fetch it first, e.g. `git fetch origin main`)"
    )


# --- is the change real? intervals, McNemar, verdicts, calibration ------------------------------------------

LABELS = ["negative", "neutral", "positive"]


def known_pair(n: int, gained: int, lost: int, seed: int = 0):
    """Gold labels, a base model right on ~70%, and a new model that fixes ``gained`` of the base's errors
    and breaks ``lost`` of its right answers: the change in accuracy is exactly (gained - lost) / n."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 3, n)
    base = np.where(rng.random(n) < 0.7, gold, (gold + rng.integers(1, 3, n)) % 3)
    wrong, right = np.flatnonzero(base != gold), np.flatnonzero(base == gold)
    fixed, broken = rng.choice(wrong, gained, replace=False), rng.choice(right, lost, replace=False)
    new = base.copy()
    new[fixed] = gold[fixed]
    new[broken] = (gold[broken] + 1) % 3
    return gold, base, new


def naive_bootstrap(gold, base, new, resamples=2000, seed=1):
    """The textbook paired bootstrap: draw tweet indices with replacement, score both models with sklearn's
    formulas written out per resample (accuracy, macro recall)."""
    rng = np.random.default_rng(seed)
    n, changes = len(gold), {"accuracy": [], "macro_recall": []}
    for _ in range(resamples):
        index = rng.integers(0, n, n)
        g, b, w = gold[index], base[index], new[index]
        changes["accuracy"].append(np.mean(w == g) - np.mean(b == g))
        changes["macro_recall"].append(np.mean([np.mean(w[g == k] == k) - np.mean(b[g == k] == k) for k in range(3)]))
    return {metric: np.percentile(values, [2.5, 97.5]) for metric, values in changes.items()}


def test_intervals_p_value_and_verdict_against_independent_computations():
    gold, base, new = known_pair(4000, gained=200, lost=100)
    result = paired_bootstrap(gold, base, new, LABELS)
    for side, predictions in (("base", base), ("new", new)):  # the point figures are src/scoring/metrics.py's
        expected = detailed_metrics(gold.tolist(), predictions.tolist(), LABELS)
        for metric in ("macro_recall", "f1_pn", "accuracy"):
            assert result[metric][side] == pytest.approx(expected[metric], abs=1e-12)
    assert result["accuracy"]["change"] == pytest.approx(100 / 4000)
    naive = naive_bootstrap(gold, base, new)
    for metric in ("accuracy", "macro_recall", "f1_pn"):
        low, high = result[metric]["interval"]
        assert low < result[metric]["change"] < high  # the true difference of this sample is inside
        assert 0 < low and high - low < 0.03  # narrow at n = 4000, and all above zero
        assert verdict(result[metric]["interval"]) == "better"
        if metric in naive:  # the same distribution as resampling tweet indices
            np.testing.assert_allclose([low, high], naive[metric], atol=0.003)
    # McNemar: 200 gained, 100 lost; the exact two-sided binomial p computed two other ways
    test = mcnemar(gold, base, new)
    assert (test["base_wrong_new_right"], test["base_right_new_wrong"]) == (200, 100)
    assert test["p_value"] == pytest.approx(binomtest(100, 300, 0.5, alternative="two-sided").pvalue, rel=1e-12)
    by_hand = min(1.0, 2 * sum(math.comb(300, k) for k in range(0, 101)) / 2**300)
    assert test["p_value"] == pytest.approx(by_hand, rel=1e-9)
    # swapping the models mirrors everything
    mirrored = paired_bootstrap(gold, new, base, LABELS)
    assert verdict(mirrored["accuracy"]["interval"]) == "worse"


def test_an_identical_pair_and_a_tiny_change_are_within_noise():
    gold, base, _ = known_pair(2000, gained=0, lost=0)
    same = paired_bootstrap(gold, base, base, LABELS)
    assert all(entry["interval"] == [0.0, 0.0] and entry["change"] == 0 for entry in same.values())
    assert verdict(same["accuracy"]["interval"]) == "within noise"
    assert mcnemar(gold, base, base)["p_value"] == 1.0
    gold, base, new = known_pair(2000, gained=12, lost=10)
    small = paired_bootstrap(gold, base, new, LABELS)
    assert all(verdict(entry["interval"]) == "within noise" for entry in small.values())
    assert mcnemar(gold, base, new)["p_value"] == pytest.approx(binomtest(12, 22).pvalue)
    assert (verdict([-0.1, 0.2]), verdict([0.01, 0.02]), verdict([-0.02, -0.01])) == ("within noise", "better", "worse")
    # seeded: the same interval every time
    assert paired_bootstrap(gold, base, new, LABELS) == small


def test_expected_calibration_error_by_hand():
    probabilities = np.array([[0.95, 0.03, 0.02], [0.95, 0.03, 0.02], [0.5, 0.3, 0.2], [0.2, 0.5, 0.3]])
    gold = [0, 1, 0, 1]
    # bin 15 (0.933, 1]: accuracy 1/2, confidence 0.95; bin 8 (0.467, 0.533]: accuracy 1, confidence 0.5
    assert expected_calibration_error(probabilities, gold) == pytest.approx(2 / 4 * 0.45 + 2 / 4 * 0.5)
    assert expected_calibration_error(np.eye(3)[[0, 1, 2]], [0, 1, 2]) == 0.0
    assert [row["count"] for row in reliability_bins(probabilities, gold)][7] == 2


def test_values_within_a_relative_tolerance_are_the_same():
    assert same_values([{"epoch": 1, "val_loss": 0.8912345}], [{"epoch": 1, "val_loss": 0.8912346}])
    assert not same_values([{"epoch": 1, "val_loss": 0.89123}], [{"epoch": 1, "val_loss": 0.89124}])
    assert not same_values({"a": 1}, {"a": 1, "b": 2})


def test_the_models_come_from_the_evaluate_foreach():
    assert evaluate_models(REPO / "dvc.yaml") == ["bert", "lstm", "tune_best", "tfidf", "ensemble", "majority"]


# --- the command line on a small DVC repository --------------------------------------------------------------

DVC_YAML = """\
stages:
  train_lstm:
    cmd: python -c "pass"
    params:
      - learning_rate
    outs:
      - dvclive/train_lstm/plots:
          cache: false
      - metrics/lstm/train.json:
          cache: false
  evaluate:
    foreach:
      bert: models/bert
      lstm: models/lstm
    do:
      cmd: python -c "pass"
      deps:
        - data/processed/test.jsonl
      outs:
        - predictions/${key}
      metrics:
        - metrics/${key}/test.json:
            cache: false
"""


def _git(work, *args):
    subprocess.run(["git", *args], cwd=work, check=True, capture_output=True)


def _review(work, *args):
    env = {**os.environ, "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1"}
    env.pop("PYTHONSAFEPATH", None)
    return subprocess.run(
        [sys.executable, "-m", "src.review", "--base", "HEAD", *args], cwd=work, env=env, capture_output=True, text=True
    )


def write_state(work: Path, gold, predictions: dict, probabilities: dict, val_loss: float) -> None:
    """What the pipeline leaves: predictions (+ probabilities), metrics and the LSTM's curves."""
    for model, labels in predictions.items():
        (work / f"predictions/{model}").mkdir(parents=True, exist_ok=True)
        (work / f"predictions/{model}/test.txt").write_text("".join(f"{y}\n" for y in labels))
        if probabilities.get(model) is not None:
            write_probabilities(work / f"predictions/{model}/probs_test.csv", probabilities[model], LABELS)
        (work / f"metrics/{model}").mkdir(parents=True, exist_ok=True)
        report = detailed_metrics(gold.tolist(), list(labels), LABELS)
        (work / f"metrics/{model}/test.json").write_text(json.dumps(report))
    (work / "dvclive/train_lstm/plots/metrics/val").mkdir(parents=True, exist_ok=True)
    (work / "dvclive/train_lstm/plots/metrics/val/loss.tsv").write_text(f"step\tloss\n10\t{val_loss}\n")
    (work / "metrics/lstm/train.json").write_text(json.dumps({"val": {"macro_recall": 0.5 + val_loss / 10}}))


@pytest.fixture
def review_repo(tmp_path):
    """A DVC repository whose HEAD holds a base (bert and lstm, no probabilities, as written before evaluate
    kept them) and whose workspace holds a new bert (200 fixed, 100 broken, with probabilities) and an lstm
    that differs from the base only in the 7th digit of its curves and train metrics."""
    work = tmp_path / "repo"
    (work / "data/processed").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    (work / "dvc.yaml").write_text(DVC_YAML)
    gold, base, new = known_pair(3000, gained=200, lost=100)
    (work / "data/processed/test.jsonl").write_text(
        "".join(json.dumps({"text": f"tweet {i} | with a pipe", "label": int(y)}) + "\n" for i, y in enumerate(gold))
    )
    lstm = (gold + (np.arange(len(gold)) % 3 == 0)) % 3
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    for args in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "t@example.com"],
        ["git", "config", "user.name", "test"],
        [sys.executable, "-m", "dvc", "init", "-q"],
    ):
        subprocess.run(args, cwd=work, check=True, capture_output=True, env=env)
    write_state(work, gold, {"bert": base, "lstm": lstm}, {}, val_loss=0.891234)
    subprocess.run(
        [sys.executable, "-m", "dvc", "commit", "-f", "-q"], cwd=work, check=True, capture_output=True, env=env
    )
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "base")
    probabilities = np.full((len(gold), 3), 0.1)
    probabilities[np.arange(len(gold)), new] = 0.8
    write_state(work, gold, {"bert": new, "lstm": lstm}, {"bert": probabilities}, val_loss=0.8912341)
    return work, gold, base, new


def test_review_reports_intervals_verdicts_flips_calibration_and_unchanged(review_repo):
    work, gold, base, new = review_repo
    result = _review(work, "--out", "review")
    assert result.returncode == 0, result.stderr
    report = json.loads((work / "review/report.json").read_text())
    assert report["models"]["lstm"] == {"status": "unchanged"}  # 7th-digit noise is not a change
    bert = report["models"]["bert"]
    assert bert["status"] == "changed" and bert["n"] == 3000
    expected_p = binomtest(200, 300).pvalue
    for metric in ("macro_recall", "f1_pn", "accuracy"):
        entry = bert["metrics"][metric]
        # McNemar's exact test is a test of accuracy: its p-value sits with accuracy alone
        p_value = {"p_value"} if metric == "accuracy" else set()
        assert set(entry) == {"base", "new", "change", "interval", "verdict"} | p_value
        low, high = entry["interval"]
        assert low < entry["change"] < high and entry["verdict"] == "better"
    assert bert["metrics"]["accuracy"]["p_value"] == pytest.approx(expected_p)
    assert bert["mcnemar"]["p_value"] == pytest.approx(expected_p)
    assert bert["metrics"]["accuracy"]["change"] == pytest.approx(100 / 3000)
    flipped = bert["flipped"]
    for i, name in enumerate(LABELS):
        assert flipped[name]["base_wrong_new_right"] == int(np.sum((base != gold) & (new == gold) & (gold == i)))
        assert flipped[name]["base_right_new_wrong"] == int(np.sum((base == gold) & (new != gold) & (gold == i)))
    assert bert["calibration"]["ece_base"] is None  # the base has no probabilities...
    assert bert["calibration"]["ece_new"] == pytest.approx(
        expected_calibration_error(np.where(np.eye(3)[new] == 1, 0.8, 0.1), gold), abs=1e-9
    )
    assert any(
        "The base has no predictions/bert/probs_test.csv" in note for note in bert["notes"]
    )  # ...and the report says so

    text = (work / "review/report.md").read_text()
    head = text.splitlines()[:6]  # the first lines of the pull-request comment carry the verdicts
    assert head[2] == "## Summary" and head[4].startswith("- **bert**: macro-recall +") and "**better**" in head[4]
    assert head[5] == "- lstm: unchanged"
    assert "| test macro-recall |" in text and "McNemar's exact test on the 300 tweets" in text
    assert "| tweet | gold | base → new | confidence (new) | confidence (base) |" in text
    assert "tweet 1 \\| with a pipe" in text or "\\| with a pipe" in text  # a pipe does not break the table
    assert "![bert: reliability diagram" in text
    image = work / "review/reliability_bert.png"
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(json.loads((work / "review/.review-files.json").read_text())) == sorted(
        p.name for p in (work / "review").iterdir() if p.name != ".review-files.json"
    )


def test_review_only_ever_replaces_files_it_wrote(review_repo):
    work, *_ = review_repo
    out = work / "mine"
    out.mkdir()
    (out / "confusion_x.png").write_bytes(b"a user's image")
    (out / "notes.txt").write_text("keep me")
    assert _review(work, "--out", "mine").returncode == 0
    assert (out / "confusion_x.png").read_bytes() == b"a user's image" and (out / "notes.txt").exists()
    first = set(json.loads((out / ".review-files.json").read_text()))
    assert {"report.md", "report.json", "reliability_bert.png"} <= first
    # a second review replaces the first one's files, and a file the first wrote that the second does not
    # write goes; nothing else is touched
    (out / "report.md").write_text("old")
    manifest = json.loads((out / ".review-files.json").read_text())
    (out / "curves_gone.png").write_bytes(b"from the last review")
    (out / ".review-files.json").write_text(json.dumps([*manifest, "curves_gone.png", "../notes.txt", "/etc/x"]))
    assert _review(work, "--out", "mine").returncode == 0
    assert (out / "report.md").read_text().startswith("# Review") and not (out / "curves_gone.png").exists()
    assert (out / "confusion_x.png").exists() and (out / "notes.txt").read_text() == "keep me"
    assert not [p for p in out.iterdir() if p.name.startswith(".review-") and p.is_dir()]  # no staging left
    # a name the report needs, taken by a file no review wrote: refused, the file intact
    theirs = work / "theirs"
    theirs.mkdir()
    (theirs / "report.md").write_text("someone's report")
    result = _review(work, "--out", "theirs")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: theirs/report.md: exists and was not written by src.review (not in theirs/.review-files.json); "
        "move it or choose another --out"
    )
    assert [p.name for p in theirs.iterdir()] == ["report.md"] and (
        theirs / "report.md"
    ).read_text() == "someone's report"


def test_an_unparseable_base_params_yaml_is_said_once_not_shown_as_changes(review_repo):
    work, *_ = review_repo
    good = (work / "params.yaml").read_text()
    (work / "params.yaml").write_text("learning_rate: [2e-5\nseed: {")
    _git(work, "commit", "-qam", "broken params")
    (work / "params.yaml").write_text(good)
    result = _review(work, "--out", "review")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    text = (work / "review/report.md").read_text()
    lines = [line for line in text.splitlines() if "params.yaml" in line and "could not be parsed" in line]
    assert len(lines) == 1 and lines[0].startswith("The base's params.yaml (at `HEAD`")
    assert "None" not in text and "| `learning_rate`" not in text
    report = json.loads((work / "review/report.json").read_text())
    assert report["params"]["base_parsed"] is False and report["params"]["changed"] is None


@pytest.mark.parametrize("foreach", ['{"../out": x}', '[".hidden"]', "{}", "7"])
def test_a_model_name_that_is_not_a_plain_name_is_refused(tmp_path, foreach):
    (tmp_path / "dvc.yaml").write_text(f"stages:\n  evaluate:\n    foreach: {foreach}\n")
    with pytest.raises(PipelineError, match=r"dvc.yaml: stages.evaluate.foreach = .*: expected model names"):
        evaluate_models(tmp_path / "dvc.yaml")


def test_several_experiments_against_one_base_give_one_table_of_verdicts_per_model(review_repo):
    """`--exp a b`: each DVC experiment against the same base; per model one table, a row per experiment."""
    work, gold, base, new = review_repo
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "save", "-n", "new-bert"],
        cwd=work,
        check=True,
        capture_output=True,
        env=env,
    )
    result = _review(work, "--exp", "new-bert", "HEAD", "--out", "review")
    assert result.returncode == 0, result.stderr
    text = (work / "review/report.md").read_text()
    table = text.split("### bert", 1)[1].split("###", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| new-bert |") or line.startswith("| HEAD |")]
    assert rows[0].startswith("| new-bert |") and "**better**" in rows[0], table
    assert rows[1] == "| HEAD | unchanged | | | |", table  # the base against itself
    assert "training-seed variance" in table
    report = json.loads((work / "review/report.json").read_text())
    assert report["experiments"]["new-bert"]["models"]["bert"]["metrics"]["macro_recall"]["verdict"] == "better"
    assert report["experiments"]["HEAD"]["models"]["bert"] == {"status": "unchanged"}
    assert (work / "review/new-bert_reliability_bert.png").is_file()

    unknown = _review(work, "--exp", "no-such-experiment")
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: --exp no-such-experiment: no such experiment")


def test_a_pull_request_cannot_make_the_review_delete_tracked_files_or_write_outside(review_repo):
    work, *_ = review_repo
    # a committed manifest naming a committed file (and its real hash): not proof that a review wrote it
    (work / "review").mkdir()
    (work / "review/keep.txt").write_text("tracked")
    digest = hashlib.sha256(b"tracked").hexdigest()
    (work / "review/.review-files.json").write_text(json.dumps({"keep.txt": digest}))
    # a committed link for another --out, leading out of the repository
    elsewhere = work.parent / "elsewhere"
    elsewhere.mkdir()
    (work / "linked").symlink_to(elsewhere)
    # the workspace's probabilities: a link out of the repository is not read
    outside_probs = work.parent / "probs_test.csv"
    shutil.move(work / "predictions/bert/probs_test.csv", outside_probs)
    (work / "predictions/bert/probs_test.csv").symlink_to(outside_probs)
    _git(work, "add", "review", "linked")
    _git(work, "commit", "-qm", "hostile")

    result = _review(work, "--out", "review")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert (work / "review/keep.txt").read_text() == "tracked"
    report = json.loads((work / "review/report.json").read_text())
    assert report["models"]["bert"]["calibration"]["ece_new"] is None  # the linked probabilities were not read

    result = _review(work, "--out", "linked")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: --out linked: a symbolic link to {elsewhere}, outside the repository; refusing to write there"
    ]
    assert list(elsewhere.iterdir()) == []

"""`dvc plots show` / `dvc plots diff` draw with no network: .dvc/config's plots.html_template inlines vega
(scripts/plots_template.py), checked by rendering the page in headless Chromium (Debian's `chromium`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import init_git_dvc_repo, run_checked

REPO = Path(__file__).resolve().parents[1]
DVC_YAML = """\
plots:
  - loss.tsv:
      x: step
      y: loss
  - accuracy.tsv:
      x: step
      y: accuracy
"""


def _chromium() -> str:
    found = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and chromium is missing: .ci/run installs Debian's chromium")
        pytest.skip("no chromium (apt-get install chromium, or `.ci/run`, which installs it)")
    return found


def _render(page: Path, screenshot: Path | None = None) -> str:
    """The DOM of ``page`` after headless Chromium ran its scripts, every request off the machine refused
    (a proxy on a closed local port: a page that needs the network draws nothing)."""
    args = [
        _chromium(),
        "--headless",
        "--no-sandbox",  # root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        "--virtual-time-budget=15000",
        "--window-size=1200,900",
    ]
    if screenshot is not None:
        shot = [*args, f"--screenshot={screenshot}", page.as_uri()]
        subprocess.run(shot, capture_output=True, timeout=120, check=True)
    done = subprocess.run([*args, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def _repo(tmp_path: Path) -> tuple[Path, dict]:
    """A git + DVC repository with this project's .dvc/config and template, and two revisions of two plots."""
    work = tmp_path / "repo"
    work.mkdir()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    init_git_dvc_repo(work, env)
    for name in ("config", "plots_offline.html"):
        shutil.copy(REPO / ".dvc" / name, work / ".dvc" / name)
    (work / "dvc.yaml").write_text(DVC_YAML)
    for revision, scale in (("base", 1.0), ("change", 0.5)):
        steps = range(20)
        (work / "loss.tsv").write_text("step\tloss\n" + "".join(f"{s}\t{scale / (s + 1):.4f}\n" for s in steps))
        accuracy = "".join(f"{s}\t{1 - scale / (s + 2):.4f}\n" for s in steps)
        (work / "accuracy.tsv").write_text("step\taccuracy\n" + accuracy)
        run_checked(["git", "add", "-A"], work, env)
        run_checked(["git", "commit", "-qm", revision], work, env)
    return work, env


def _drawn_charts(dom: str) -> int:
    """vega-embed's drawn charts: one <canvas class="marks"> (or <svg class="marks">) per plot."""
    return len(re.findall(r'<(?:canvas|svg)[^>]*class="marks"', dom))


@pytest.mark.parametrize("command", [["show"], ["diff", "HEAD~1"]], ids=["show", "diff"])
def test_plots_page_draws_every_chart_with_the_network_off(tmp_path, command):
    work, env = _repo(tmp_path)
    run_checked([sys.executable, "-m", "dvc", "plots", *command, "-o", "out"], work, env)
    page = work / "out" / "index.html"
    html = page.read_text()
    assert "cdn.jsdelivr.net" not in html and not re.search(r"<script[^>]+src=", html)  # nothing fetched
    shot = Path(os.environ["PLOTS_SCREENSHOT"]) if os.environ.get("PLOTS_SCREENSHOT") else None
    dom = _render(page, shot if command[0] == "diff" else None)
    assert _drawn_charts(dom) == 2, dom[-2000:]


def test_dvcs_own_page_draws_nothing_offline_which_is_why_the_template_exists(tmp_path):
    """The control: the same plots with DVC's default page (vega from the CDN) stay blank in the same browser."""
    work, env = _repo(tmp_path)
    run_checked([sys.executable, "-m", "dvc", "config", "--unset", "plots.html_template"], work, env)
    run_checked([sys.executable, "-m", "dvc", "plots", "show", "-o", "out"], work, env)
    assert "cdn.jsdelivr.net" in (work / "out" / "index.html").read_text()
    assert _drawn_charts(_render(work / "out" / "index.html")) == 0


def test_the_template_is_the_generator_output_with_dvcs_placeholders():
    """The committed page keeps DVC's placeholders, has no `{scripts}` (the CDN tags' slot) and pins each library."""
    text = (REPO / ".dvc/plots_offline.html").read_text()
    assert "{plot_divs}" in text and "{refresh_tag}" in text and "{scripts}" not in text
    from scripts.plots_template import PACKAGES

    for name, version, _, _ in PACKAGES:
        assert f"<!-- {name} {version} " in text
    assert text.count("<script>") == len(PACKAGES) and "Redistribution and use in source and binary forms" in text

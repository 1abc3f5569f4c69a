"""download_glove: fetch the GloVe archive for glove.corpus and extract glove.dimension into data/glove/."""

import sys
from pathlib import Path

from src.core.cli import run_stage
from src.data import glove
from src.data.download import download

GLOVE_DIR = Path("data/glove")
# Archives are large (GloVe Twitter: 1.4 GB) and hold every dimension. data/downloads is this stage's
# second output, declared in dvc.yaml with `persist: true` (DVC keeps it when the stage reruns) and
# `cache: false` (not copied into DVC's cache): switching glove.dimension extracts again from the kept
# archive instead of downloading it again. download(reuse=True) keeps it only when it came whole from
# the same URL (and matches glove.sha256 when pinned).
ARCHIVE_DIR = Path("data/downloads")


def main(params: dict) -> None:
    cfg = params["glove"]
    member = glove.member_name(cfg["corpus"], cfg["dimension"])  # bad pair: error before any download
    url = glove.archive_url(cfg["corpus"], cfg["base_url"])
    archive = download(
        url, ARCHIVE_DIR / glove.GLOVE_VARIANTS[cfg["corpus"]][0], sha256=cfg["sha256"], within=ARCHIVE_DIR, reuse=True
    )
    glove.extract_member(archive, member, GLOVE_DIR / member, within=GLOVE_DIR)


if __name__ == "__main__":
    run_stage(main, argv=sys.argv[1:])

"""download_glove: fetch the GloVe archive for glove.corpus and extract glove.dimension into data/glove/."""
from pathlib import Path

from src import glove
from src.cli import run_stage
from src.download import download

GLOVE_DIR = Path("data/glove")
# Archives are large (GloVe Twitter: 1.4 GB) and hold every dimension: keep them outside DVC's
# outputs so that switching glove.dimension extracts again without downloading again.
ARCHIVE_DIR = Path("data/downloads")


def main(params: dict) -> None:
    cfg = params["glove"]
    member = glove.member_name(cfg["corpus"], cfg["dimension"])  # bad pair: error before any download
    url = glove.archive_url(cfg["corpus"], cfg["base_url"])
    archive = download(url, ARCHIVE_DIR / Path(url).name, sha256=cfg["sha256"])
    glove.extract_member(archive, member, GLOVE_DIR / member)


if __name__ == "__main__":
    run_stage(main)

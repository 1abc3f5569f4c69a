"""download_data: fetch TweetEval sentiment into data/raw/ (params: data.base_url, data.files, data.sha256)."""
from pathlib import Path

from src.cli import run_stage
from src.download import download

RAW_DIR = Path("data/raw")


def main(params: dict) -> None:
    data = params["data"]
    for name in data["files"]:
        download(data["base_url"] + name, RAW_DIR / name, sha256=data["sha256"].get(name))


if __name__ == "__main__":
    run_stage(main)

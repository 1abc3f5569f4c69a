"""download_data: fetch TweetEval sentiment into data/raw/ (params: data.base_url, data.files, data.sha256)."""

import sys
from pathlib import Path

from src.core.cli import run_stage
from src.core.errors import PipelineError
from src.core.paths import plain_file_name
from src.data.download import download

RAW_DIR = Path("data/raw")


def main(params: dict) -> None:
    data = params["data"]
    for name in data["sha256"]:
        plain_file_name(name, "data.sha256 key")
        if name not in data["files"]:  # a pin that never applies would be silently ignored
            raise PipelineError(f"data.sha256 key {name!r} is not in data.files ({', '.join(data['files'])})")
    for name in data["files"]:
        # the schema already refuses such names; checked again here, and download() refuses any
        # destination outside RAW_DIR, so no caller can write elsewhere
        plain_file_name(name, "data.files entry")
        download(data["base_url"] + name, RAW_DIR / name, sha256=data["sha256"].get(name), within=RAW_DIR)


if __name__ == "__main__":
    run_stage(main, argv=sys.argv[1:])

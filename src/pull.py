"""`python -m src.pull`: main's data and models from the DVC remote, or one line saying what to do without one.

    python -m src.pull          # `make pull`; extra arguments go to `dvc pull` (e.g. train_bert)

A fresh clone has no DVC remote: the team adds theirs once (`dvc remote add -d storage <url>`, committed
in .dvc/config, or `--local` for one machine). Without one, or with a local remote whose directory does
not exist here, `dvc pull` answers with a list of missing cache files; this says instead, in one line,
what to run: add the remote, or compute the outputs with `dvc repro`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from src.core.cli import answer_help, pipeline_errors_exit
from src.core.containment import check_every_stage
from src.core.errors import PipelineError
from src.core.secrets import redact

NO_REMOTE = (
    "no DVC remote to pull from{detail}: add the team's with `dvc remote add -d storage <url>` "
    "(docs/review_walkthrough.md), or compute every output here with `make repro` "
    "(25 min on an idle 2-core AMD EPYC)"
)


def default_remote() -> tuple[str, str] | None:
    """(name, url) of the default DVC remote (project, local and global config merged), or None."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        config = repo.config
        name = config["core"].get("remote")
        if not name:
            return None
        remote = config["remote"].get(name)
        if remote is None:
            raise PipelineError(f".dvc/config: core.remote = {name!r}, but no remote of that name is declared")
        return name, remote["url"]


def check_remote() -> str:
    """The default remote's name, or a PipelineError saying what to do when there is none to reach."""
    remote = default_remote()
    if remote is None:
        raise PipelineError(NO_REMOTE.format(detail=""))
    name, url = remote
    scheme = urlsplit(url).scheme
    if scheme in ("", "file") or len(scheme) == 1:  # a local path (a Windows drive letter is one letter)
        path = Path(urlsplit(url).path if scheme == "file" else url)
        if not path.is_absolute():
            # DVC resolves it against the config file's directory: .dvc/
            path = (Path(".dvc") / path).resolve()
        if not path.is_dir():
            raise PipelineError(NO_REMOTE.format(detail=f" (remote {name!r}: {path} does not exist on this machine)"))
    elif scheme in ("http", "https"):
        check_reachable(name, url)
    return name


REACH_TIMEOUT_S = 10


def check_reachable(name: str, url: str) -> None:
    """An HTTP(S) remote answers at all (any status: DVC's own requests say what a 401 or 404 means);
    else a PipelineError naming it, where `dvc pull` would list every file as missing from the cache."""
    import urllib.error
    import urllib.request

    try:
        parts = urlsplit(url)
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        if not host:
            raise ValueError("no host")
        # the credentials stay out of the request; DVC sends them itself
        bare = parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")).geturl()
        urllib.request.urlopen(urllib.request.Request(bare, method="HEAD"), timeout=REACH_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PipelineError(
            redact(
                f"remote {name!r} ({url}): cannot reach it ({reason}); check the URL, the server and the network, "
                "then run again (nothing was pulled)"
            )
        ) from None


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    answer_help(argv, f"usage: python -m src.pull [DVC PULL ARGUMENTS]\n\n{__doc__.strip()}")  # before any pull
    with pipeline_errors_exit():
        check_remote()
        check_every_stage("check out or delete", inputs_too=False)  # no link out of the repository
    sys.exit(subprocess.call([sys.executable, "-m", "dvc", "pull", *argv]))


if __name__ == "__main__":
    main()

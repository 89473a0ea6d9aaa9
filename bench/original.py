"""A faithful re-implementation of the design gh_assets replaces, for side-by-side figures.

- Crawl (jobs in ``bench.original_jobs``): RQ with real worker processes (``rq worker``, which
  forks a work horse per job). One job per ``GET /users`` page (GitHub's default ``per_page`` of
  30) enqueues the next page and one job per listed user; each user job does
  ``GET /users/{login}`` and stores the user with one ``HSET`` (one round trip per user).
- Writes: one ``HSET`` round trip per user.
- Read into pandas: ``KEYS gh:user:*``, one ``HGETALL`` per key, and ``pd.concat`` of a one-row
  DataFrame per user.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import redis
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, StartedJobRegistry

from bench.original_jobs import FIELDS, QUEUE, crawl_users_page
from gh_assets_devtools import services

COUNTERS = FIELDS[3:]
REPO = Path(__file__).resolve().parents[1]

# -- driving it ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrawlResult:
    seconds: float
    users: int


@contextlib.contextmanager
def rq_workers(queue_url: str, count: int, log_dir: Path) -> Iterator[list[str]]:
    """``count`` real ``rq worker`` processes on the bench's Redis; stopped on exit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    rq_bin = Path(sys.executable).with_name("rq")
    names = [f"bench-original-{i}-{uuid.uuid4().hex[:8]}" for i in range(count)]
    processes: list[subprocess.Popen] = []
    connection = redis.Redis.from_url(queue_url)
    try:
        for name in names:
            with open(log_dir / f"{name}.log", "ab") as log:
                processes.append(
                    subprocess.Popen(
                        [
                            str(rq_bin),
                            "worker",
                            "--url",
                            queue_url,
                            "--path",
                            str(REPO),
                            "--name",
                            name,
                            "--quiet",
                            "--max-idle-time",
                            "600",  # a forgotten worker still ends itself
                            QUEUE,
                        ],
                        cwd=REPO,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                        env=os.environ | {"PYTHONPATH": str(REPO)},
                    )
                )
        deadline = time.monotonic() + 60
        while {w.name for w in Worker.all(connection=connection)} < set(names):
            dead = [p for p in processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"rq workers did not start; see {log_dir}")
            time.sleep(0.05)
        yield names
    finally:
        for process in processes:
            services.stop_process_group(process, grace=10)
        connection.close()


def run_crawl(
    api_url: str, queue_url: str, data_url: str, max_id: int, expected: int, timeout: float
) -> CrawlResult:
    """Enqueue the first page job; wall time until every user is stored (and the queue idle)."""
    queue_client = redis.Redis.from_url(queue_url)
    data = redis.Redis.from_url(data_url)
    try:
        queue = Queue(QUEUE, connection=queue_client)
        failed = FailedJobRegistry(queue=queue)
        started_jobs = StartedJobRegistry(queue=queue)
        started = time.perf_counter()
        queue.enqueue(crawl_users_page, api_url, queue_url, data_url, 0, max_id)
        seconds = None
        deadline = time.monotonic() + timeout
        while True:  # polled lightly: the workers share the machine's 2 cores with this loop
            if len(failed):
                job = queue.fetch_job(failed.get_job_ids()[0])
                raise RuntimeError(f"original design: a job failed: {job and job.exc_info}")
            if seconds is None and data.dbsize() >= expected:
                seconds = time.perf_counter() - started
            if seconds is not None and queue.count == 0 and len(started_jobs) == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"original design: {data.dbsize()} of {expected} users stored "
                    f"after {timeout:.0f} s"
                )
            time.sleep(0.05)
        return CrawlResult(seconds, data.dbsize())
    finally:
        queue_client.close()
        data.close()


def stored_users(data_url: str) -> dict[int, dict[str, str]]:
    """What the original design stored (for the bench's check against the stand-in)."""
    client = redis.Redis.from_url(data_url)
    try:
        keys = client.keys("gh:user:*")
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            hashes = pipe.execute()
    finally:
        client.close()
    return {
        int(key.decode().rsplit(":", 1)[1]): {k.decode(): v.decode() for k, v in found.items()}
        for key, found in zip(keys, hashes, strict=True)
    }


# -- writes and the read into pandas ---------------------------------------------------------


def hset_per_user(client: redis.Redis, users: list[Mapping[str, str]], prefix: str = "gh:") -> None:
    """One ``HSET`` round trip per user."""
    for user in users:
        client.hset(f"{prefix}user:{user['id']}", mapping=user)


def read_frame_loop(
    client: redis.Redis, prefix: str = "gh:", pattern: str | None = None
) -> pd.DataFrame:
    """``KEYS``, one ``HGETALL`` per key, a one-row DataFrame concatenated per user. ``pattern``
    (default ``gh:user:*``, the original's keys) matches the user hashes to read."""
    frame: pd.DataFrame | None = None
    for key in client.keys(pattern or f"{prefix}user:*"):
        found = client.hgetall(key)
        row = pd.DataFrame([{k.decode(): v.decode() for k, v in found.items()}])
        frame = row if frame is None else pd.concat([frame, row], ignore_index=True)
    if frame is None:
        return pd.DataFrame(columns=list(FIELDS))
    for name in ("id", *COUNTERS):
        frame[name] = frame[name].astype("int64")
    return frame

"""The frame benchmark's child process: one reader (``read_frame`` or the original loop) timed
and measured in a fresh process, its figures printed as one JSON line.

``bench.frame`` starts it as ``python -m bench.frame`` (whose ``__main__`` calls ``child``), so
memory figures start from a clean heap.
"""

from __future__ import annotations

import argparse
import gc
import json
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.children import REPO
from gh_assets.storage import RedisStore


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _vm_hwm() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class _Sampler:
    """Peak RSS by sampling every millisecond (where VmHWM cannot be reset)."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.001):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> _Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _reader(url: str, mode: str):
    import pandas as pd

    from bench import original
    from gh_assets.storage import HASH_FIELDS, frame_from_batches

    store = RedisStore.from_url(url)
    store.client.ping()
    # Warm up lazily imported code paths of both readers on two rows, outside the measurement.
    row = [b"1"] * len(HASH_FIELDS)
    row[HASH_FIELDS.index("fetched_at")] = b"2026-11-27T03:00:00Z"
    frame_from_batches([([b"1", b"2"], [row, row])])
    pd.concat([pd.DataFrame([{"a": "1"}]), pd.DataFrame([{"a": "2"}])], ignore_index=True)
    if mode == "project":
        return lambda: store.read_frame()
    # The same users, written by the project: its key schema's user hashes, in every block.
    users = f"{store.prefix}{{b*}}:user:*"
    return lambda: original.read_frame_loop(store.client, pattern=users)


def _snapshot_before_frame(read) -> dict[str, Any]:
    """What read_frame holds once every batch is typed, just before FrameBuilder.frame joins
    them into the frame (the bench wraps that method for one call: instrumentation, not a
    change), and the peak."""
    from gh_assets import storage

    original = storage.FrameBuilder.frame
    seen: dict[str, Any] = {}

    def wrapped(builder):
        current = tracemalloc.get_traced_memory()[0]
        snapshot = tracemalloc.take_snapshot()
        seen["held_before_frame_mb"] = current / 1e6
        seen["top_sites"] = [
            f"{stat.size / 1e6:.1f} MB in {stat.count:,} blocks at "
            f"{_short(stat.traceback[0].filename)}:{stat.traceback[0].lineno}"
            for stat in snapshot.statistics("lineno")[:6]
        ]
        return original(builder)

    storage.FrameBuilder.frame = wrapped
    tracemalloc.start()
    try:
        frame = read()
        seen["peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
        seen["frame_mb"] = frame.memory_usage(deep=True).sum() / 1e6
    finally:
        tracemalloc.stop()
        storage.FrameBuilder.frame = original
    return seen


def _short(path: str) -> str:
    for marker in ("site-packages/", str(REPO) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _server_cpu(client: Any) -> float:
    """Seconds of CPU the Redis server has used (``INFO cpu``, user + system)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _check(frame: Any, expect: int, mode: str) -> None:
    ids = frame["id"]
    problems = []
    if len(frame) != expect:
        problems.append(f"{len(frame)} rows")
    if str(ids.dtype) != "int64" or ids.nunique() != len(frame):
        problems.append("ids not unique int64")
    elif len(frame) and (ids.min(), ids.max()) != (1, expect):
        problems.append(f"ids {ids.min()}..{ids.max()}")
    if str(frame["followers"].dtype) != "int64":
        problems.append(f"followers is {frame['followers'].dtype}")
    if problems:
        raise SystemExit(f"{mode} reader, {expect} users expected: {', '.join(problems)}")


def child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.frame")
    parser.add_argument("url")
    parser.add_argument("--mode", choices=("project", "original"), required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--snapshot", action="store_true")
    args = parser.parse_args(argv)
    import psutil

    read = _reader(args.url, args.mode)
    server = RedisStore.from_url(args.url).client
    process = psutil.Process()
    gc.collect()
    rss_before = process.memory_info().rss
    exact = _reset_peak_rss() and _vm_hwm() is not None
    result: dict[str, Any] = {"rss_method": "VmHWM" if exact else "psutil sampling"}
    cpu_before = _server_cpu(server)
    client_before = time.process_time()
    if exact:
        started = time.perf_counter()
        frame = read()
        result["seconds"] = time.perf_counter() - started
        peak = _vm_hwm() or 0
    else:
        with _Sampler() as sampler:
            started = time.perf_counter()
            frame = read()
            result["seconds"] = time.perf_counter() - started
        peak = sampler.peak
    # CPU time, not wall: what each side spent on the read, and so which one bounds it.
    result["server_cpu_seconds"] = _server_cpu(server) - cpu_before
    result["client_cpu_seconds"] = time.process_time() - client_before
    server.close()
    _check(frame, args.expect, args.mode)
    result["rss_before"] = rss_before
    result["rss_peak_delta"] = peak - rss_before
    result["rss_after_delta"] = process.memory_info().rss - rss_before
    result["frame_bytes"] = int(frame.memory_usage(deep=True).sum())
    result["rows"] = len(frame)
    del frame
    gc.collect()
    if args.tracemalloc:
        tracemalloc.start()
        started = time.perf_counter()
        frame = read()
        result["traced_seconds"] = time.perf_counter() - started
        result["traced_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del frame
        gc.collect()
    if args.profile:
        from bench.profiling import profile_call

        result["profile"] = profile_call(read)
    if args.snapshot and args.mode == "project":
        result["snapshot"] = _snapshot_before_frame(read)
    print(json.dumps(result))
    return 0

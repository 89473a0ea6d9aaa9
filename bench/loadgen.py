"""``python -m bench.loadgen URL --requests N --clients C``: the stand-in's own ceiling.

C threads, each with one keep-alive connection, send N ``GET /user/{id}`` requests in all
(bounded in count and in time) and print one JSON line: seconds, answers by status, requests/s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

DEADLINE = 300.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--ids", type=int, default=1000)
    args = parser.parse_args(argv)
    parts = urlsplit(args.url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loadgen only targets loopback addresses")
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    next_request = iter(range(args.requests))
    deadline = time.monotonic() + DEADLINE

    def client() -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        seen: Counter[int] = Counter()
        try:
            while time.monotonic() < deadline:
                with lock:
                    number = next(next_request, None)
                if number is None:
                    break
                connection.request(
                    "GET", f"/user/{number % args.ids + 1}", headers={"User-Agent": "bench"}
                )
                response = connection.getresponse()
                response.read()
                seen[response.status] += 1
        finally:
            connection.close()
            with lock:
                statuses.update(seen)

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    total = sum(statuses.values())
    print(
        json.dumps(
            {
                "seconds": seconds,
                "requests": total,
                "by_status": {str(k): v for k, v in statuses.items()},
                "requests_per_s": total / seconds,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

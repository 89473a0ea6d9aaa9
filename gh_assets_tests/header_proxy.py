"""An HTTP proxy in front of the stand-in that rewrites its answers' rate-limit headers: what a
corporate proxy or an edge error does (no ``X-RateLimit-*`` at all), or GitHub's clock running
behind Redis's (every ``X-RateLimit-Reset`` moved back). A real server on a real port, for the
tests that need answers the stand-in itself never gives.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import requests

from gh_assets_devtools.standin.http_server import KeepAliveHTTPServer, Reply, Request

RATE_LIMIT_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}

Rewrite = Callable[[int, dict[str, str]], dict[str, str]]  # (answer number, headers) -> headers


def strip_every(n: int) -> Rewrite:
    """Drop the rate-limit headers of every ``n``-th answer (the n-th, the 2n-th, ...)."""

    def rewrite(number: int, headers: dict[str, str]) -> dict[str, str]:
        if number % n:
            return headers
        return {k: v for k, v in headers.items() if k.lower() not in RATE_LIMIT_HEADERS}

    return rewrite


def reset_at(clock: Callable[[], float]) -> Rewrite:
    """Every ``X-RateLimit-Reset`` replaced by ``clock()``: e.g. a second before Redis's now."""

    def rewrite(number: int, headers: dict[str, str]) -> dict[str, str]:
        return {
            k: str(int(clock())) if k.lower() == "x-ratelimit-reset" else v
            for k, v in headers.items()
        }

    return rewrite


class _Forwarder:
    """The proxy's answerer: each request sent on to ``upstream``, its answer rewritten."""

    verbose = False

    def __init__(self, upstream: str, rewrite: Rewrite) -> None:
        self._upstream, self._rewrite = upstream, rewrite
        self._session = requests.Session()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def answer(self, request: Request) -> Reply:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        resp = self._session.request(
            request.method,
            self._upstream + request.target,
            headers=headers,
            data=request.body or None,
            allow_redirects=False,
            timeout=30,
        )
        with self._lock:
            number = next(self._numbers)
        kept = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP}
        return Reply(resp.status_code, self._rewrite(number, kept), resp.content)


@contextmanager
def header_proxy(upstream: str, rewrite: Rewrite) -> Iterator[str]:
    """A proxy to ``upstream`` rewriting every answer's headers; yields its base URL."""
    httpd = KeepAliveHTTPServer(("127.0.0.1", 0), _Forwarder(upstream, rewrite))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        thread.join()

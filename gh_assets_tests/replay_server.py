"""A scripted GitHub over real HTTP: ``Replay`` answers each request with the next queued
``Reply`` (or ``route``'s) and notes what it was asked; ``replay_server`` serves one on a free port.
Shared by the client's tests and the configuration faults' (the ``replay`` fixture in conftest)."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "ghp" + "_SECRETSECRETSECRET0123456789abcdefXYZ"  # assembled: no token-shaped literal


def rate_limit_headers(remaining: int, in_seconds: int) -> tuple[int, tuple[tuple[str, str], ...]]:
    """GitHub's primary rate-limit headers with a reset ``in_seconds`` from now, and that reset."""
    reset = int(time.time()) + in_seconds
    return reset, (("X-RateLimit-Remaining", str(remaining)), ("X-RateLimit-Reset", str(reset)))


@dataclass
class Reply:
    """One scripted answer; ``body`` is JSON-encoded unless it is bytes."""

    status: int = 200
    body: Any = None
    headers: Sequence[tuple[str, str]] = ()
    delay: float = 0.0
    drop: bool = False  # reset the connection instead of answering


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names


@dataclass
class Replay:
    """What the server answers (a queue, or ``route`` by path) and what it was asked."""

    url: str = ""
    replies: deque[Reply] = field(default_factory=deque)
    route: Callable[[str], Reply] | None = None
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.seen.append(
                Seen(
                    handler.command,
                    handler.path,
                    {k.lower(): v for k, v in handler.headers.items()},
                )
            )
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            if self.route is not None:
                reply = self.route(handler.path)
            elif self.replies:
                reply = self.replies.popleft()
            else:
                reply = Reply(418, {"message": "replay queue is empty"})
        try:
            time.sleep(reply.delay)
            if reply.drop:
                linger = struct.pack("ii", 1, 0)  # close with RST: a connection reset
                handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                handler.close_connection = True
                return
            body = reply.body if isinstance(reply.body, bytes) else b""
            if reply.body is not None and not isinstance(reply.body, bytes):
                body = json.dumps(reply.body).encode()
            handler.send_response(reply.status)
            for name, value in reply.headers:
                handler.send_header(name, value)
            if reply.status != 304:
                handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if reply.status != 304:
                handler.wfile.write(body)
        finally:
            with self.lock:
                self.in_flight -= 1


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: clients that time out leave broken pipes behind on purpose."""


@contextmanager
def replay_server() -> Iterator[Replay]:
    """A ``Replay`` served on 127.0.0.1, stopped on exit."""
    state = Replay()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            state.answer(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

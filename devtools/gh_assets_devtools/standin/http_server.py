"""The stand-in's HTTP plumbing: ``Request`` and ``Reply``, and the threading server carrying them.

Kept apart from what the stand-in answers so that the answering code deals only in plain
``Request``/``Reply`` values (tests wrap ``StandinServer.answer`` the same way), while this module
owns sockets, keep-alive and the orderly shutdown of open connections.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, Protocol

MAX_ADMIN_BODY = 1 << 20


@dataclass(frozen=True)
class Request:
    """What the stand-in needs from one HTTP request."""

    method: str
    target: str  # path and query as sent
    headers: Mapping[str, str]  # case-insensitive (http.client.HTTPMessage)
    client_ip: str
    body: bytes = b""


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class Answerer(Protocol):
    """What the HTTP server serves: ``StandinServer``."""

    verbose: bool

    def answer(self, request: Request) -> Reply: ...


def json_body(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def json_reply(status: int, payload: Any) -> Reply:
    return Reply(status, {"Content-Type": "application/json; charset=utf-8"}, json_body(payload))


class KeepAliveHTTPServer(ThreadingHTTPServer):
    """A thread per connection; it keeps track of open connections to close them on stop."""

    daemon_threads = True
    request_queue_size = 256  # 100+ clients connecting at once must not hit SYN retries

    def __init__(self, address: tuple[str, int], standin: Answerer) -> None:
        self.standin = standin
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._closing = False
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the FQDN, which stalls without DNS.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def opened(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)
            if self._closing:
                _hang_up(connection)

    def closed(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Keep-alive connections would otherwise outlive the server on their daemon threads."""
        with self._connections_lock:
            self._closing = True
            for connection in self._connections:
                _hang_up(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-answer is routine; only real failures get a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries Content-Length
    wbufsize = 1 << 16  # headers and body leave in one send; handle_one_request flushes
    disable_nagle_algorithm = True  # bodies beyond the buffer still go out at once
    timeout = 300  # drop idle keep-alive connections eventually
    server: KeepAliveHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.opened(self.connection)

    def finish(self) -> None:
        self.server.closed(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_ADMIN_BODY:
            self.send_error(400 if length < 0 else 413)
            return
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(self.command, self.path, self.headers, self.client_address[0], body)
        reply = self.server.standin.answer(request)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.status != 304:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def version_string(self) -> str:
        return "GitHubStandin/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.standin.verbose:
            super().log_message(format, *args)


def _hang_up(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the client may have closed it already
        connection.shutdown(socket.SHUT_RDWR)

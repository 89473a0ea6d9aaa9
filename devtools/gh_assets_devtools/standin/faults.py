"""The faults the stand-in injects into API answers: latency, random 503s and failing ID ranges.

They are steered while the server runs (``StandinServer.set_faults`` or ``/_standin/faults``) and
answered the way GitHub's edge fails: an HTML page without rate-limit headers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from typing import Any

from gh_assets_devtools.standin.http_server import Reply

HTML_ERRORS = {
    502: "<html><body><h1>502 Bad Gateway</h1>"
    "The server returned an invalid or incomplete response.</body></html>\n",
    503: "<html><body><h1>503 Service Unavailable</h1>"
    "No server is available to handle this request.</body></html>\n",
}


class Faults:
    """The current faults; each API request reads them once, so changes apply to the next one."""

    def __init__(self, seed: int) -> None:
        self._errors = random.Random(seed)  # its own stream: faults never shift the data
        self.latency_ms = 0.0
        self.error_rate = 0.0
        self.fail_ids: tuple[tuple[int, int], ...] = ()

    def set(
        self,
        *,
        latency_ms: float | None = None,
        error_rate: float | None = None,
        fail_ids: Iterable[Iterable[int]] | None = None,
    ) -> None:
        """Change the given faults, or none if one is invalid; ``fail_ids`` are inclusive
        ``(first, last)`` ID ranges."""
        if latency_ms is not None and not 0 <= latency_ms <= 600_000:
            raise ValueError(f"latency_ms must be in [0, 600000], got {latency_ms}")
        if error_rate is not None and not 0 <= error_rate <= 1:
            raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
        ranges = None if fail_ids is None else tuple(_id_range(r) for r in fail_ids)
        if latency_ms is not None:
            self.latency_ms = float(latency_ms)
        if error_rate is not None:
            self.error_rate = float(error_rate)
        if ranges is not None:
            self.fail_ids = ranges

    def state(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "fail_ids": [list(r) for r in self.fail_ids],
        }

    def delay(self) -> None:
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)  # no lock is held: concurrent clients overlap

    def unavailable(self) -> bool:
        """Whether this answer is one of the random 503s."""
        return bool(self.error_rate) and self._errors.random() < self.error_rate

    def fails(self, ids: Iterable[int]) -> bool:
        """Whether an answer showing these user IDs is a 502."""
        return any(a <= i <= b for i in ids for a, b in self.fail_ids)


def edge_error(status: int) -> Reply:
    """An edge error as GitHub's proxies send it: HTML, no rate-limit headers (recording 17)."""
    return Reply(status, {"Content-Type": "text/html"}, HTML_ERRORS[status].encode())


def _id_range(value: Iterable[int]) -> tuple[int, int]:
    first, last = (int(v) for v in value)
    if first > last:
        raise ValueError(f"empty ID range {first}-{last}")
    return first, last

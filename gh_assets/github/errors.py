"""The errors the client raises; each message names method, URL (credentials removed) and status."""

from __future__ import annotations

import errno
import json
import math
import socket
from datetime import UTC, datetime

# What a failed connection's OS error means, in the words a person checking a URL needs.
_OS_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ENOENT: "no such socket file",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ECONNRESET: "connection reset",
    errno.ETIMEDOUT: "timed out",
}


class GitHubConfigError(ValueError):
    """The client's settings cannot work (e.g. anonymous GraphQL against GitHub itself)."""


class GitHubError(Exception):
    """Base of every error the client raises on a request."""

    def __init__(self, detail: str, *, url: str, status: int | None, method: str = "GET") -> None:
        answer = "no response" if status is None else status
        super().__init__(f"{method} {url} -> {answer}: {detail}")
        self.detail = detail
        self.method = method
        self.url = url
        self.status = status
        # Answers of other users that came in before this error stopped a batch (get_details):
        # a page keeps them for its re-run instead of paying for them again.
        self.partial: dict[int, object] = {}


class MalformedResponseError(GitHubError):
    """The answer does not have the shape GitHub documents; retrying would not help."""


class GitHubHTTPError(GitHubError):
    """A status that retrying cannot fix (401, plain 403, 422...), or retries exhausted."""


class CredentialRefusedError(GitHubHTTPError):
    """GitHub refused one credential of several (401); ``which`` names it without its secret,
    e.g. ``GITHUB_TOKEN #2 (sha256:1a2b3c4d5e6f)`` or ``GITHUB_APP_ID/GITHUB_APP_PRIVATE_KEY``."""

    def __init__(self, detail: str, *, url: str, which: str, method: str = "GET") -> None:
        super().__init__(detail, url=url, status=401, method=method)
        self.which = which


class GitHubUnreachableError(GitHubHTTPError):
    """No connection to the API (refused, unresolvable, timed out), after the client's retries;
    ``reason`` says which in a few words."""

    def __init__(self, detail: str, *, url: str, reason: str, method: str = "GET") -> None:
        super().__init__(detail, url=url, status=None, method=method)
        self.reason = reason


class RateLimitError(GitHubError):
    """The rate limit needs a longer wait than the client may sleep; retry after ``reset_at``."""

    def __init__(
        self, *, url: str, status: int, reset_at: datetime, secondary: bool, method: str = "GET"
    ) -> None:
        kind = "secondary" if secondary else "primary"
        seconds = max(0.0, (reset_at - datetime.now(UTC)).total_seconds())
        super().__init__(
            f"GitHub rate limit exhausted ({kind}); resets at "
            f"{reset_at:%Y-%m-%dT%H:%M:%SZ} ({_in(seconds)})",
            url=url,
            status=status,
            method=method,
        )
        self.reset_at = reset_at
        self.secondary = secondary

    @classmethod
    def of(cls, limit: tuple[float, datetime, bool], **where: object) -> RateLimitError:
        """The error for ``limit`` (``ratelimit.RateLimitWait``: wait, reset_at, secondary)."""
        return cls(reset_at=limit[1], secondary=limit[2], **where)  # type: ignore[arg-type]


def _in(seconds: float) -> str:
    if seconds < 120:
        return f"in {math.ceil(seconds)} s"
    return f"in {round(seconds / 60)} min"


def connection_reason(error: BaseException) -> str | None:
    """Why a connection failed, in a few words, from the OS error somewhere in ``error``'s chain
    (requests, urllib3 and redis-py each wrap it their own way); None when there is none."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return "host name not found"
        if isinstance(current, TimeoutError) or "Timeout" in type(current).__name__:
            return "timed out"
        if isinstance(current, OSError) and current.errno in _OS_REASONS:
            return _OS_REASONS[current.errno]
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None))
        pending += [e for e in (*linked, *current.args) if isinstance(e, BaseException)]
    return None


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def answer_message(reason: str | None, body: bytes, secrets: list[str]) -> str:
    """GitHub's own error message (bounded, secrets removed), for the exception text."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        text = data["message"]
    return scrub(text.strip()[:300], secrets) or reason or "no message"

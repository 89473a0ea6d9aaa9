"""The errors the client raises; each message names method, URL (credentials removed) and status."""

import math
from datetime import UTC, datetime


class GitHubConfigError(ValueError):
    """The client's settings cannot work (e.g. anonymous GraphQL against GitHub itself)."""


class GitHubError(Exception):
    """Base of every error the client raises on a request."""

    def __init__(self, detail: str, *, url: str, status: int | None, method: str = "GET") -> None:
        answer = "no response" if status is None else status
        super().__init__(f"{method} {url} -> {answer}: {detail}")
        self.method = method
        self.url = url
        self.status = status


class MalformedResponseError(GitHubError):
    """The answer does not have the shape GitHub documents; retrying would not help."""


class GitHubHTTPError(GitHubError):
    """A status that retrying cannot fix (401, plain 403, 422...), or retries exhausted."""


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


def _in(seconds: float) -> str:
    if seconds < 120:
        return f"in {math.ceil(seconds)} s"
    return f"in {round(seconds / 60)} min"

"""The client's credentials and whose rate budget each one spends.

GitHub counts a token's requests against its account, so several tokens of one account share one
budget (and its terms forbid using tokens to exceed it); an App installation has a budget of its
own. A credential is named by a digest, never by its secret: in Redis, in stored ETags'
``etag_auth`` and in messages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Credential:
    """One way to authenticate: ``bearer()`` gives the token to send now (an App installation's
    is renewed as it nears expiry); None means anonymous, or Basic auth on the session."""

    digest: str  # names the credential (e.g. the stored ETags it got); not a secret
    identity: str  # the budget it spends: "user:<id>", "installation:<id>", "anonymous", ...
    bearer: Callable[[], str] | None = field(default=None, compare=False, repr=False)


def digest(secret: str | None) -> str:
    """A short, stable name for a secret (12 hex digits of its SHA-256), or ``anonymous``."""
    if not secret:
        return ANONYMOUS
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]


def split_tokens(value: str | None) -> list[str]:
    """``GITHUB_TOKEN``: one token or several, comma-separated; blanks and repeats dropped."""
    tokens: list[str] = []
    for token in (value or "").split(","):
        token = token.strip()
        if token and token not in tokens:
            tokens.append(token)
    return tokens


def _constant(token: str) -> Callable[[], str]:
    return lambda: token


def token_credential(token: str, identity: str | None = None) -> Credential:
    """A personal access (or other bearer) token; its identity until its account is known is
    the token's own digest."""
    name = digest(token)
    return Credential(name, identity or f"token:{name}", _constant(token))

"""Who a request is: the account its credential belongs to, GitHub's unit of rate limiting.

GitHub keeps its budgets per account, not per token: the tokens of one user share the primary
budget and the secondary limits, an App installation is an account of its own, and an anonymous
caller is its IP. ``AccountRegistry`` maps tokens to logins (``tokens=``, ``add_tokens``) and
holds the installation tokens the App endpoints mint. A token it does not know stays an account
of its own, so a stand-in without a registry keeps one budget per credential, as before.

Accounts are named by login wherever the stand-in reports them (an unregistered token by a
digest of it): a token never leaves this module.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from gh_assets_devtools.standin.data import StandinUser, valid_login
from gh_assets_devtools.standin.http_server import Reply, json_reply
from gh_assets_devtools.standin.rest_api import public_user, simple_user

FIRST_ACCOUNT_ID = 9_000_001  # above any dataset id a test uses, so the two never collide
AUTHENTICATED_USER_DOCS = "https://docs.github.com/rest/users/users#get-the-authenticated-user"
REST_DOCS = "https://docs.github.com/rest"
GRAPHQL_DOCS = "https://docs.github.com/graphql"
ACCOUNT_CREATED_AT = "2020-01-01T00:00:00Z"
_TOKEN_CHARS = string.ascii_letters + string.digits
_MAX_DIGESTS = 100_000  # unregistered tokens remembered; beyond that the cache starts over


@dataclass(frozen=True)
class Identity:
    """The account a request is charged to, and how it authenticated.

    ``kind``: ``anonymous`` (``account`` is ``ip:<address>``), ``user`` (a personal token: a
    registered one's login, or ``token-<digest>``), ``installation``
    (``installation:<id>``), ``jwt`` (an App's JWT: only the ``/app`` endpoints take it),
    ``expired`` (an installation token past its ``expires_at``) or ``revoked`` (``revoke``).
    """

    account: str
    kind: str
    token: str | None = field(default=None, repr=False)  # for the App endpoints; never reported
    installation_id: int | None = None

    @property
    def authenticated(self) -> bool:
        return self.kind != "anonymous"


class AccountRegistry:
    """Tokens -> accounts, the accounts' stable ids, and the minted installation tokens."""

    def __init__(self, tokens: Mapping[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}  # token -> login
        self._logins: dict[str, str] = {}  # lower-case login -> login as first registered
        self._ids: dict[str, int] = {}  # lower-case login -> account id
        self._digests: dict[str, str] = {}  # unregistered token -> its account's login
        self._installation_tokens: dict[str, tuple[int, float]] = {}  # -> (id, expires at)
        self._revoked: set[str] = set()  # tokens answered 401 from now on
        if tokens:
            self.add_tokens(tokens)

    def add_tokens(self, tokens: Mapping[str, str]) -> dict[str, int]:
        """Register ``token -> login`` pairs (all or none: a bad pair is a ValueError); a
        token registered again moves to its new account. Returns every login -> account id."""
        pairs = []
        for token, login in dict(tokens).items():
            if not isinstance(token, str) or not token or any(c.isspace() for c in token):
                raise ValueError("a token must be a non-empty string without whitespace")
            if not isinstance(login, str) or not valid_login(login):
                raise ValueError(f"not a GitHub login: {login!r}")
            pairs.append((token, login))
        with self._lock:
            for token, login in pairs:
                self._tokens[token] = self._logins.setdefault(login.lower(), login)
                self._id(login)
            return self._accounts()

    def accounts(self) -> dict[str, int]:
        """Every registered login -> its account id."""
        with self._lock:
            return self._accounts()

    def account_id(self, login: str) -> int:
        """The stable id of ``login`` (any account, also an installation's owner)."""
        with self._lock:
            return self._id(login)

    def revoke(self, tokens: object) -> int:
        """Answer 401 to each of ``tokens`` from now on, as GitHub does once its owner revokes
        it (a token need not be registered); returns how many tokens are revoked in all."""
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
            raise ValueError("tokens must be a list of non-empty strings")
        with self._lock:
            self._revoked.update(tokens)
            return len(self._revoked)

    def mint_installation_token(self, installation_id: int, ttl: float) -> tuple[str, float]:
        """A new ``ghs_`` token for the installation and its expiry (epoch seconds)."""
        token = "ghs_" + "".join(secrets.choice(_TOKEN_CHARS) for _ in range(36))
        expires_at = time.time() + ttl
        with self._lock:
            self._installation_tokens[token] = (installation_id, expires_at)
        return token, expires_at

    def identify(self, authorization: str | None, client_ip: str) -> Identity:
        """The account of a request with this ``Authorization`` header (``token X``,
        ``Bearer X`` or a bare ``X``)."""
        if not authorization:
            return Identity(f"ip:{client_ip}", "anonymous")
        scheme, _, value = authorization.strip().partition(" ")
        token = value.strip() or scheme
        with self._lock:
            installation = self._installation_tokens.get(token)
            login = self._tokens.get(token)
            if token in self._revoked:
                return Identity(login or "revoked", "revoked")
        if installation is not None:
            installation_id, expires_at = installation
            kind = "installation" if time.time() < expires_at else "expired"
            return Identity(f"installation:{installation_id}", kind, token, installation_id)
        if login is not None:
            return Identity(login, "user", token)
        if _looks_like_jwt(token):
            return Identity("jwt", "jwt", token)
        return Identity(self._digest_login(token), "user", token)

    def authenticated_user(self, identity: Identity, base: str) -> tuple[int, dict[str, Any]]:
        """``GET /user``: the ``private-user`` of a token's account, 401 without a token, 403
        for an installation token (GitHub: it is no user)."""
        if identity.kind == "anonymous":
            return 401, _error("Requires authentication", AUTHENTICATED_USER_DOCS, 401)
        if identity.kind != "user":
            return 403, _error(
                "Resource not accessible by integration", AUTHENTICATED_USER_DOCS, 403
            )
        user = account_user(identity.account, self.account_id(identity.account), "User")
        private = {
            "user_view_type": "private",
            "notification_email": None,
            "private_gists": 0,
            "total_private_repos": 0,
            "owned_private_repos": 0,
            "disk_usage": 0,
            "collaborators": 0,
            "two_factor_authentication": True,
            "plan": {
                "name": "free",
                "space": 976562499,
                "collaborators": 0,
                "private_repos": 10000,
            },
        }
        return 200, public_user(user, base) | private

    def _accounts(self) -> dict[str, int]:
        return {login: self._ids[key] for key, login in sorted(self._logins.items())}

    def _id(self, login: str) -> int:
        key = login.lower()
        if key not in self._ids:
            self._ids[key] = FIRST_ACCOUNT_ID + len(self._ids)
        return self._ids[key]

    def _digest_login(self, token: str) -> str:
        login = self._digests.get(token)
        if login is None:
            login = "token-" + hashlib.sha256(token.encode()).hexdigest()[:12]
            if len(self._digests) >= _MAX_DIGESTS:
                self._digests.clear()
            self._digests[token] = login
        return login


def account_user(login: str, account_id: int, kind: str) -> StandinUser:
    """A registered account as a ``StandinUser``: no profile, no counts."""
    return StandinUser(
        id=account_id,
        login=login,
        type=kind,
        created_at=ACCOUNT_CREATED_AT,
        updated_at=ACCOUNT_CREATED_AT,
    )


def account_summary(login: str, account_id: int, kind: str, base: str) -> dict[str, Any]:
    """The ``simple-user`` of an account (an installation's ``account``)."""
    return simple_user(account_user(login, account_id, kind), base)


def bad_credentials(*, graphql: bool = False) -> Reply:
    """GitHub's 401 for a token it does not take: an expired installation token, or an App's
    JWT on an endpoint other than ``/app``."""
    docs = GRAPHQL_DOCS if graphql else REST_DOCS
    return json_reply(401, _error("Bad credentials", docs, 401))


def _error(message: str, documentation_url: str, status: int) -> dict[str, str]:
    return {"message": message, "documentation_url": documentation_url, "status": str(status)}


def _looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts whose first is a JSON header naming an algorithm."""
    if token.count(".") != 2:
        return False
    try:
        return "alg" in jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return False

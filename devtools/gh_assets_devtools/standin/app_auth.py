"""GitHub App authentication as GitHub answers it, so the crawler's App support runs offline.

An App signs a JWT (RS256, ``iss`` = its id, ``exp`` at most 10 minutes after ``iat``) with its
private key; with it the App lists its installations (``GET /app/installations``) and trades it
for an installation token (``POST /app/installations/{id}/access_tokens``) that expires. Each
installation is an account of its own for the rate limits: that is why a crawler uses Apps. The
stand-in verifies the JWT with the App's public key (PyJWT) and answers GitHub's bodies and 401
messages; the JWT is good for nothing else (the server answers it "Bad credentials" elsewhere).

The ``/app`` endpoints are outside the budgets: they cost no primary budget (GitHub's answers
carry no ``X-RateLimit-*`` headers) and are not held to the secondary limits.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from gh_assets_devtools.standin.accounts import AccountRegistry, Identity, account_summary
from gh_assets_devtools.standin.http_server import Reply, Request, json_body
from gh_assets_devtools.standin.rate_limit import API_VERSION
from gh_assets_devtools.standin.rest_api import DEFAULT_PER_PAGE, MAX_PER_PAGE, int_param

JWT_DOCS = "https://docs.github.com/rest"
TOKEN_DOCS = "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app"
MAX_JWT_LIFETIME = 600  # seconds from iat to exp
CLOCK_SKEW = 60  # an iat this far in the future is still taken
NOT_DECODED = "A JSON web token could not be decoded"
EXPIRED = (
    "'Expiration time' claim ('exp') must be a numeric value representing the future time at "
    "which the assertion expires"
)
TOO_LONG = "'Expiration time' claim ('exp') is too far in the future"
FUTURE_IAT = (
    "'Issued at' claim ('iat') must be an Integer representing the time that the assertion "
    "was issued"
)
PERMISSIONS = {"metadata": "read"}  # what public user data needs
_INSTALLATION = re.compile(r"/app/installations/([0-9]{1,18})")
_ACCESS_TOKENS = re.compile(r"/app/installations/([0-9]{1,18})/access_tokens")


class GitHubApps:
    """The registered Apps (their public keys) and installations; mints installation tokens."""

    def __init__(self, registry: AccountRegistry, token_ttl: float = 3600.0) -> None:
        if not token_ttl > 0:
            raise ValueError(f"installation_token_ttl must be > 0, got {token_ttl}")
        self.registry, self.token_ttl = registry, float(token_ttl)
        self._lock = threading.Lock()
        self._keys: dict[int, RSAPublicKey] = {}  # app id -> its public key
        self._installations: dict[int, int] = {}  # installation id -> app id
        self._created: dict[int, str] = {}  # installation id -> created_at

    def add_app(
        self, app_id: int, public_key_pem: str | bytes, installation_ids: Iterable[int] = ()
    ) -> dict[str, Any]:
        """Register (or re-key) an App and install it; a private key PEM is taken too (its
        public half is kept). An installation of another App is a ValueError."""
        app_id = _positive_id("app_id", app_id)
        key = _public_key(public_key_pem)
        installations = [_positive_id("installation id", i) for i in installation_ids]
        with self._lock:
            for installation_id in installations:
                owner = self._installations.get(installation_id, app_id)
                if owner != app_id:
                    raise ValueError(f"installation {installation_id} belongs to app {owner}")
            self._keys[app_id] = key
            for installation_id in installations:
                self._installations[installation_id] = app_id
                self._created.setdefault(installation_id, _iso(time.time()))
            mine = sorted(i for i, a in self._installations.items() if a == app_id)
        return {"app_id": app_id, "installations": mine}

    def answer(self, request: Request, path: str, identity: Identity, base: str) -> Reply:
        """An ``/app`` endpoint: the App's JWT, verified, then what GitHub answers."""
        if identity.kind != "jwt" or identity.token is None:
            return _reply(401, _error(NOT_DECODED, JWT_DOCS, 401))
        app_id = self._verify(identity.token)
        if isinstance(app_id, str):
            return _reply(401, _error(app_id, JWT_DOCS, 401))
        method = request.method
        if (method, path) == ("GET", "/app/installations"):
            return self._installations_page(app_id, request.target, base)
        if method == "GET" and (match := _INSTALLATION.fullmatch(path)):
            installation_id = int(match[1])
            if self._app_of(installation_id) != app_id:
                return _reply(404, _error("Not Found", JWT_DOCS, 404))
            return _reply(200, self._installation(installation_id, app_id, base))
        if method == "POST" and (match := _ACCESS_TOKENS.fullmatch(path)):
            installation_id = int(match[1])
            if self._app_of(installation_id) != app_id:
                return _reply(404, _error("Not Found", TOKEN_DOCS, 404))
            token, expires_at = self.registry.mint_installation_token(
                installation_id, self.token_ttl
            )
            body = {
                "token": token,
                "expires_at": _iso(expires_at),
                "permissions": PERMISSIONS,
                "repository_selection": "all",
            }
            return _reply(201, body)
        return _reply(404, _error("Not Found", JWT_DOCS, 404))

    def _verify(self, token: str) -> int | str:
        """The App id of a good JWT, or GitHub's message for a bad one."""
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return NOT_DECODED
        issuer = claims.get("iss")
        app_id = int(issuer) if re.fullmatch(r"[0-9]{1,18}", str(issuer)) else None
        with self._lock:
            key = self._keys.get(app_id) if app_id is not None else None
        if app_id is None or key is None:
            return NOT_DECODED
        unchecked = {"verify_exp": False, "verify_iat": False, "verify_nbf": False}
        try:
            jwt.decode(token, key, algorithms=["RS256"], options=unchecked)
        except jwt.PyJWTError:
            return NOT_DECODED
        iat, exp, now = claims.get("iat"), claims.get("exp"), time.time()
        if not _number(iat) or iat > now + CLOCK_SKEW:
            return FUTURE_IAT
        if not _number(exp) or exp <= now:
            return EXPIRED
        if exp - iat > MAX_JWT_LIFETIME:
            return TOO_LONG
        return app_id

    def _app_of(self, installation_id: int) -> int | None:
        with self._lock:
            return self._installations.get(installation_id)

    def _installations_page(self, app_id: int, target: str, base: str) -> Reply:
        """One page of the App's installations (``per_page``, ``page``), ``Link`` to the next."""
        params = parse_qs(urlsplit(target).query)
        per_page = int_param(params, "per_page", DEFAULT_PER_PAGE)
        per_page = min(per_page, MAX_PER_PAGE) if per_page > 0 else DEFAULT_PER_PAGE
        page = max(int_param(params, "page", 1), 1)
        with self._lock:
            ids = sorted(i for i, a in self._installations.items() if a == app_id)
        shown = ids[(page - 1) * per_page : page * per_page]
        reply = _reply(200, [self._installation(i, app_id, base) for i in shown])
        if page * per_page < len(ids):
            url = f"{base}/app/installations?per_page={per_page}&page={page + 1}"
            reply.headers["Link"] = f'<{url}>; rel="next"'
        return reply

    def _installation(self, installation_id: int, app_id: int, base: str) -> dict[str, Any]:
        """GitHub's ``installation``: the App installed on an organization of its own."""
        login = f"standin-org-{installation_id}"
        owner_id = self.registry.account_id(login)
        with self._lock:
            created = self._created[installation_id]
        return {
            "id": installation_id,
            "account": account_summary(login, owner_id, "Organization", base),
            "repository_selection": "all",
            "access_tokens_url": f"{base}/app/installations/{installation_id}/access_tokens",
            "repositories_url": f"{base}/installation/repositories",
            "html_url": f"https://github.com/organizations/{login}/settings/installations/"
            f"{installation_id}",
            "app_id": app_id,
            "app_slug": f"standin-app-{app_id}",
            "target_id": owner_id,
            "target_type": "Organization",
            "permissions": PERMISSIONS,
            "events": [],
            "created_at": created,
            "updated_at": created,
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }


def _reply(status: int, payload: Any) -> Reply:
    """An ``/app`` answer: GitHub's, without rate-limit headers."""
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-GitHub-Media-Type": "github.v3; format=json",
        "x-github-api-version-selected": API_VERSION,
        "Cache-Control": "public, max-age=60, s-maxage=60",
        "Vary": "Accept",
    }
    return Reply(status, headers, json_body(payload))


def _error(message: str, documentation_url: str, status: int) -> dict[str, str]:
    return {"message": message, "documentation_url": documentation_url, "status": str(status)}


def _public_key(pem: str | bytes) -> RSAPublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key: Any = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise ValueError("public_key_pem is not an RSA key in PEM") from None
    if isinstance(key, RSAPrivateKey):
        key = key.public_key()
    if not isinstance(key, RSAPublicKey):
        raise ValueError("public_key_pem is not an RSA key (GitHub Apps sign with RS256)")
    return key


def _positive_id(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _iso(epoch: float) -> str:
    """GitHub's timestamps: whole seconds, UTC, ``Z`` (rounded down: a token is never said
    to live longer than it does)."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

"""GitHub App authentication: each installation of the App is a rate-limit identity of its own
(5,000 to 12,500 requests/h), where a personal token shares one 5,000/h budget with its user.

The App signs a short JWT with its RSA key (RS256) and trades it, per installation, for a token
that lasts an hour (``POST /app/installations/{id}/access_tokens``); this module makes, caches
and renews both. Ours rather than a library's: PyGithub (``Auth.AppAuth``) and githubkit do this
only inside their own HTTP clients, with their own retries and errors; the crawl needs it with
its own ``Transport`` (retries, bounded bodies, secrets kept out of messages), and PyJWT (already
a dependency) does the signing.
"""

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt as pyjwt
import requests
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gh_assets.github.credentials import Credential
from gh_assets.github.errors import (
    CredentialRefusedError,
    GitHubConfigError,
    GitHubHTTPError,
    MalformedResponseError,
)
from gh_assets.github.transport import Transport
from gh_assets.github.urls import origin_of, safe_url, url_credentials

__all__ = ["GitHubApp", "load_private_key"]

log = logging.getLogger(__name__)

# GitHub refuses a JWT that expires more than 10 minutes ahead; ``iat`` a minute in the past
# absorbs a server clock slightly behind ours (GitHub's own advice).
JWT_BACKDATE = 60
JWT_LIFETIME = 540
JWT_MIN_LEFT = 60  # a cached JWT with less left is re-made: a request may take a while to arrive
INSTALLATIONS_PAGE = 100
MAX_PAGES = 1000  # 100,000 installations: beyond that, a Link loop rather than an App
# The App's own requests are few (a mint per installation an hour): short retries, and a rate
# limit on them raises RateLimitError at once (the caller decides whether to wait).
MAX_CONCURRENCY = 4
MAX_RETRIES = 3
BACKOFF_BASE = 0.5  # seconds; doubled per attempt (full jitter), at most BACKOFF_MAX
BACKOFF_MAX = 4.0
USER_AGENT = "gh-assets/0.1 (+https://github.com/gh-assets)"
MAX_KEY_FILE_BYTES = 64 * 1024  # an RSA-4096 PEM is about 3.3 KB

KEY_REFUSED = "GITHUB_APP_PRIVATE_KEY: not a PEM private key nor a readable file"
REFUSED_WHICH = "GITHUB_APP_ID/GITHUB_APP_PRIVATE_KEY"
UNAUTHORIZED_HINT = (
    "GitHub refused the App's JWT: the App id ({app_id}, GITHUB_APP_ID) or the private key "
    "(GITHUB_APP_PRIVATE_KEY) is wrong, or this machine's clock is off by more than a minute"
)

_APP_ID = re.compile(r"[A-Za-z0-9._-]{1,100}")  # the numeric App id, or the App's client id


def load_private_key(value: str) -> str:
    """The PEM text of ``GITHUB_APP_PRIVATE_KEY``, given either as the PEM itself or as the path of
    the ``.pem`` file GitHub lets one download; checked to load as an RSA private key.

    A PEM squeezed onto one line with literal ``\\n`` (as .env files and CI secrets often hold it)
    is accepted too. Refusals are one line and never quote the value, which may be key text.
    """
    text = (value or "").strip()
    if not text:
        raise GitHubConfigError("GITHUB_APP_PRIVATE_KEY is empty")
    if "-----BEGIN" in text:
        pem = _unescape_newlines(text)
        _rsa_key(pem, "GITHUB_APP_PRIVATE_KEY", KEY_REFUSED)
        return pem
    if "\n" in text or len(text) > 4096:  # not a path; maybe a PEM without its header lines
        raise GitHubConfigError(KEY_REFUSED)
    try:
        with Path(text).expanduser().open("rb") as file:
            raw = file.read(MAX_KEY_FILE_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the value
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a path"
        raise GitHubConfigError(f"{KEY_REFUSED} (read as a path: {why})") from None
    # The value named a readable file, so it is a path, not key text: naming it helps.
    label = f"GITHUB_APP_PRIVATE_KEY ({text!r})"
    refused = f"{label}: not a PEM RSA private key"
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise GitHubConfigError(f"{refused} (over {MAX_KEY_FILE_BYTES // 1024} KB)")
    try:
        pem = _unescape_newlines(raw.decode("ascii").strip())
    except UnicodeDecodeError:
        raise GitHubConfigError(refused) from None
    _rsa_key(pem, label, refused)
    return pem


def _unescape_newlines(text: str) -> str:
    if "\n" not in text and "\\n" in text:
        text = text.replace("\\n", "\n")
    return text.strip() + "\n"


def _rsa_key(pem: str, label: str, unusable: str) -> rsa.RSAPrivateKey:
    """The key object, or GitHubConfigError (``unusable`` when it does not parse) saying why
    not, without cryptography's text or the key's (the exception is raised outside the
    ``except``, so no chained exception carries the bytes either)."""
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except TypeError:  # "Password was not given but private key is encrypted"
        problem = f"{label}: the key is encrypted with a passphrase; give it as GitHub issued it"
    except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm):
        problem = unusable
        if "PUBLIC KEY-----" in pem:
            problem = f"{label}: a public key; the App signs with its private key"
    else:
        if isinstance(key, rsa.RSAPrivateKey):
            return key
        kind = type(key).__name__.removesuffix("PrivateKey") or "another"
        problem = f"{label}: an {kind} key, not RSA (GitHub App keys are RSA)"
    raise GitHubConfigError(problem)


@dataclass(frozen=True)
class _Token:
    value: str
    expires_at: float  # epoch seconds, GitHub's ``expires_at``


class GitHubApp:
    """One GitHub App: its JWT, its installations, and a cached token per installation.

    Thread-safe: many request threads may ask for a token at once; only one mints per
    installation at a time, and the others wait for it and reuse its token. Tokens are renewed
    ``renew_before`` seconds before GitHub's ``expires_at``; that instant is read on ``clock``,
    which must then agree with GitHub's within a minute (the JWT's ``iat`` needs that anyway).
    Requests go through a ``Transport`` of the App's own, sent as the JWT (never as a token or
    Basic auth); it follows redirects within ``api_url``'s origin only, so the JWT goes nowhere
    else.
    """

    def __init__(
        self,
        app_id: str,
        private_key_pem: str,
        api_url: str,
        *,
        timeout: float = 30.0,
        renew_before: float = 300.0,
        clock: Callable[[], float] = time.time,
        user_agent: str = USER_AGENT,
    ) -> None:
        app_id = str(app_id).strip()
        if not _APP_ID.fullmatch(app_id):
            raise GitHubConfigError(
                f"GITHUB_APP_ID={app_id[:40]!r}: expected the App's numeric id or its client id"
            )
        parts = urlsplit(api_url.strip().rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise GitHubConfigError(
                f"GITHUB_API_URL={safe_url(api_url)!r}: expected an http:// or https:// URL"
            )
        if url_credentials(api_url):
            raise GitHubConfigError(
                f"GITHUB_API_URL={safe_url(api_url)!r} carries a user and password, and a GitHub "
                "App authenticates with its key: keep only one of them"
            )
        if timeout <= 0 or renew_before < 0:
            raise ValueError("timeout must be > 0 and renew_before >= 0")
        self._app_id = app_id
        self._api_url = urlunsplit(parts._replace(query="", fragment=""))
        self._key = _rsa_key(private_key_pem, "GITHUB_APP_PRIVATE_KEY", KEY_REFUSED)
        self._renew_before = renew_before
        self._clock = clock
        self._http = Transport(
            origin_of(self._api_url),
            None,
            timeout=timeout,
            max_concurrency=MAX_CONCURRENCY,
            max_retries=MAX_RETRIES,
            backoff_base=BACKOFF_BASE,
            backoff_max=BACKOFF_MAX,
            max_rate_limit_wait=0,
            user_agent=user_agent,
        )
        name = f"app:{app_id}"
        self._as_app = Credential(name, name, bearer=self.jwt)
        self._lock = threading.Lock()  # guards the dicts below and the JWT
        self._jwt: tuple[str, float] | None = None  # (JWT, its exp)
        self._tokens: dict[int, _Token] = {}
        self._minting: dict[int, threading.Lock] = {}

    def __repr__(self) -> str:
        return f"GitHubApp(app_id={self._app_id!r}, api_url={safe_url(self._api_url)!r})"

    @property
    def app_id(self) -> str:
        return self._app_id

    @property
    def api_url(self) -> str:
        return self._api_url

    @staticmethod
    def identity(installation_id: int) -> str:
        """The rate-limit identity an installation's requests count against."""
        return f"installation:{installation_id}"

    def jwt(self) -> str:
        """The App's JWT (RS256, ``iss`` = App id), valid about 9 minutes; re-made when under a
        minute is left, so every caller gets one that outlives its request."""
        with self._lock:
            now = self._clock()
            if self._jwt is None or self._jwt[1] - now < JWT_MIN_LEFT:
                issued = int(now)
                claims = {
                    "iat": issued - JWT_BACKDATE,
                    "exp": issued + JWT_LIFETIME,
                    "iss": self._app_id,
                }
                token = pyjwt.encode(claims, self._key, algorithm="RS256")
                self._jwt = (token, float(claims["exp"]))
            return self._jwt[0]

    def installation_ids(self) -> list[int]:
        """The ids of the App's installations that are not suspended (a suspended one refuses
        tokens), in GitHub's order, following ``Link: rel="next"`` within the API's origin."""
        url = f"{self._api_url}/app/installations?per_page={INSTALLATIONS_PAGE}"
        ids: list[int] = []
        seen_ids: set[int] = set()
        seen_urls: set[str] = set()
        while True:
            safe = safe_url(url)
            if url in seen_urls or len(seen_urls) >= MAX_PAGES:
                raise MalformedResponseError(
                    "installation pages do not end (Link rel=next loops)", url=safe, status=200
                )
            seen_urls.add(url)
            resp, data = self._call("GET", url)
            if not isinstance(data, list):
                raise MalformedResponseError(
                    f"expected a JSON array of installations, got {type(data).__name__}",
                    url=safe,
                    status=resp.status_code,
                )
            for item in data:
                installation_id = item.get("id") if isinstance(item, dict) else None
                if type(installation_id) is not int or installation_id <= 0:
                    raise MalformedResponseError(
                        "an installation without a positive integer id",
                        url=safe,
                        status=resp.status_code,
                    )
                if item.get("suspended_at"):
                    log.warning("GitHub App installation %d is suspended; skipped", installation_id)
                elif installation_id not in seen_ids:
                    seen_ids.add(installation_id)
                    ids.append(installation_id)
            next_url = resp.links.get("next", {}).get("url")
            if not data or not next_url:
                return ids
            url = self._http._same_origin(next_url, safe)

    def installation_token(self, installation_id: int) -> str:
        """A token for ``installation_id`` with more than ``renew_before`` seconds left: the
        cached one, or a new one minted with the JWT (one thread mints, the others wait)."""
        if type(installation_id) is not int or installation_id <= 0:
            raise ValueError(f"installation_id must be a positive int, got {installation_id!r}")
        with self._lock:
            cached = self._tokens.get(installation_id)
            if cached is not None and self._fresh(cached):
                return cached.value
            minting = self._minting.setdefault(installation_id, threading.Lock())
        with minting:
            with self._lock:
                cached = self._tokens.get(installation_id)
            if cached is not None and self._fresh(cached):  # minted while this thread waited
                return cached.value
            token = self._mint(installation_id)
            with self._lock:
                self._tokens[installation_id] = token
            return token.value

    def forget_token(self, installation_id: int, token: str) -> None:
        """Drop the cached ``token`` of ``installation_id`` (e.g. GitHub answered 401 to it: the
        installation was removed, or the token revoked) so the next call mints another. A token
        another thread has already replaced stays."""
        with self._lock:
            cached = self._tokens.get(installation_id)
            if cached is not None and cached.value == token:
                del self._tokens[installation_id]

    def _fresh(self, token: _Token) -> bool:
        return token.expires_at - self._clock() > self._renew_before

    def _mint(self, installation_id: int) -> _Token:
        url = f"{self._api_url}/app/installations/{installation_id}/access_tokens"
        safe = safe_url(url)
        resp, data = self._call("POST", url)
        status = resp.status_code
        token = data.get("token") if isinstance(data, dict) else None
        expires = data.get("expires_at") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token.strip() or any(c.isspace() for c in token):
            raise MalformedResponseError(
                "no usable 'token' in the answer", url=safe, status=status, method="POST"
            )
        try:
            expires_at = _timestamp(expires)
        except ValueError:
            raise MalformedResponseError(
                f"'expires_at' is not an ISO 8601 time: {str(expires)[:40]!r}",
                url=safe,
                status=status,
                method="POST",
            ) from None
        left = expires_at - self._clock()
        log.info(
            "GitHub App %s: minted a token for installation %d (expires in %.0f s)",
            self._app_id,
            installation_id,
            left,
        )
        if left <= self._renew_before:
            log.warning(
                "installation %d's new token expires in %.0f s, within renew_before (%.0f s): "
                "every call will mint again (is this machine's clock right?)",
                installation_id,
                left,
                self._renew_before,
            )
        return _Token(token, expires_at)

    def _call(self, method: str, url: str) -> tuple[requests.Response, Any]:
        """One App request, sent as the JWT: a 200 or 201 and its parsed JSON, after the
        transport's retries (minting twice is harmless: both tokens work). Anything else raises:
        a rate limit as RateLimitError at once, a 401 as CredentialRefusedError naming the App's
        settings."""
        try:
            resp, data, _ = self._http._request_as(method, url, credential=self._as_app)
        except GitHubHTTPError as exc:
            if exc.status != 401:
                raise
            message = f"{exc.detail}: {UNAUTHORIZED_HINT.format(app_id=self._app_id)}"
            raise CredentialRefusedError(
                message, url=exc.url, which=REFUSED_WHICH, method=exc.method
            ) from None
        return resp, data


def _timestamp(value: object) -> float:
    """Epoch seconds of an ISO 8601 time such as GitHub's ``2024-11-25T01:00:02Z`` (UTC if the
    zone is missing)."""
    if not isinstance(value, str):
        raise ValueError(value)
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()

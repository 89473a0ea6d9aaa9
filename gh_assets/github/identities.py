"""The credentials a ``GitHubClient`` sends with: each token named by its account, an App's
installations, and the tokens GitHub stopped taking.

A token's account is found once (``GET /user``, sent through the shared budget under the token's
own name, so a block recorded for it holds the lookup too) and remembered in Redis for a day from
its last use; a remembered token is tried once per process (``GET /rate_limit``) before it joins
a burst. A token GitHub answers 401 after it worked (revoked mid-crawl) is named once in the log
and dropped for the rest of the process; the request goes again with another credential, so a
page keeps the answers it has paid for. The last credential is never dropped: its 401 fails the
page.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace

from gh_assets.github.app_auth import GitHubApp
from gh_assets.github.credentials import Credential
from gh_assets.github.errors import (
    CredentialRefusedError,
    GitHubConfigError,
    GitHubHTTPError,
    RateLimitError,
)
from gh_assets.github.transport import Transport, _single_credential

log = logging.getLogger(__name__)

ACCOUNT_TTL = 24 * 3600  # how long a token's account, once found, is remembered in Redis
_dropped: set[str] = set()  # digests of tokens GitHub refused after they worked (this process)
_taken: set[str] = set()  # digests of tokens GitHub has answered (not 401) in this process
_dropped_lock = threading.Lock()


class Identities(Transport):
    """``Transport`` over a pool of credentials (``GitHubClient`` sets ``_unresolved``, ``_app``,
    ``_installation_ids`` and ``_api_url`` before the first request)."""

    _unresolved: list[Credential]
    _app: GitHubApp | None
    _installation_ids: list[int]
    _api_url: str
    _resolved: list[Credential] | None = None
    _resolving: threading.Lock

    def _ready_credentials(self) -> list[Credential]:
        """The credentials to send with, found before the first request (with a governor or an
        App; without either, only the first credential is used)."""
        if self._governor is None and self._app is None:
            return self._credentials
        if self._resolved is None:
            with self._resolving:
                if self._resolved is None:
                    self._resolved = self._resolve()
        return self._resolved

    def _resolve(self) -> list[Credential]:
        found = _usable_tokens(self._unresolved, self._with_account)
        if self._app is not None:
            ids = self._installation_ids or self._app.installation_ids()
            if not ids:
                raise GitHubConfigError(
                    "the GitHub App has no installation: install it on an account, or set "
                    "GITHUB_APP_INSTALLATION_IDS"
                )
            for installation in ids:
                identity = self._app.identity(installation)
                bearer = _installation_bearer(self._app, installation)
                found.append(Credential(identity, identity, bearer))
        if not found:
            found = [_single_credential(None, self._session.auth)]  # type: ignore[arg-type]
        return found

    def _named(self, credential: Credential) -> Credential:
        """``credential`` named by its account when the governor remembers it, else as it is;
        each use renews the memory, so a token in use never looks its account up again (a GET
        /user under the token's own name would not be held by the account's block)."""
        governor = self._governor
        known = governor.identity_of(credential.digest, ACCOUNT_TTL) if governor else None
        return replace(credential, identity=known) if known else credential

    def _with_account(self, number: int, credential: Credential) -> Credential | None:
        """``credential`` named by its account's identity (``user:<id>``); a token that cannot
        read ``/user`` (an installation token) stays an identity of its own. None: GitHub no
        longer takes a remembered token (``_still_taken``)."""
        governor = self._governor
        named = self._named(credential)
        if named is not credential:
            return self._still_taken(number, named)
        url = f"{self._api_url}/user"
        try:
            resp, data = self._request("GET", url, passed=(403, 404), credential=credential)
        except GitHubHTTPError as error:
            if error.status != 401:
                raise
            which = _which(number, credential)
            raise CredentialRefusedError(error.detail, url=error.url, which=which) from None
        _taken.add(credential.digest)
        identity = credential.identity
        if resp.status_code == 200 and isinstance(data, dict) and type(data.get("id")) is int:
            identity = f"user:{data['id']}"
        if governor is not None:
            governor.remember_identity(credential.digest, identity, ACCOUNT_TTL)
            governor.observe(identity, resp.headers)
        return replace(credential, identity=identity)

    def _still_taken(self, number: int, credential: Credential) -> Credential | None:
        """A token remembered from an earlier process, tried once in this one (``GET
        /rate_limit``, free of primary budget) before it joins a burst of requests: one revoked
        since is dropped here (None) with a single request, when another token remains."""
        if credential.digest in _taken:
            return credential
        url = f"{self._api_url}/rate_limit"
        try:
            self._request("GET", url, passed=(404,), credential=credential)
        except GitHubHTTPError as error:
            if error.status != 401:
                raise
            if len(self._unresolved) == 1:
                which = _which(number, credential)
                raise CredentialRefusedError(error.detail, url=error.url, which=which) from None
            _drop(number, credential, error.detail)
            return None
        _taken.add(credential.digest)
        return credential

    def _drop_refused(self, credential: Credential, detail: str) -> bool:
        """GitHub answered 401 to ``credential`` from the pool: drop it when it is one of
        GITHUB_TOKEN's and another credential remains (True: send again), naming it once."""
        numbers = {c.digest: n for n, c in enumerate(self._unresolved, 1)}
        if credential.digest not in numbers or self._resolved is None:
            return False
        with self._resolving:
            kept = [c for c in self._resolved if c.digest != credential.digest]
            if not kept:
                return False
            self._resolved = kept
        _drop(numbers[credential.digest], credential, detail)
        return True


def _drop(number: int, credential: Credential, detail: str) -> None:
    """Send no more with GITHUB_TOKEN's ``number``-th token in this process; the first time,
    one log line names it (never its secret)."""
    with _dropped_lock:
        first = credential.digest not in _dropped
        _dropped.add(credential.digest)
    if first:
        log.warning(
            "%s: GitHub refused it (401 %s) after it worked; this process sends nothing more "
            "with it and goes on with the other credentials",
            _which(number, credential),
            detail,
        )


def _usable_tokens(
    tokens: Sequence[Credential], look_up: Callable[[int, Credential], Credential | None]
) -> list[Credential]:
    """Each token this process has not dropped, named by its account (``look_up``). A token whose
    lookup is held by a rate limit is left out while another token works; when none does, the
    first hold is raised (nothing was sent for a blocked token)."""
    found: list[Credential] = []
    held: RateLimitError | None = None
    for number, credential in enumerate(tokens, 1):
        if credential.digest in _dropped:
            continue
        try:
            named = look_up(number, credential)
        except RateLimitError as error:
            held = held or error
        else:
            found += [named] if named else []
    if held is not None and not found:
        raise held
    if tokens and not found:
        raise GitHubConfigError(
            "GITHUB_TOKEN: GitHub refused every token in it during this process (401)"
        )
    return found


def _which(number: int, credential: Credential) -> str:
    return f"GITHUB_TOKEN #{number} ({credential.digest})"


def _installation_bearer(app: GitHubApp, installation: int) -> Callable[[], str]:
    return lambda: app.installation_token(installation)

"""``StandinAdmin``: steer a stand-in in another process over its ``/_standin`` endpoints.

Its methods are ``StandinServer``'s control methods, so a test reads the same either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gh_assets_devtools.services import LocalClient
from gh_assets_devtools.standin.data import stored_form


class StandinAdminError(RuntimeError):
    """An admin endpoint answered with an error status (``status``: 400 bad value, 404 unknown)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class StandinAdmin(LocalClient):
    """The admin endpoints of the stand-in at ``url``."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        super().__init__(url, timeout)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, **params) -> Any:
        resp = self.call(method, f"/_standin/{path}", body or {}, **params)
        if resp.status_code != 200:
            raise StandinAdminError(
                f"{method} /_standin/{path} -> {resp.status_code}: {resp.text}", resp.status_code
            )
        return resp.json()

    # the same operations as StandinServer's methods ------------------------------------------
    def stats(self) -> dict[str, Any]:
        return self._call("GET", "state")

    def reset_stats(self) -> dict[str, Any]:
        return self._call("POST", "reset-stats")

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """``latency_ms``, ``error_rate``, ``fail_ids`` (inclusive ``(first, last)`` ranges)."""
        if "fail_ids" in faults:
            faults["fail_ids"] = [list(ids) for ids in faults["fail_ids"]]
        return self._call("POST", "faults", faults)

    def heal(self) -> dict[str, Any]:
        return self._call("POST", "heal")

    def set_rate_limit(
        self, limit: int | None = None, window: float | None = None, **options: Any
    ) -> dict[str, Any]:
        """As ``StandinServer.set_rate_limit``, whose keywords (``reset``...) it passes on."""
        body = {"limit": limit, "window": window} | options
        return self._call("POST", "rate-limit", {k: v for k, v in body.items() if v is not None})

    # accounts and their limits ---------------------------------------------------------------
    def add_tokens(self, tokens: Mapping[str, str]) -> dict[str, Any]:
        """Register ``token -> login`` pairs; returns ``{"accounts": {login: id}}``."""
        return self._call("POST", "tokens", {"tokens": dict(tokens)})

    def revoke_tokens(self, tokens: Iterable[str]) -> dict[str, Any]:
        """Have GitHub answer 401 to ``tokens`` from now on (``StandinServer.accounts.revoke``)."""
        return self._call("POST", "revoke", {"tokens": list(tokens)})

    def set_secondary_limits(self, **limits: Any) -> dict[str, Any]:
        """``minute``, ``secondary_in_flight``, ``rest_points_per_minute``,
        ``graphql_points_per_minute``, ``secondary_retry_after``, ``secondary_status``,
        ``secondary_block``: the given ones change (``None`` turns a limit off)."""
        return self._call("POST", "secondary-limits", limits)

    def refuse_next(self, account: str, retry_after: float | None = None) -> dict[str, Any]:
        return self._call("POST", "refuse-next", {"account": account, "retry_after": retry_after})

    def accounts_report(self) -> dict[str, Any]:
        return self._call("GET", "accounts")

    def reset_accounts(self) -> dict[str, Any]:
        return self._call("POST", "reset-accounts")

    def add_app(
        self, app_id: int, public_key_pem: str | bytes, installation_ids: Iterable[int] = ()
    ) -> dict[str, Any]:
        pem = public_key_pem.decode() if isinstance(public_key_pem, bytes) else public_key_pem
        body = {"app_id": app_id, "public_key_pem": pem, "installation_ids": list(installation_ids)}
        return self._call("POST", "apps", body)

    # accounts --------------------------------------------------------------------------------
    def update_user(self, user_id: int, **changes: Any) -> dict[str, Any]:
        return self._call("POST", f"users/{user_id}", changes)

    def delete_user(self, user_id: int) -> dict[str, Any]:
        return self._call("DELETE", f"users/{user_id}")

    def users(self, first: int, last: int) -> list[dict[str, Any]]:
        """The ``ground_truth`` rows of IDs ``first..last``."""
        return self._call("GET", "users", first=first, last=last)

    def truth(self, first: int, last: int) -> dict[int, dict[str, str]]:
        """What Redis must hold once IDs ``first..last`` are crawled, as ``Dataset.truth``."""
        return stored_form(self.users(first, last))

"""The ``/_standin/...`` endpoints: ``StandinServer``'s control methods for other processes.

``StandinAdmin`` (``admin.py``) is their client. They are free of rate limits, latency and faults
and not counted in the stats or the accounts' records, so steering a test never disturbs what it
measures. Tokens go in (``/_standin/tokens``) but never come out: answers name accounts by login.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from gh_assets_devtools.standin.data import ground_truth
from gh_assets_devtools.standin.http_server import Reply, Request, json_reply
from gh_assets_devtools.standin.rest_api import int_param

if TYPE_CHECKING:
    from gh_assets_devtools.standin.server import StandinServer

_ADMIN_USER_PATH = re.compile(r"/_standin/users/([0-9]{1,18})")

# The endpoints that are one control method called with the JSON body as its keyword arguments
# (a bad or unknown one is a TypeError or ValueError: 400).
_CONTROLS: dict[tuple[str, str], Callable[[StandinServer, dict[str, Any]], object]] = {
    ("GET", "/_standin/state"): lambda s, body: s.stats(),
    ("POST", "/_standin/faults"): lambda s, body: s.set_faults(**body),
    ("POST", "/_standin/heal"): lambda s, body: s.heal(),
    ("POST", "/_standin/rate-limit"): lambda s, body: s.set_rate_limit(**body),
    ("POST", "/_standin/secondary-limits"): lambda s, body: s.set_secondary_limits(**body),
    ("POST", "/_standin/refuse-next"): lambda s, body: s.refuse_next(**body),
    ("GET", "/_standin/accounts"): lambda s, body: s.accounts_report(),
    ("POST", "/_standin/reset-accounts"): lambda s, body: s.reset_accounts(),
    ("POST", "/_standin/apps"): lambda s, body: s.add_app(**body),
    ("POST", "/_standin/reset-stats"): lambda s, body: s.reset_stats(),
}


def answer_admin(standin: StandinServer, request: Request) -> Reply:
    """The JSON answer of an admin endpoint: 400 for a bad value, 404 for an unknown one."""
    parts = urlsplit(request.target)
    path, method = parts.path, request.method
    try:
        data = json.loads(request.body) if request.body.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        if control := _CONTROLS.get((method, path)):
            return json_reply(200, control(standin, data))
        if (method, path) == ("POST", "/_standin/tokens"):
            tokens = data.get("tokens")
            if not isinstance(tokens, dict):
                raise ValueError('the body must be {"tokens": {token: login}}')
            return json_reply(200, standin.add_tokens(tokens))
        if (method, path) == ("POST", "/_standin/revoke"):
            return json_reply(200, {"revoked": standin.accounts.revoke(data.get("tokens"))})
        if (method, path) == ("GET", "/_standin/users"):
            query = parse_qs(parts.query)
            first = int_param(query, "first", 1)
            last = int_param(query, "last", standin.dataset.size)
            users = standin.dataset.users_between(first, last)
            return json_reply(200, [ground_truth(u) for u in users])
        if match := _ADMIN_USER_PATH.fullmatch(path):
            user_id = int(match[1])
            if method == "POST":
                return json_reply(200, ground_truth(standin.dataset.update(user_id, **data)))
            if method == "DELETE":
                standin.dataset.delete(user_id)
                return json_reply(200, {"deleted": user_id})
    except KeyError as exc:
        return json_reply(404, {"message": str(exc.args[0] if exc.args else exc)})
    except (TypeError, ValueError) as exc:
        return json_reply(400, {"message": str(exc)})
    return json_reply(404, {"message": f"no admin endpoint {method} {path}"})

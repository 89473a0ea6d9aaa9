"""The ``/_standin/...`` endpoints: ``StandinServer``'s control methods for other processes.

``StandinAdmin`` (``admin.py``) is their client. They are free of rate limits, latency and faults
and not counted in the stats or the accounts' records, so steering a test never disturbs what it
measures. Tokens go in (``/_standin/tokens``) but never come out: answers name accounts by login.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from gh_assets_devtools.standin.data import ground_truth
from gh_assets_devtools.standin.http_server import Reply, Request, json_reply
from gh_assets_devtools.standin.rest_api import int_param

if TYPE_CHECKING:
    from gh_assets_devtools.standin.server import StandinServer

_ADMIN_USER_PATH = re.compile(r"/_standin/users/([0-9]{1,18})")


def answer_admin(standin: StandinServer, request: Request) -> Reply:
    """The JSON answer of an admin endpoint: 400 for a bad value, 404 for an unknown one."""
    parts = urlsplit(request.target)
    path, method = parts.path, request.method
    try:
        data = json.loads(request.body) if request.body.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        if (method, path) == ("GET", "/_standin/state"):
            return json_reply(200, standin.stats())
        if (method, path) == ("POST", "/_standin/faults"):
            return json_reply(200, standin.set_faults(**data))
        if (method, path) == ("POST", "/_standin/heal"):
            return json_reply(200, standin.heal())
        if (method, path) == ("POST", "/_standin/rate-limit"):
            limit, window = data.get("limit"), data.get("window")
            reset = bool(data.get("reset", False))
            graphql_limit = data.get("graphql_limit")
            state = standin.set_rate_limit(
                limit,
                window,
                reset=reset,
                graphql_limit=graphql_limit,
                installation_limit=data.get("installation_limit"),
            )
            return json_reply(200, state)
        if (method, path) == ("POST", "/_standin/tokens"):
            tokens = data.get("tokens")
            if not isinstance(tokens, dict):
                raise ValueError('the body must be {"tokens": {token: login}}')
            return json_reply(200, standin.add_tokens(tokens))
        if (method, path) == ("POST", "/_standin/revoke"):
            return json_reply(200, {"revoked": standin.accounts.revoke(data.get("tokens"))})
        if (method, path) == ("POST", "/_standin/secondary-limits"):
            return json_reply(200, standin.set_secondary_limits(**data))
        if (method, path) == ("POST", "/_standin/refuse-next"):
            return json_reply(200, standin.refuse_next(**data))
        if (method, path) == ("GET", "/_standin/accounts"):
            return json_reply(200, standin.accounts_report())
        if (method, path) == ("POST", "/_standin/reset-accounts"):
            return json_reply(200, standin.reset_accounts())
        if (method, path) == ("POST", "/_standin/apps"):
            return json_reply(200, standin.add_app(**data))
        if (method, path) == ("POST", "/_standin/reset-stats"):
            return json_reply(200, standin.reset_stats())
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

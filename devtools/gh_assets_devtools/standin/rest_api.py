"""GitHub's REST users API as the stand-in serves it: routes, bodies, ``Link`` paging, ETags.

Only what an answer contains lives here; when it is charged, delayed or failed is the server's
business (``server.py``), so these are plain functions of the dataset and the request.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import fields
from typing import Any

from gh_assets_devtools.standin.data import Dataset, StandinUser
from gh_assets_devtools.standin.graphql_schema import node_id
from gh_assets_devtools.standin.http_server import Request

DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
GET_USER_DOCS = "https://docs.github.com/rest/users/users#get-a-user"
USER_PATH = re.compile(r"/users/([A-Za-z0-9-]{1,39})")
ID_PATH = re.compile(r"/user/([0-9]{1,18})")
_PROFILE = [
    f.name for f in fields(StandinUser) if f.name not in ("id", "login", "type", "site_admin")
]


def resource(
    dataset: Dataset, path: str, query: dict[str, list[str]], base: str
) -> tuple[int, Any, list[int], dict[str, str]]:
    """(status, JSON payload, IDs that fail it, extra headers) for an API path."""
    if path == "/users":
        since = int_param(query, "since", 0)
        per_page = int_param(query, "per_page", DEFAULT_PER_PAGE)
        per_page = min(per_page, MAX_PER_PAGE) if per_page > 0 else DEFAULT_PER_PAGE
        users = dataset.users_after(since, per_page + 1)  # one more: is there a next?
        page = users[:per_page]
        links = [f'<{base}/users{{?since}}>; rel="first"']
        if len(users) > per_page:
            echoed = f"per_page={per_page}&" if "per_page" in query else ""
            links.insert(0, f'<{base}/users?{echoed}since={page[-1].id}>; rel="next"')
        items = [simple_user(u, base) for u in page]
        # A list page counts as showing the ID after its cursor: a failing ID range breaks the
        # pages that start in it and the users in it, not a neighbour page that merely
        # reaches into it (crawl windows stay independent, as a failed page should be).
        return 200, items, [since + 1], {"Link": ", ".join(links)}
    if match := USER_PATH.fullmatch(path):
        user = dataset.by_login(match[1])
    elif match := ID_PATH.fullmatch(path):
        user = dataset.user(int(match[1]))
    else:
        return 404, _not_found("https://docs.github.com/rest"), [], {}
    if user is None:
        return 404, _not_found(GET_USER_DOCS), [], {}
    return 200, public_user(user, base), [user.id], {}


def simple_user(user: StandinUser, base: str) -> dict[str, Any]:
    """GitHub's ``simple-user``, as listed by ``GET /users``; API URLs point at ``base``."""
    api = f"{base}/users/{user.login}"
    return {
        "login": user.login,
        "id": user.id,
        "node_id": node_id(user),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user.id}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": f"https://github.com/{user.login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": user.type,
        "user_view_type": "public",
        "site_admin": user.site_admin,
    }


def public_user(user: StandinUser, base: str) -> dict[str, Any]:
    """GitHub's ``public-user``, as ``GET /users/{login}`` and ``GET /user/{id}`` answer."""
    return simple_user(user, base) | {name: getattr(user, name) for name in _PROFILE}


def etag(credential: str, body: bytes) -> str:
    """Weak ETag over credential and body: GitHub's ETags are only valid for who fetched them."""
    digest = hashlib.sha256(credential.encode() + b"\n" + body).hexdigest()
    return f'W/"{digest}"'


def etag_matches(if_none_match: str | None, current: str) -> bool:
    """Weak comparison (RFC 9110) with the ``current`` ETag: ``W/"x"`` matches ``"x"``; a list or
    ``*`` is accepted."""
    if not if_none_match:
        return False
    opaque = current.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == opaque:
            return True
    return False


def base_url(request: Request, fallback: str) -> str:
    host = request.headers.get("Host")
    return f"http://{host}" if host else fallback


def int_param(query: dict[str, list[str]], name: str, default: int) -> int:
    """GitHub ignores a parameter that is not an integer."""
    try:
        return int(query[name][0])
    except (KeyError, ValueError):
        return default


def _not_found(documentation_url: str) -> dict[str, str]:
    return {"message": "Not Found", "documentation_url": documentation_url, "status": "404"}

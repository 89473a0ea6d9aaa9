"""GitHub's answers as the client's tests script them on the replay server (``replay_server``):
a user's body, a page of listed users, a page's Link header to the next, a rate-limit refusal.
Shared by the test_github_client_* modules."""

from __future__ import annotations

from typing import Any

from gh_assets_tests.replay_server import Reply

CREATED = 1200285215  # 2008-01-14T04:33:35Z, the created_at of user_body, as epoch seconds


def user_body(user_id: int, **overrides: Any) -> dict[str, Any]:
    body = {
        "id": user_id,
        "login": f"user{user_id}",
        "type": "User",
        "public_repos": 1,
        "public_gists": 2,
        "followers": 3,
        "following": 4,
        "created_at": "2008-01-14T04:33:35Z",
    }
    return body | overrides


def listed(*ids: int) -> list[dict[str, Any]]:
    return [{"id": i, "login": f"user{i}", "type": "User"} for i in ids]


def next_link(url: str) -> tuple[str, str]:
    return ("Link", f'<{url}>; rel="next", <{url.split("?")[0]}{{?since}}>; rel="first"')


def limited(status: int, message: str, *headers: tuple[str, str]) -> Reply:
    return Reply(status, {"message": message}, headers)

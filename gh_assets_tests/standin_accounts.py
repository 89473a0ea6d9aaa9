"""Tokens of two accounts and GitHub's answers about their budgets, as the stand-in's
per-account tests send and check them (test_standin_accounts, test_standin_limits,
test_standin_apps, test_standin_command)."""

from __future__ import annotations

import json

import requests

# Assembled, so that no token-shaped literal sits in the source.
TOK_A, TOK_B, TOK_C = ("ghp" + "_standinLIMITS" + c * 22 for c in "ABC")
TOKENS = {TOK_A: "alice", TOK_B: "alice", TOK_C: "bob"}
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID "
)
SECONDARY_DOCS = (
    "https://docs.github.com/free-pro-team@latest/rest/overview/"
    "rate-limits-for-the-rest-api#about-secondary-rate-limits"
)
RATE_LIMIT_QUERY = json.dumps({"query": "query { rateLimit { cost remaining } }"})


def auth(token: str, scheme: str = "token") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


def remaining(resp: requests.Response) -> int:
    return int(resp.headers["X-RateLimit-Remaining"])


def assert_secondary(
    resp: requests.Response, status: int = 403, retry_after: str | None = "1"
) -> None:
    """A secondary-limit refusal exactly as GitHub sends it."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert list(body) == ["documentation_url", "message"]
    assert body["documentation_url"] == SECONDARY_DOCS
    request_id = resp.headers["X-GitHub-Request-Id"]
    assert body["message"] == f"{SECONDARY_MESSAGE}{request_id}."
    assert resp.headers.get("Retry-After") == retry_after
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"

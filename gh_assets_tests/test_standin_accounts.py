"""The stand-in's accounts over real HTTP: the tokens of one account share its primary budget,
``GET /user`` answers the token's account, and the accounts' record and admin endpoints."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import jsonschema
import pytest
import requests

from gh_assets_devtools.standin import StandinAdmin, StandinAdminError, StandinServer
from gh_assets_tests import RECORDINGS

from .standin_accounts import RATE_LIMIT_QUERY, TOK_A, TOK_B, TOK_C, TOKENS, auth, remaining
from .standin_fixtures import http as http
from .standin_fixtures import start as start

pytestmark = pytest.mark.integration


# -- accounts and the primary budget ---------------------------------------------------------


def test_tokens_of_one_account_share_the_primary_budget_and_accounts_do_not(
    start: Callable[..., StandinServer], http: requests.Session
) -> None:
    server = start(rate_limit=5, tokens=TOKENS)
    url = f"{server.url}/user/1"
    assert remaining(http.get(url, headers=auth(TOK_A))) == 4
    assert remaining(http.get(url, headers=auth(TOK_B, "Bearer"))) == 3
    assert remaining(http.get(url, headers=auth(TOK_A, "bearer"))) == 2
    assert remaining(http.get(url, headers=auth(TOK_C))) == 4  # bob: a budget of his own
    assert remaining(http.get(url, headers=auth("unregistered"))) == 4  # an account of its own
    assert remaining(http.get(url, headers=auth("unregistered", "Bearer"))) == 3  # same token
    assert remaining(http.get(url)) == 4  # anonymous: per IP
    for _ in range(2):
        assert http.get(url, headers=auth(TOK_B)).status_code == 200
    refused = http.get(url, headers=auth(TOK_A))
    assert refused.status_code == 403 and remaining(refused) == 0
    assert refused.json()["message"].startswith("API rate limit exceeded for user.")
    assert http.get(url, headers=auth(TOK_C)).status_code == 200
    overview = http.get(f"{server.url}/rate_limit", headers=auth(TOK_B)).json()
    assert overview["rate"]["used"] == 5

    report = server.accounts_report()
    alice = report["alice"]
    assert alice["requests"] == {"rest": 7, "graphql": 0}  # 6 GETs and /rate_limit
    assert alice["primary_refusals"] == 1 and alice["secondary_refusals"] == 0
    assert [a[2] for a in alice["arrivals"]] == [None] * 5 + ["primary", None]
    assert report["bob"]["requests"] == {"rest": 2, "graphql": 0}
    assert report["ip:127.0.0.1"]["requests"]["rest"] == 1
    digests = [name for name in report if name.startswith("token-")]
    assert len(digests) == 1 and report[digests[0]]["requests"]["rest"] == 2
    text = json.dumps(report)
    assert all(token not in text for token in (*TOKENS, "unregistered"))


def test_get_user_answers_the_account_of_the_token(
    start: Callable[..., StandinServer], http: requests.Session
) -> None:
    server = start(tokens=TOKENS)
    a, b, c = (http.get(f"{server.url}/user", headers=auth(t)) for t in (TOK_A, TOK_B, TOK_C))
    assert a.status_code == b.status_code == c.status_code == 200
    assert (a.json()["login"], a.json()["id"]) == ("alice", 9_000_001)
    assert a.json() == b.json()
    assert (c.json()["login"], c.json()["id"]) == ("bob", 9_000_002)
    body = a.json()
    assert body["type"] == "User" and body["site_admin"] is False
    assert body["node_id"] and body["url"] == f"{server.url}/users/alice"
    assert body["plan"]["name"] == "free" and "two_factor_authentication" in body
    assert remaining(a) == 4999 and remaining(b) == 4998  # charged like any GET
    assert a.headers["Cache-Control"].startswith("private")
    schema = json.loads((RECORDINGS / "schemas" / "private-user.jsonschema.json").read_text())
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    jsonschema.Draft202012Validator(schema, format_checker=checker).validate(body)

    other = http.get(f"{server.url}/user", headers=auth("unregistered"))
    assert other.status_code == 200 and other.json()["login"].startswith("token-")
    assert other.json()["id"] == 9_000_003 and "unregistered" not in other.text
    anonymous = http.get(f"{server.url}/user")
    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "message": "Requires authentication",
        "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user",
        "status": "401",
    }
    assert server.add_tokens({"tokD": "Carol"}) == {
        "accounts": {"alice": 9_000_001, "bob": 9_000_002, "Carol": 9_000_004}
    }
    assert http.get(f"{server.url}/user", headers=auth("tokD")).json()["id"] == 9_000_004


# -- the record and the admin endpoints ------------------------------------------------------


def test_the_accounts_report_and_the_admin_endpoints(
    start: Callable[..., StandinServer], http: requests.Session
) -> None:
    server = start(tokens=TOKENS, minute=1.0, rest_points_per_minute=2, secondary_block=0.2)
    url = f"{server.url}/user/1"
    before = time.time()
    statuses = [http.get(url, headers=auth(t)).status_code for t in (TOK_A, TOK_B, TOK_A)]
    assert statuses == [200, 200, 403]
    http.get(url, headers=auth(TOK_C))
    http.post(f"{server.url}/graphql", data=RATE_LIMIT_QUERY)
    after = time.time()

    with StandinAdmin(server.url) as admin:
        report = admin.accounts_report()
        assert report == server.accounts_report()
        assert set(report) == {"alice", "bob", "ip:127.0.0.1"}
        alice = report["alice"]
        assert [(kind, refused) for _, kind, refused in alice["arrivals"]] == [
            ("rest", None),
            ("rest", None),
            ("rest", "secondary"),
        ]
        times = [at for at, _, _ in alice["arrivals"]]
        assert before <= times[0] <= times[1] <= times[2] <= after
        assert {k: v for k, v in alice.items() if k != "arrivals"} == {
            "requests": {"rest": 2, "graphql": 0},
            "primary_refusals": 0,
            "secondary_refusals": 1,
            "in_flight": 0,
            "peak_in_flight": 1,
            "arrivals_dropped": 0,
            "blocks": [{"start": times[2], "end": pytest.approx(times[2] + 0.2), "arrivals": 0}],
        }
        assert report["ip:127.0.0.1"]["requests"] == {"rest": 0, "graphql": 1}
        assert all(token not in json.dumps(report) for token in TOKENS)

        assert admin.reset_accounts() == {} == server.accounts_report()
        assert http.get(url, headers=auth(TOK_A)).status_code == 200  # windows were reset too
        assert admin.accounts_report()["alice"]["requests"]["rest"] == 1

        limits = admin.set_secondary_limits(rest_points_per_minute=None, secondary_status=429)
        assert limits == server.set_secondary_limits() == server.stats()["secondary_limits"]
        assert limits == {
            "minute": 1.0,
            "secondary_in_flight": None,
            "rest_points_per_minute": None,
            "graphql_points_per_minute": None,
            "secondary_retry_after": True,
            "secondary_status": 429,
            "secondary_block": 0.2,
        }
        assert admin.add_tokens({"tokE": "erin"})["accounts"] == server.accounts.accounts()
        for bad in ({"secondary_status": 500}, {"minute": 0}, {"secondary_in_flight": 0},
                    {"secondary_retry_after": "yes"}, {"nonsense": 1}):  # fmt: skip
            with pytest.raises(StandinAdminError) as refused:
                admin.set_secondary_limits(**bad)
            assert refused.value.status == 400, bad
        with pytest.raises(StandinAdminError):
            admin.add_tokens({"tokF": "not a login"})
        with pytest.raises(StandinAdminError):
            admin.refuse_next("alice", retry_after=-1)
    assert server.stats()["secondary_limits"]["secondary_status"] == 429  # nothing half-applied

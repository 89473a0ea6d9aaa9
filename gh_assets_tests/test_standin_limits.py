"""The stand-in's per-account budgets over real HTTP: tokens and accounts, GitHub's secondary
limits (points per rolling minute, requests in flight, blocks that grow), the accounts' record,
GitHub App authentication, and their admin endpoints and command-line options.

Minutes here last one or two seconds and the limits are tiny, so each test takes seconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gh_assets_devtools.standin import Dataset, StandinAdmin, StandinAdminError, StandinServer
from gh_assets_tests import RECORDINGS

from .standin_command import standin_command

pytestmark = pytest.mark.integration

UA = "gh-assets-tests"
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


@pytest.fixture
def start(request: pytest.FixtureRequest) -> Callable[..., StandinServer]:
    """Start a stand-in with these options; it stops when the test ends."""

    def start(**options: Any) -> StandinServer:
        server = StandinServer(Dataset(size=300, seed=3), **options).start()
        request.addfinalizer(server.stop)
        return server

    return start


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["User-Agent"] = UA
        yield session


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def app_jwt(key: rsa.RSAPrivateKey, iss: int | str, *, iat: float = -60, exp: float = 540) -> str:
    """A JWT issued ``iat`` and expiring ``exp`` seconds from now. Signed as raw JSON: PyJWT
    encodes only a string ``iss``, and GitHub takes the App id as a number too."""
    now = int(time.time())
    claims = {"iat": now + int(iat), "exp": now + int(exp), "iss": iss}
    return jwt.api_jws.encode(json.dumps(claims).encode(), key, algorithm="RS256")


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


# -- secondary limits --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("retry_after", "status"), [(True, 403), (False, 429)])
def test_over_the_rest_points_of_a_minute_is_a_secondary_refusal_not_charged(
    start: Callable[..., StandinServer], http: requests.Session, retry_after: bool, status: int
) -> None:
    server = start(
        tokens=TOKENS,
        minute=1.0,
        rest_points_per_minute=3,
        secondary_retry_after=retry_after,
        secondary_status=status,
    )
    url = f"{server.url}/user/1"
    assert [remaining(http.get(url, headers=auth(TOK_A))) for _ in range(3)] == [4999, 4998, 4997]
    refused = http.get(url, headers=auth(TOK_B))  # the same account
    assert_secondary(refused, status, "1" if retry_after else None)
    assert refused.headers["X-RateLimit-Remaining"] == "4997"  # not 0: the primary is fine
    assert refused.headers["X-RateLimit-Used"] == "3"
    assert refused.headers["X-RateLimit-Resource"] == "core"
    assert http.get(url, headers=auth(TOK_C)).status_code == 200  # bob is not limited
    assert_secondary(  # /rate_limit is free on primary, not on secondary
        http.get(f"{server.url}/rate_limit", headers=auth(TOK_A)),
        status,
        "1" if retry_after else None,
    )

    time.sleep(1.1)  # the block (one minute) ends a minute after the last refused request
    again = http.get(url, headers=auth(TOK_A))
    assert again.status_code == 200 and remaining(again) == 4996  # refusals were not charged
    alice = server.accounts_report()["alice"]
    assert alice["requests"]["rest"] == 4 and alice["secondary_refusals"] == 2
    assert [a[2] for a in alice["arrivals"]] == [None] * 3 + ["secondary"] * 2 + [None]
    (block,) = alice["blocks"]
    assert block["start"] == alice["arrivals"][3][0] and block["arrivals"] == 1
    assert block["end"] == pytest.approx(alice["arrivals"][4][0] + 1.0)


@pytest.mark.slow
def test_the_block_grows_while_the_account_keeps_sending_and_ends_after(
    start: Callable[..., StandinServer], http: requests.Session
) -> None:
    server = start(tokens=TOKENS, minute=1.0, rest_points_per_minute=2, secondary_block=0.6)
    url = f"{server.url}/user/1"
    assert [http.get(url, headers=auth(TOK_A)).status_code for _ in range(2)] == [200, 200]
    first = http.get(url, headers=auth(TOK_A))
    assert_secondary(first, 403, "1")  # ceil(0.6)
    sent_until = time.time() + 1.3  # well past the 0.6 s the first refusal alone would block
    while time.time() < sent_until:
        time.sleep(0.2)
        assert_secondary(http.get(url, headers=auth(TOK_A)), 403, "1")
    time.sleep(0.7)
    assert http.get(url, headers=auth(TOK_A)).status_code == 200

    alice = server.accounts_report()["alice"]
    refused = [a[0] for a in alice["arrivals"] if a[2] == "secondary"]
    (block,) = alice["blocks"]
    assert block == {
        "start": refused[0],
        "end": pytest.approx(refused[-1] + 0.6),
        "arrivals": len(refused) - 1,
    }
    assert block["end"] - block["start"] > 1.3
    assert alice["arrivals"][-1][0] >= block["end"] and alice["arrivals"][-1][2] is None


def test_304s_count_on_the_secondary_window(
    start: Callable[..., StandinServer], http: requests.Session
) -> None:
    server = start(tokens=TOKENS, minute=2.0, rest_points_per_minute=3)
    url = f"{server.url}/user/1"
    first = http.get(url, headers=auth(TOK_A))
    conditional = auth(TOK_A) | {"If-None-Match": first.headers["ETag"]}
    for _ in range(2):
        resp = http.get(url, headers=conditional)
        assert resp.status_code == 304 and remaining(resp) == 4999  # free on primary
    assert_secondary(http.get(url, headers=conditional), 403, "2")
    alice = server.accounts_report()["alice"]
    assert alice["requests"]["rest"] == 3 and alice["secondary_refusals"] == 1


@pytest.mark.slow
def test_more_requests_in_flight_than_allowed_are_refused(
    start: Callable[..., StandinServer],
) -> None:
    server = start(
        tokens=TOKENS, latency_ms=600, minute=1.0, secondary_in_flight=2, secondary_block=0.3
    )
    barrier = threading.Barrier(6)
    statuses: dict[str, list[int]] = {"alice": [], "bob": []}

    def get(token: str, login: str) -> None:
        with requests.Session() as session:
            session.headers["User-Agent"] = UA
            barrier.wait()
            resp = session.get(f"{server.url}/user/1", headers=auth(token))
            statuses[login].append(resp.status_code)

    threads = [threading.Thread(target=get, args=(TOK_A, "alice")) for _ in range(5)]
    threads.append(threading.Thread(target=get, args=(TOK_C, "bob")))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses["alice"]) == [200, 200, 403, 403, 403]
    assert statuses["bob"] == [200]  # in flight per account
    report = server.accounts_report()
    assert report["alice"]["peak_in_flight"] == 2 and report["alice"]["in_flight"] == 0
    assert report["alice"]["secondary_refusals"] == 3
    assert report["alice"]["requests"] == {"rest": 2, "graphql": 0}
    assert report["bob"]["peak_in_flight"] == 1
    time.sleep(0.35)
    with requests.Session() as session:
        resp = session.get(f"{server.url}/user/1", headers=auth(TOK_B) | {"User-Agent": UA})
        assert resp.status_code == 200


def test_graphql_has_a_window_of_its_own(
    start: Callable[..., StandinServer], http: requests.Session
) -> None:
    server = start(
        tokens=TOKENS,
        minute=2.0,
        rest_points_per_minute=2,
        graphql_points_per_minute=3,
        secondary_block=0.5,
    )
    graphql = f"{server.url}/graphql"
    assert [
        http.get(f"{server.url}/user/1", headers=auth(TOK_A)).status_code for _ in range(2)
    ] == [
        200,
        200,
    ]
    answers = [http.post(graphql, data=RATE_LIMIT_QUERY, headers=auth(TOK_B)) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200]  # REST points do not count here
    assert [r.json()["data"]["rateLimit"]["remaining"] for r in answers] == [4999, 4998, 4997]
    refused = http.post(graphql, data=RATE_LIMIT_QUERY, headers=auth(TOK_A))
    assert_secondary(refused, 403, "1")
    assert refused.headers["X-RateLimit-Resource"] == "graphql"
    assert refused.headers["X-RateLimit-Remaining"] == "4997"
    assert refused.headers["X-GitHub-Media-Type"] == "github.v4; format=json"
    time.sleep(0.6)
    answer = http.post(graphql, data=RATE_LIMIT_QUERY, headers=auth(TOK_A))  # window: still 3
    assert_secondary(answer, 403, "1")
    alice = server.accounts_report()["alice"]
    assert alice["requests"] == {"rest": 2, "graphql": 3}
    assert [a[1] for a in alice["arrivals"]] == ["rest"] * 2 + ["graphql"] * 5
    assert len(alice["blocks"]) == 2


@pytest.mark.slow
def test_admitted_requests_never_exceed_the_limit_in_any_rolling_minute(
    start: Callable[..., StandinServer],
) -> None:
    """Four threads sending as fast as they may (each pauses 0.3 s after a refusal): the record
    shows every half-open window ``[s, s + minute)`` with at most the limit of answered
    requests, and every request that arrived inside a block refused."""
    minute, limit = 0.5, 5
    server = start(tokens=TOKENS, minute=minute, rest_points_per_minute=limit, secondary_block=0.2)
    stop_at = time.time() + 2.0

    def hammer() -> None:
        with requests.Session() as session:
            session.headers["User-Agent"] = UA
            while time.time() < stop_at:
                if session.get(f"{server.url}/user/1", headers=auth(TOK_A)).status_code != 200:
                    time.sleep(0.3)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alice = server.accounts_report()["alice"]
    answered = [at for at, _, refused in alice["arrivals"] if refused is None]
    assert answered == sorted(answered)
    for i, first in enumerate(answered):
        assert sum(first <= at < first + minute for at in answered[i:]) <= limit
    assert len(answered) >= 2 * limit and len(alice["blocks"]) >= 2
    assert alice["secondary_refusals"] == len(alice["arrivals"]) - len(answered)
    for at, _, refused in alice["arrivals"]:
        inside = any(b["start"] < at < b["end"] for b in alice["blocks"])
        assert refused == "secondary" or not inside


def test_refuse_next_provokes_one_refusal_on_demand(
    start: Callable[..., StandinServer], http: requests.Session
) -> None:
    server = start(tokens=TOKENS, minute=1.0, secondary_block=0.3)
    url = f"{server.url}/user/1"
    with StandinAdmin(server.url) as admin:
        assert admin.refuse_next("alice", retry_after=0.5) == {"account": "alice", "pending": 1}
        server.refuse_next("bob")
    assert_secondary(http.get(url, headers=auth(TOK_B)), 403, "1")
    assert_secondary(http.get(url, headers=auth(TOK_C)), 403, None)  # no retry_after: no header
    assert http.get(url).status_code == 200  # others are not limited
    time.sleep(0.55)
    assert http.get(url, headers=auth(TOK_A)).status_code == 200
    assert http.get(url, headers=auth(TOK_C)).status_code == 200
    blocks = {name: r["blocks"] for name, r in server.accounts_report().items()}
    assert blocks["alice"][0]["end"] - blocks["alice"][0]["start"] == pytest.approx(0.5)
    assert blocks["bob"][0]["end"] - blocks["bob"][0]["start"] == pytest.approx(0.3)


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


# -- GitHub App authentication ---------------------------------------------------------------


def test_an_app_lists_its_installations_and_mints_tokens_with_a_good_jwt(
    start: Callable[..., StandinServer],
    http: requests.Session,
    app_key: rsa.RSAPrivateKey,
    other_key: rsa.RSAPrivateKey,
) -> None:
    server = start(apps={42: public_pem(app_key)}, installations={101: 42, 102: 42})
    with StandinAdmin(server.url) as admin:
        added = admin.add_app(43, public_pem(other_key), [201])
    assert added == {"app_id": 43, "installations": [201]}
    good = auth(app_jwt(app_key, 42), "Bearer")

    listed = http.get(f"{server.url}/app/installations", headers=good)
    assert listed.status_code == 200 and "X-RateLimit-Limit" not in listed.headers
    assert [(i["id"], i["app_id"], i["target_type"]) for i in listed.json()] == [
        (101, 42, "Organization"),
        (102, 42, "Organization"),
    ]
    first = listed.json()[0]
    assert first["account"]["type"] == "Organization" and first["account"]["id"] >= 9_000_001
    assert first["access_tokens_url"] == f"{server.url}/app/installations/101/access_tokens"
    page = http.get(f"{server.url}/app/installations?per_page=1", headers=good)
    assert [i["id"] for i in page.json()] == [101]
    assert page.links["next"]["url"] == f"{server.url}/app/installations?per_page=1&page=2"
    as_string = auth(app_jwt(app_key, "42"), "Bearer")  # iss may be a string
    assert http.get(f"{server.url}/app/installations/102", headers=as_string).json()["id"] == 102

    minted = http.post(f"{server.url}/app/installations/101/access_tokens", headers=good, json={})
    assert minted.status_code == 201
    body = minted.json()
    assert set(body) == {"token", "expires_at", "permissions", "repository_selection"}
    assert body["token"].startswith("ghs_") and len(body["token"]) == 40
    assert body["repository_selection"] == "all" and body["permissions"] == {"metadata": "read"}
    expires_at = datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    assert time.time() + 3590 < expires_at <= time.time() + 3600

    other_app = http.post(f"{server.url}/app/installations/201/access_tokens", headers=good)
    assert other_app.status_code == 404 and other_app.json()["message"] == "Not Found"
    unknown = http.get(f"{server.url}/app/installations/999", headers=good)
    assert unknown.status_code == 404
    # the JWT is good for the App endpoints only
    elsewhere = http.get(f"{server.url}/user/1", headers=good)
    assert (elsewhere.status_code, elsewhere.json()["message"]) == (401, "Bad credentials")
    assert server.accounts_report() == {}  # App endpoints are outside the accounts' budgets


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": -1, "iat": -100}, "'Expiration time' claim ('exp') must be a numeric value "
         "representing the future time at which the assertion expires"),
        ({"exp": 600, "iat": -60}, "'Expiration time' claim ('exp') is too far in the future"),
        ({"iat": 120, "exp": 300}, "'Issued at' claim ('iat') must be an Integer representing "
         "the time that the assertion was issued"),
        ({"key": "other"}, "A JSON web token could not be decoded"),
        ({"iss": 7}, "A JSON web token could not be decoded"),  # no such App
        ({"token": "a-personal-token"}, "A JSON web token could not be decoded"),
        ({"token": None}, "A JSON web token could not be decoded"),
    ],
)  # fmt: skip
def test_a_bad_jwt_gets_githubs_401(
    start: Callable[..., StandinServer],
    http: requests.Session,
    app_key: rsa.RSAPrivateKey,
    other_key: rsa.RSAPrivateKey,
    claims: dict[str, Any],
    message: str,
) -> None:
    server = start(apps={42: public_pem(app_key)}, installations={101: 42})
    key = other_key if claims.get("key") == "other" else app_key
    token = claims.get("token", "") or None
    if "token" not in claims:
        times = {k: claims[k] for k in ("iat", "exp") if k in claims}
        token = app_jwt(key, claims.get("iss", 42), **times)
    headers = auth(token, "Bearer") if token else {}
    for method, path in (("GET", "/app/installations"),
                         ("POST", "/app/installations/101/access_tokens")):  # fmt: skip
        resp = http.request(method, server.url + path, headers=headers)
        assert resp.status_code == 401
        assert resp.json() == {
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": "401",
        }


@pytest.mark.slow
def test_an_installation_token_is_an_account_with_its_own_budget_until_it_expires(
    start: Callable[..., StandinServer], http: requests.Session, app_key: rsa.RSAPrivateKey
) -> None:
    server = start(
        apps={42: public_pem(app_key)},
        installations={101: 42, 102: 42},
        installation_token_ttl=2.0,
        installation_limit=3,
        rate_limit=10,
        tokens=TOKENS,
    )
    good = auth(app_jwt(app_key, 42), "Bearer")
    minted_at = time.time()
    minted = {
        i: http.post(f"{server.url}/app/installations/{i}/access_tokens", headers=good).json()
        for i in (101, 102)
    }
    first, second = (auth(minted[i]["token"]) for i in (101, 102))
    url = f"{server.url}/user/1"
    seen = [http.get(url, headers=first) for _ in range(3)]
    assert [(r.status_code, r.headers["X-RateLimit-Limit"], remaining(r)) for r in seen] == [
        (200, "3", 2),
        (200, "3", 1),
        (200, "3", 0),
    ]
    assert http.get(url, headers=first).status_code == 403  # primary: 3 an hour
    assert remaining(http.get(url, headers=second)) == 2  # another installation, another budget
    assert remaining(http.get(url, headers=auth(TOK_A))) == 9  # users keep rate_limit
    me = http.get(f"{server.url}/user", headers=second)
    assert (me.status_code, me.json()["message"]) == (403, "Resource not accessible by integration")
    graphql = http.post(f"{server.url}/graphql", data=RATE_LIMIT_QUERY, headers=second)
    assert graphql.status_code == 200 and graphql.headers["X-RateLimit-Limit"] == "5000"

    server.set_secondary_limits(minute=1.0, rest_points_per_minute=3)  # installation:102: 2 so far
    assert http.get(url, headers=second).status_code == 200
    assert_secondary(http.get(url, headers=second), 403, "1")
    report = server.accounts_report()
    assert report["installation:101"]["primary_refusals"] == 1
    assert report["installation:102"]["secondary_refusals"] == 1
    assert report["installation:102"]["requests"] == {"rest": 3, "graphql": 1}
    assert all(m["token"] not in json.dumps(report) for m in minted.values())

    time.sleep(max(0.0, minted_at + 2.1 - time.time()))
    expired = http.get(url, headers=second)
    assert expired.status_code == 401
    assert expired.json() == {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }
    expired = http.post(f"{server.url}/graphql", data=RATE_LIMIT_QUERY, headers=first)
    assert (expired.status_code, expired.json()["message"]) == (401, "Bad credentials")
    assert server.accounts_report()["installation:102"]["requests"]["rest"] == 3  # not counted


# -- the command line --------------------------------------------------------------------------


@pytest.mark.slow
def test_the_command_line_takes_tokens_and_secondary_limits(tmp_path: Path) -> None:
    port_file = tmp_path / "standin.url"
    args = ["--size", "50", "--tokens", "tokA=alice,tokB=alice", "--minute", "2",
            "--rest-points-per-minute", "2", "--no-secondary-retry-after",
            "--secondary-status", "429", "--secondary-block", "0.5"]  # fmt: skip
    with standin_command(port_file, *args) as (_, url), StandinAdmin(url) as admin:
        assert admin.stats()["secondary_limits"] == {
            "minute": 2.0,
            "secondary_in_flight": None,
            "rest_points_per_minute": 2,
            "graphql_points_per_minute": None,
            "secondary_retry_after": False,
            "secondary_status": 429,
            "secondary_block": 0.5,
        }
        headers = {"User-Agent": UA}
        answers = [requests.get(f"{url}/user", headers=headers | auth(t)) for t in ("tokA", "tokB")]
        assert [a.json()["login"] for a in answers] == ["alice", "alice"]
        assert_secondary(requests.get(f"{url}/user", headers=headers | auth("tokA")), 429, None)
        assert admin.accounts_report()["alice"]["secondary_refusals"] == 1

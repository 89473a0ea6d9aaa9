"""GitHub App authentication at the stand-in over real HTTP: installations listed and tokens
minted with a good JWT, GitHub's 401 for each bad one, and an installation token as an account
with its own budget until it expires."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gh_assets_devtools.standin import StandinAdmin, StandinServer

from .standin_accounts import RATE_LIMIT_QUERY, TOK_A, TOKENS, assert_secondary, auth, remaining
from .standin_fixtures import http as http
from .standin_fixtures import start as start

pytestmark = pytest.mark.integration


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

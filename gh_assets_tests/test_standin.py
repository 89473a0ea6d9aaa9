"""The GitHub stand-in over real HTTP against GitHub's official schemas: paging, users, ETags,
the rate limit. Its accounts are in test_standin_data.py, its faults and admin endpoints in
test_standin_admin.py, its command line in test_standin_command.py."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from http.client import HTTPConnection
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import requests

from gh_assets_devtools.standin import Dataset, StandinAdmin, StandinServer
from gh_assets_devtools.standin.data import ground_truth
from gh_assets_tests import RECORDINGS

from .standin_fixtures import SIZE
from .standin_fixtures import admin as admin
from .standin_fixtures import dataset as dataset
from .standin_fixtures import http as http
from .standin_fixtures import server as server

TOKEN = "ghp" + "_standinTESTtoken0123456789abcdefABCD"  # assembled: no token-shaped literal
API_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "X-GitHub-Media-Type": "github.v3; format=json",
    "x-github-api-version-selected": "2022-11-28",
    "X-RateLimit-Resource": "core",
    "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
}
NOT_FOUND = {
    "message": "Not Found",
    "documentation_url": "https://docs.github.com/rest/users/users#get-a-user",
    "status": "404",
}


@pytest.fixture(scope="module")
def schema() -> Callable[[str], jsonschema.Draft202012Validator]:
    folder = RECORDINGS / "schemas"

    def load(name: str) -> jsonschema.Draft202012Validator:
        document = json.loads((folder / f"{name}.jsonschema.json").read_text())
        checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
        return jsonschema.Draft202012Validator(document, format_checker=checker)

    return load


# -- GET /users ------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_paging_with_link_next_lists_exactly_the_dataset(
    server: StandinServer, dataset: Dataset, http: requests.Session, schema: Callable
) -> None:
    page_schema, item_schema = schema("GET_users_200"), schema("simple-user")
    url: str | None = f"{server.url}/users?per_page=100"
    listed: list[dict[str, Any]] = []
    while url:
        resp = http.get(url)
        assert resp.status_code == 200
        page = resp.json()
        page_schema.validate(page)
        for item in page:
            item_schema.validate(item)
            assert item["url"] == f"{server.url}/users/{item['login']}"
        listed += page
        url = resp.links.get("next", {}).get("url")
        if url:
            assert url == f"{server.url}/users?per_page=100&since={page[-1]['id']}"
        assert resp.links["first"]["url"] == f"{server.url}/users{{?since}}"
    expected = dataset.users_between(1, SIZE)
    assert [(u["id"], u["login"], u["type"]) for u in listed] == [
        (u.id, u.login, u.type) for u in expected
    ]
    past_end = http.get(f"{server.url}/users", params={"since": expected[-1].id})
    assert past_end.status_code == 200 and past_end.json() == []
    assert "next" not in past_end.links


@pytest.mark.integration
def test_per_page_defaults_to_30_and_is_clamped_to_100(
    server: StandinServer, dataset: Dataset, http: requests.Session
) -> None:
    default = http.get(f"{server.url}/users")
    assert [u["id"] for u in default.json()] == [u.id for u in dataset.users_after(0, 30)]
    assert default.links["next"]["url"] == f"{server.url}/users?since={default.json()[-1]['id']}"
    huge = http.get(f"{server.url}/users", params={"per_page": 500, "since": 1000})
    assert [u["id"] for u in huge.json()] == [u.id for u in dataset.users_after(1000, 100)]
    assert f"per_page=100&since={huge.json()[-1]['id']}" in huge.links["next"]["url"]
    one = http.get(f"{server.url}/users", params={"per_page": 1})
    assert [u["id"] for u in one.json()] == [1]
    assert one.links["next"]["url"].endswith("/users?per_page=1&since=1")


# -- GET /users/{login}, GET /user/{id} ------------------------------------------------------


@pytest.mark.integration
def test_users_by_login_and_by_id_are_full_public_users(
    server: StandinServer, dataset: Dataset, http: requests.Session, schema: Callable
) -> None:
    public, answer = schema("public-user"), schema("GET_users_username_200")
    users = dataset.users_between(1, 1000)
    sample = users[:20] + [u for u in users if u.type == "Organization"][:3]
    assert sum(u.type == "Organization" for u in sample) == 3
    for user in sample:
        by_login = http.get(f"{server.url}/users/{user.login.swapcase()}")
        by_id = http.get(f"{server.url}/user/{user.id}")
        assert by_login.status_code == by_id.status_code == 200
        assert by_login.json() == by_id.json()
        body = by_id.json()
        public.validate(body)
        answer.validate(body)
        assert {k: body[k] for k in ground_truth(user)} == ground_truth(user)
        assert (body["created_at"], body["updated_at"]) == (user.created_at, user.updated_at)
        assert body["repos_url"] == f"{server.url}/users/{user.login}/repos"
        for name, value in API_HEADERS.items():
            assert by_id.headers[name] == value
        assert re.fullmatch(r'W/"[0-9a-f]{64}"', by_id.headers["ETag"])


@pytest.mark.integration
def test_unknown_users_and_paths_are_404(
    server: StandinServer, dataset: Dataset, http: requests.Session, schema: Callable
) -> None:
    missing = next(i for i in range(1, SIZE) if dataset.user(i) is None)
    error = schema("basic-error")
    for path in (f"/user/{missing}", f"/user/{SIZE + 1}", "/users/NoSuchUser"):
        resp = http.get(server.url + path)
        assert (resp.status_code, resp.json()) == (404, NOT_FOUND), path
        error.validate(resp.json())
        assert "ETag" not in resp.headers
    other = http.get(f"{server.url}/repos/octocat/hello")
    assert other.status_code == 404 and other.json()["message"] == "Not Found"


@pytest.mark.integration
def test_the_rate_limit_endpoint_is_free_and_well_formed(
    server: StandinServer, http: requests.Session, schema: Callable
) -> None:
    http.get(f"{server.url}/user/1")
    for _ in range(2):
        resp = http.get(f"{server.url}/rate_limit")
        schema("rate-limit-overview").validate(resp.json())
        assert resp.json()["rate"]["used"] == resp.json()["resources"]["core"]["used"] == 1
        assert resp.headers["X-RateLimit-Remaining"] == "999"


# -- conditional requests and the rate limit -------------------------------------------------


@pytest.mark.integration
def test_a_matching_etag_gives_a_free_304_for_that_credential_only(
    server: StandinServer, dataset: Dataset, http: requests.Session
) -> None:
    url = f"{server.url}/user/1"
    first = http.get(url)
    etag, remaining = first.headers["ETag"], int(first.headers["X-RateLimit-Remaining"])
    opaque = etag.removeprefix("W/")
    for condition in (etag, opaque, f'W/"0000", {opaque}', "*"):
        again = http.get(url, headers={"If-None-Match": condition})
        assert (again.status_code, again.content) == (304, b""), condition
        assert again.headers["ETag"] == etag
        assert int(again.headers["X-RateLimit-Remaining"]) == remaining
    assert http.get(url, headers={"If-None-Match": 'W/"0000"'}).status_code == 200

    authed = http.get(url, headers={"Authorization": f"Bearer {TOKEN}", "If-None-Match": etag})
    assert authed.status_code == 200 and authed.headers["ETag"] != etag
    assert authed.content == first.content  # same body, credential-specific tag
    assert authed.headers["Cache-Control"].startswith("private")

    dataset.update(1, followers=dataset.user(1).followers + 1)
    changed = http.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


@pytest.mark.integration
def test_an_exhausted_budget_is_a_403_that_never_shows_the_token(
    server: StandinServer, admin: StandinAdmin, http: requests.Session
) -> None:
    server.set_rate_limit(3, 60, reset=True)
    auth = {"Authorization": f"token {TOKEN}"}
    start = time.time()
    seen = [http.get(f"{server.url}/user/1", headers=auth) for _ in range(3)]
    assert [r.headers["X-RateLimit-Remaining"] for r in seen] == ["2", "1", "0"]
    etag = seen[0].headers["ETag"]

    for headers in (auth, auth | {"If-None-Match": etag}):
        denied = http.get(f"{server.url}/user/1", headers=headers)
        assert denied.status_code == 403
        assert denied.headers["X-RateLimit-Remaining"] == "0"
        assert denied.headers["X-RateLimit-Used"] == "3"
        assert start + 59 <= int(denied.headers["X-RateLimit-Reset"]) <= time.time() + 61
        assert denied.json()["message"].startswith("API rate limit exceeded for user.")
        assert "rate-limiting" in denied.json()["documentation_url"]
        assert TOKEN not in denied.text and TOKEN not in str(denied.headers)

    assert http.get(f"{server.url}/rate_limit", headers=auth).status_code == 200  # still free
    anonymous = http.get(f"{server.url}/user/1")  # another credential, its own budget
    assert anonymous.status_code == 200 and anonymous.headers["X-RateLimit-Remaining"] == "2"
    assert http.get(f"{server.url}/user/1").status_code == 200
    assert http.get(f"{server.url}/user/1").status_code == 200
    blocked = http.get(f"{server.url}/user/1")
    assert blocked.json()["message"].startswith("API rate limit exceeded for 127.0.0.1. (")

    state = admin.set_rate_limit(10, 60, reset=True)
    assert (state["rate_limit"], state["rate_window"]) == (10, 60)
    fresh = http.get(f"{server.url}/user/1", headers=auth)
    assert fresh.status_code == 200 and fresh.headers["X-RateLimit-Remaining"] == "9"


@pytest.mark.integration
def test_a_request_without_user_agent_is_forbidden(server: StandinServer) -> None:
    # http.client, because requests (urllib3) always adds a User-Agent of its own
    connection = HTTPConnection(urlsplit(server.url).netloc, timeout=10)
    connection.request("GET", "/user/1")
    resp = connection.getresponse()
    body = json.loads(resp.read())
    connection.close()
    assert resp.status == 403
    assert body["message"].startswith("Request forbidden by administrative rules.")
    assert "User-Agent" in body["message"]

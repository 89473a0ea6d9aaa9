"""The GitHub stand-in over real HTTP: data, paging, schemas, ETags, rate limit, faults, admin."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import requests

from gh_assets_devtools.standin import Dataset, StandinAdmin, StandinAdminError, StandinServer
from gh_assets_devtools.standin.data import ground_truth
from gh_assets_tests import RECORDINGS

from .standin_command import standin_command

SIZE = 3000
SEED = 11
TOKEN = "ghp" + "_standinTESTtoken0123456789abcdefABCD"  # assembled: no token-shaped literal
LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
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


@pytest.fixture
def dataset() -> Dataset:
    return Dataset(size=SIZE, seed=SEED)


@pytest.fixture
def server(dataset: Dataset, request: pytest.FixtureRequest) -> StandinServer:
    standin = StandinServer(dataset, rate_limit=1000, seed=SEED).start()
    request.addfinalizer(standin.stop)
    return standin


@pytest.fixture
def admin(server: StandinServer) -> Iterator[StandinAdmin]:
    """The admin endpoints over HTTP, as a test in another process steers the stand-in."""
    with StandinAdmin(server.url) as client:
        yield client


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["User-Agent"] = "gh-assets-tests"
        yield session


@pytest.fixture(scope="module")
def schema() -> Callable[[str], jsonschema.Draft202012Validator]:
    folder = RECORDINGS / "schemas"

    def load(name: str) -> jsonschema.Draft202012Validator:
        document = json.loads((folder / f"{name}.jsonschema.json").read_text())
        checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
        return jsonschema.Draft202012Validator(document, format_checker=checker)

    return load


# -- data ------------------------------------------------------------------------------------


@pytest.mark.unit
def test_the_same_seed_gives_the_same_accounts_and_another_seed_others() -> None:
    first, again, other = Dataset(2000, seed=1), Dataset(2000, seed=1), Dataset(2000, seed=2)
    assert first.all_users() == again.all_users()
    assert first.all_users() != other.all_users()
    assert {u.id for u in first.all_users()} != {u.id for u in other.all_users()}
    assert first.user(1) is not None and other.user(1) is not None  # ID 1 exists, as on GitHub


@pytest.mark.unit
def test_ids_are_sparse_with_a_few_organizations_and_heavy_tailed_counts() -> None:
    users = Dataset(SIZE, seed=0).users_between(1, SIZE)
    assert 0.28 < 1 - len(users) / SIZE < 0.39
    orgs = [u for u in users if u.type == "Organization"]
    assert 0.02 < len(orgs) / len(users) < 0.06
    assert {u.type for u in users} == {"User", "Organization"}
    assert all(o.followers == o.following == o.public_gists == 0 for o in orgs)
    assert sum(o.public_repos > 0 for o in orgs) == len(orgs)
    followers = sorted(u.followers for u in users)
    assert followers[len(followers) // 2] <= 10 and followers[-1] >= 1000
    assert sum(f <= 10 for f in followers) / len(followers) > 0.8
    logins = [u.login for u in users]
    assert all(LOGIN.fullmatch(login) for login in logins)
    assert len({login.lower() for login in logins}) == len(logins)
    assert any(login != login.lower() for login in logins)
    assert all(u.created_at <= u.updated_at for u in users)
    assert [u.created_at for u in users[:50]] == sorted(u.created_at for u in users[:50])


@pytest.mark.unit
def test_ten_million_ids_cost_nothing_until_asked() -> None:
    huge = Dataset(size=10_000_000, seed=3)
    tail = huge.users_between(9_999_900, 10_000_100)
    assert 50 < len(tail) < 90 and tail[-1].id <= 10_000_000
    assert huge.by_login(tail[-1].login.upper()) == tail[-1]
    assert huge.users_after(10_000_000, 10) == []


@pytest.mark.unit
def test_update_renames_and_delete_removes(dataset: Dataset) -> None:
    first, second = dataset.users_between(1, 20)[:2]
    renamed = dataset.update(first.id, login="New-Name", followers=first.followers + 7)
    assert renamed.followers == first.followers + 7 and renamed.updated_at >= first.updated_at
    assert dataset.by_login("new-NAME") == renamed == dataset.user(first.id)
    assert dataset.by_login(first.login) is None
    with pytest.raises(ValueError, match="taken"):
        dataset.update(second.id, login="NEW-name")
    with pytest.raises(ValueError, match="login"):
        dataset.update(second.id, login="bad--login")
    dataset.delete(second.id)
    assert dataset.user(second.id) is None and dataset.by_login(second.login) is None
    assert second.id not in {u.id for u in dataset.users_between(1, 20)}
    with pytest.raises(KeyError):
        dataset.update(second.id, followers=1)


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


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.integration
def test_error_rate_one_answers_503_html_until_healed(
    server: StandinServer, admin: StandinAdmin, http: requests.Session
) -> None:
    state = admin.set_faults(error_rate=1)
    assert state["error_rate"] == 1
    for path in ("/user/1", "/users", "/users/whoever"):
        resp = http.get(server.url + path)
        assert resp.status_code == 503 and resp.headers["Content-Type"] == "text/html"
        assert resp.text.startswith("<html>") and "503 Service Unavailable" in resp.text
    assert admin.heal()["error_rate"] == 0
    assert http.get(f"{server.url}/user/1").status_code == 200


@pytest.mark.integration
def test_failing_ids_answer_502_for_users_and_pages_starting_in_them_until_healed(
    server: StandinServer, admin: StandinAdmin, dataset: Dataset, http: requests.Session
) -> None:
    victim = dataset.users_between(250, 300)[0]
    state = admin.set_faults(fail_ids=[(victim.id, victim.id + 2)])
    assert state["fail_ids"] == [[victim.id, victim.id + 2]]
    broken = (
        f"/user/{victim.id}",
        f"/users/{victim.login.upper()}",
        f"/users?since={victim.id - 1}&per_page=1",
        f"/users?since={victim.id}&per_page=100",
    )
    for path in broken:
        resp = http.get(server.url + path)
        assert resp.status_code == 502 and resp.headers["Content-Type"] == "text/html", path
    assert http.get(f"{server.url}/users?since={victim.id + 2}").status_code == 200
    # a page that only reaches into the range belongs to another crawl window: it still works
    assert http.get(f"{server.url}/users?since={victim.id - 50}&per_page=100").status_code == 200
    assert http.get(f"{server.url}/user/1").status_code == 200

    server.heal()  # in-process control shares the admin endpoints' state
    assert admin.stats()["fail_ids"] == []
    for path in broken:
        assert http.get(server.url + path).status_code == 200, path


@pytest.mark.integration
def test_latency_delays_api_answers(server: StandinServer, http: requests.Session) -> None:
    server.set_faults(latency_ms=150)
    started = time.perf_counter()
    assert http.get(f"{server.url}/user/1").status_code == 200
    assert time.perf_counter() - started >= 0.15
    assert server.stats()["latency_ms"] == 150


@pytest.mark.integration
def test_state_reports_the_peak_of_requests_answered_at_once(server: StandinServer) -> None:
    server.set_faults(latency_ms=200)
    start = threading.Barrier(5)

    def get(user_id: int) -> int:
        with requests.Session() as session:
            start.wait()
            return session.get(
                f"{server.url}/user/{user_id}", headers={"User-Agent": "t"}
            ).status_code

    threads = [threading.Thread(target=get, args=(i,)) for i in range(1, 6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert server.stats()["requests"]["peak_in_flight"] == 5
    assert server.reset_stats()["requests"]["peak_in_flight"] == 0


# -- admin -----------------------------------------------------------------------------------


@pytest.mark.integration
def test_admin_edits_are_what_the_api_answers(
    server: StandinServer, admin: StandinAdmin, dataset: Dataset, http: requests.Session
) -> None:
    person, gone = dataset.users_between(500, 600)[:2]
    edited = admin.update_user(person.id, followers=4242, login="Re-Named")
    assert edited == ground_truth(person) | {"followers": 4242, "login": "Re-Named"}
    body = http.get(f"{server.url}/users/re-named").json()
    assert (body["id"], body["login"], body["followers"]) == (person.id, "Re-Named", 4242)
    assert http.get(f"{server.url}/user/{person.id}").json() == body
    assert http.get(f"{server.url}/users/{person.login}").status_code == 404

    assert admin.delete_user(gone.id) == {"deleted": gone.id}
    assert http.get(f"{server.url}/user/{gone.id}").status_code == 404
    assert http.get(f"{server.url}/users/{gone.login}").status_code == 404
    listed = http.get(f"{server.url}/users", params={"since": 499, "per_page": 100}).json()
    assert gone.id not in [u["id"] for u in listed]
    assert {"id": person.id, "login": "Re-Named"}.items() <= next(
        u for u in listed if u["id"] == person.id
    ).items()

    rows = admin.users(500, 600)
    assert rows == [ground_truth(u) for u in dataset.users_between(500, 600)]
    assert gone.id not in [u["id"] for u in rows]
    # What Redis must hold, as strings: the same from the admin endpoint and from the dataset.
    truth = admin.truth(500, 600)
    assert truth == dataset.truth(500, 600) and gone.id not in truth
    assert (truth[person.id]["login"], truth[person.id]["followers"]) == ("Re-Named", "4242")

    for status, call in (
        (404, lambda: admin.delete_user(gone.id)),
        (404, lambda: admin.update_user(gone.id, followers=1)),
        (400, lambda: admin.update_user(1, login="re-named")),
        (400, lambda: admin.update_user(1, followers=-1)),
        (400, lambda: admin.set_faults(error_rate=2)),
        (400, lambda: admin.set_faults(nonsense=1)),
    ):
        with pytest.raises(StandinAdminError) as refused:
            call()
        assert refused.value.status == status, refused.value


@pytest.mark.integration
def test_state_counts_api_requests_by_status_and_route(
    server: StandinServer, admin: StandinAdmin, http: requests.Session
) -> None:
    http.get(f"{server.url}/users")
    etag = http.get(f"{server.url}/user/1").headers["ETag"]
    http.get(f"{server.url}/user/1", headers={"If-None-Match": etag})
    http.get(f"{server.url}/users/no-such-user")
    http.get(f"{server.url}/rate_limit")
    state = admin.stats()
    assert state["requests"] == {
        "total": 5,
        "by_status": {"200": 3, "304": 1, "404": 1},
        "by_route": {"list": 1, "user": 3, "rate_limit": 1},
        "peak_in_flight": 1,
    }
    assert (state["size"], state["seed"], state["rate_limit"]) == (SIZE, SEED, 1000)
    assert admin.reset_stats()["requests"]["total"] == 0
    assert server.stats()["requests"] == {
        "total": 0, "by_status": {}, "by_route": {}, "peak_in_flight": 0,
    }  # fmt: skip


# -- the command line ------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_the_command_line_serves_until_sigterm(tmp_path: Path) -> None:
    port_file = tmp_path / "standin.url"
    victim = Dataset(200, seed=5).users_between(20, 200)[0].id
    fail_ids = ("--fail-ids", f"{victim}-{victim + 1}", "--fail-ids", "300")
    with standin_command(port_file, "--size", "200", "--seed", "5", *fail_ids) as (process, url):
        assert process.stdout is not None
        assert process.stdout.readline() == f"GitHub stand-in serving 200 ids (seed 5) at {url}\n"
        state = requests.get(f"{url}/_standin/state").json()
        assert state["fail_ids"] == [[victim, victim + 1], [300, 300]]
        assert (state["size"], state["seed"]) == (200, 5)
        page = requests.get(f"{url}/users", params={"per_page": 5}).json()
        assert [u["id"] for u in page] == [u.id for u in Dataset(200, seed=5).users_after(0, 5)]
        assert requests.get(f"{url}/user/{victim}").status_code == 502
    assert not port_file.exists()
    assert os.listdir(tmp_path) == []

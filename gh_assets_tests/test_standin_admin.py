"""The stand-in steered by its admin endpoints, over real HTTP: faults (errors, failing IDs,
latency), users edited and deleted, the requests it counted."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from gh_assets_devtools.standin import Dataset, StandinAdmin, StandinAdminError, StandinServer
from gh_assets_devtools.standin.data import ground_truth

from .standin_fixtures import SEED, SIZE
from .standin_fixtures import admin as admin
from .standin_fixtures import dataset as dataset
from .standin_fixtures import http as http
from .standin_fixtures import server as server

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

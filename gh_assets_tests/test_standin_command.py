"""The stand-in's command line, run as a process of its own: it serves until SIGTERM, with failing
IDs, tokens and secondary limits taken from its flags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from gh_assets_devtools.standin import Dataset, StandinAdmin

from .standin_accounts import assert_secondary, auth
from .standin_command import standin_command
from .standin_fixtures import UA

pytestmark = pytest.mark.integration


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

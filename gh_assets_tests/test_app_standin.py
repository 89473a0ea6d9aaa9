"""A GitHub App end to end against the stand-in's App endpoints: installations listed, tokens
minted, used and renewed before they expire, and a wrong key refused in one line without secrets.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from gh_assets.github.app_auth import GitHubApp
from gh_assets.github.errors import CredentialRefusedError
from gh_assets_devtools.standin import Dataset, StandinServer

from .github_app import APP_ID, USER_AGENT, Keys, assert_no_secrets


@pytest.fixture
def session() -> Iterator[requests.Session]:
    """A plain client, to use the tokens the App mints."""
    with requests.Session() as session:
        session.headers["User-Agent"] = USER_AGENT
        yield session


# -- end to end, against the stand-in ----------------------------------------------------------

INSTALLATIONS = range(101, 251)  # 150: two pages of /app/installations
INSTALLATION_LIMIT = 1234  # tells an installation's budget from the stand-in's default one


@pytest.fixture
def standin_apps(keys: Keys) -> Iterator[StandinServer]:
    with StandinServer(
        Dataset(size=200, seed=7),
        apps={int(APP_ID): keys.public},
        installations={i: int(APP_ID) for i in INSTALLATIONS},
        installation_limit=INSTALLATION_LIMIT,
    ) as server:
        yield server


def users_page(session: requests.Session, url: str, token: str) -> requests.Response:
    return session.get(
        f"{url}/users?since=0", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


@pytest.mark.integration
def test_standin_lists_installations_and_mints_working_tokens(
    keys: Keys, session: requests.Session, standin_apps: StandinServer
) -> None:
    app = GitHubApp(APP_ID, keys.pkcs1, standin_apps.url)
    assert app.installation_ids() == list(INSTALLATIONS)
    first, second = app.installation_token(101), app.installation_token(250)
    assert first != second
    assert app.installation_token(101) == first  # cached: an hour to go
    for token in (first, second):
        page = users_page(session, standin_apps.url, token)
        assert page.status_code == 200 and len(page.json()) > 0
        assert page.headers["X-RateLimit-Limit"] == str(INSTALLATION_LIMIT)
    # Each installation is a rate-limit identity of its own, named as app.identity names it.
    report = standin_apps.accounts_report()
    assert {app.identity(101), app.identity(250)} <= set(report)


@pytest.mark.integration
@pytest.mark.slow
def test_standin_token_is_renewed_before_it_expires(
    keys: Keys, session: requests.Session, dataset: Dataset
) -> None:
    ttl = 3.0  # GitHub's expires_at is in whole seconds (rounded down): 2 to 3 s left at first
    with StandinServer(
        dataset,
        apps={int(APP_ID): keys.public},
        installations={7: int(APP_ID)},
        installation_token_ttl=ttl,
    ) as standin:
        app = GitHubApp(APP_ID, keys.pkcs1, standin.url, renew_before=1.0)
        first = app.installation_token(7)
        assert app.installation_token(7) == first
        assert users_page(session, standin.url, first).status_code == 200
        time.sleep(2.1)  # under a second left: renewed
        second = app.installation_token(7)
        assert second != first
        time.sleep(1.0)  # the first one has expired; the second has not
        assert users_page(session, standin.url, first).status_code == 401
        assert users_page(session, standin.url, second).status_code == 200
        assert app.installation_token(7) == second


@pytest.mark.integration
def test_standin_refuses_a_wrong_key_in_one_line_without_secrets(
    keys: Keys, standin_apps: StandinServer
) -> None:
    app = GitHubApp(APP_ID, keys.other, standin_apps.url)
    app._http._sleep = pytest.fail  # a 401 is not retried
    for call in (app.installation_ids, lambda: app.installation_token(101)):
        with pytest.raises(CredentialRefusedError) as refused:
            call()
        message = str(refused.value)
        assert refused.value.status == 401
        refusal = "-> 401: A JSON web token could not be decoded: GitHub refused the App's JWT"
        assert refusal in message
        assert "GITHUB_APP_ID" in message and "GITHUB_APP_PRIVATE_KEY" in message
        assert_no_secrets(message, app.jwt(), keys.other, keys.pkcs1)
    assert standin_apps.stats()["requests"]["by_status"] == {"401": 2}

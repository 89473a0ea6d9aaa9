"""Who the crawl sends as, when GitHub stops taking it (issue 19, items 5-7): an identity GitHub
blocks gets nothing sent for it, the account lookup and the preflight included; a token revoked
mid-crawl is named once and dropped while the others finish the pages; a GitHub App's faults are
one line from the preflight. All against the stand-in over real HTTP and a real Redis."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gh_assets.crawl import crawl_pages
from gh_assets.github import GitHubClient, RateLimitError
from gh_assets.github.credentials import digest
from gh_assets.github.governor import Governor, GovernorLimits
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore
from gh_assets_devtools.standin import Dataset, StandinServer
from gh_assets_devtools.standin.admin import StandinAdmin

from .commands import gh_assets
from .crawled import stored, truth

BLOCKED = 75  # EX_TEMPFAIL: try again later
LIMITS = GovernorLimits(minute=1.0, rest_points_per_minute=120, lease_seconds=5.0)
APP_ID, OTHER_APP_ID = 77, 78


def windows(count: int) -> list[PageWindow]:
    return [PageWindow.number(k, 100) for k in range(count)]


# --- 5: a block is honoured everywhere ----------------------------------------------------------


@pytest.mark.e2e
def test_a_blocked_identity_gets_nothing_sent_by_two_demos_in_a_row(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    token = "tok-carol-blocked"
    pages = ",".join(w.key for w in windows(3))
    with StandinServer(
        Dataset(size=300, seed=3), tokens={token: "carol"}, secondary_status=429
    ) as standin:
        standin.refuse_next("carol", retry_after=3600)
        env = {
            "GITHUB_API_URL": standin.url,
            "GITHUB_TOKEN": token,
            "REDIS_URL": redis_url,
            "GH_ASSETS_KEY_PREFIX": key_prefix,
        }
        runs = [gh_assets(["demo", "--pages", pages], tmp_path, **env) for _ in range(2)]
        report = standin.accounts_report()["carol"]
        sent = standin.stats()["requests"]["total"]
    (block,) = report["blocks"]
    during = block["arrivals"]  # requests that reached GitHub while it said blocked
    assert during == 0, f"{during} requests sent into the block by two runs"
    assert sent == 1  # the first run's preflight, answered 429 Retry-After: 3600
    assert block["end"] - block["start"] == pytest.approx(3600)  # never moved forward
    for run in runs:
        assert run.returncode == BLOCKED, run.stdout + run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        line = run.stderr.strip()
        assert line.startswith(
            f"gh-assets: GITHUB_TOKEN #1 ({digest(token)}): GitHub blocks it (secondary rate "
            "limit) until "
        )
        assert "(in 60 min); nothing is sent for it until then" in line
        assert "Crawling" not in run.stdout and token not in run.stdout + run.stderr


@pytest.mark.e2e
def test_pages_held_by_a_spent_budget_are_told_to_wait_as_the_sensor_will(
    redis_url: str, key_prefix: str, store: RedisStore, tmp_path: Path
) -> None:
    token = "tok-jo-spent"
    pages = ",".join(w.key for w in windows(3))
    with StandinServer(Dataset(size=300, seed=3), tokens={token: "jo"}, rate_limit=40) as standin:
        env = {
            "GITHUB_API_URL": standin.url,
            "GITHUB_TOKEN": token,
            "REDIS_URL": redis_url,
            "GH_ASSETS_KEY_PREFIX": key_prefix,
        }
        runs = []
        for _ in range(2):
            run = gh_assets(["demo", "--pages", pages], tmp_path, **env)
            runs.append((run, store.deferred_pages(), standin.stats()["requests"]["total"]))
    assert runs[1][2] == runs[0][2]  # the second run sent nothing: the budget is known spent
    for run, deferred, _ in runs:
        assert run.returncode == 1 and deferred, run.stdout + run.stderr
        until = f"{max(deferred.values()):%Y-%m-%dT%H:%M:%SZ}"
        assert (
            f"{len(deferred)} of them wait for GitHub's rate limit until {until}: under make dev, "
            "stale_pages_sensor runs them then by itself" in run.stdout
        )


@pytest.mark.integration
def test_a_page_run_sends_no_account_lookup_while_the_token_is_blocked(
    redis_url: str, key_prefix: str
) -> None:
    token = "tok-dave-blocked"
    governor = Governor(redis.Redis.from_url(redis_url), LIMITS, key_prefix)
    with StandinServer(Dataset(size=300, seed=3), tokens={token: "dave"}) as standin:
        standin.refuse_next("dave", retry_after=3600)
        for _ in range(3):  # three page runs, each a new client
            with GitHubClient(standin.url, token, governor=governor) as client:
                with pytest.raises(RateLimitError, match="secondary") as raised:
                    client.list_users(1, 100)
                assert (
                    raised.value.reset_at.timestamp()
                    > standin.accounts_report()["dave"]["blocks"][0]["start"] + 3500
                )
        (block,) = standin.accounts_report()["dave"]["blocks"]
        assert block["arrivals"] == 0
        assert standin.stats()["requests"]["by_route"] == {"authenticated_user": 1}


@pytest.mark.integration
def test_a_remembered_account_is_renewed_while_its_token_is_in_use(
    redis_url: str, key_prefix: str
) -> None:
    token = "tok-erin-in-use"
    connection = redis.Redis.from_url(redis_url)
    governor = Governor(connection, LIMITS, key_prefix)
    with StandinServer(Dataset(size=300, seed=3), tokens={token: "erin"}) as standin:
        with GitHubClient(standin.url, token, governor=governor) as client:
            client.list_users(1, 100)  # the account looked up once, and remembered
        identity = governor.identity_of(digest(token))
        assert identity is not None and identity.startswith("user:")
        governor.remember_identity(digest(token), identity, 60)  # nearly a day ago
        with GitHubClient(standin.url, token, governor=governor) as client:
            client.list_users(1, 100)  # a later page run, using the token
        key = governor.keys(f"credential:{digest(token)}")[0]  # where the account is kept
        assert connection.ttl(key) > 3600  # renewed by the use, not left to run out
        assert standin.stats()["requests"]["by_route"]["authenticated_user"] == 1


# --- 6: a token revoked mid-crawl ---------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [1, 6])
def test_a_token_revoked_mid_crawl_is_dropped_and_the_other_finishes_the_pages(
    concurrency: int,
    redis_url: str,
    key_prefix: str,
    store: RedisStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Tokens of this test alone: a revoked token stays dropped for the rest of the process.
    kept, revoked = f"tok-erin-{concurrency}", f"tok-frank-{concurrency}"
    pages = windows(6)
    # Paced per identity, with no slot reserved ahead, so the crawl sends with both (else the
    # budget that resets first is spent alone).
    paced = GovernorLimits(
        minute=1.0, rest_points_per_minute=100, lease_seconds=5.0, horizon_minutes=0.001
    )
    governor = Governor(redis.Redis.from_url(redis_url), paced, key_prefix)
    with StandinServer(
        Dataset(size=600, seed=5), tokens={kept: "erin", revoked: "frank"}
    ) as standin:
        tokens = f"{kept},{revoked}"
        with (
            caplog.at_level(logging.WARNING, logger="gh_assets"),
            GitHubClient(
                standin.url, tokens, governor=governor, max_concurrency=concurrency
            ) as client,
        ):
            crawl = crawl_pages(client, store, pages)
            reports = [next(crawl)]
            used = standin.accounts_report()["frank"]["requests"]["rest"]
            StandinAdmin(standin.url).revoke_tokens([revoked])
            reports += list(crawl)
        by_status = standin.stats()["requests"]["by_status"]
        by_route = standin.stats()["requests"]["by_route"]
        expected = truth(standin.dataset, *pages)
    assert used > 1  # the token worked (beyond its account lookup) before it was revoked
    assert [r.page for r in reports] == [w.key for w in pages]
    assert stored(store, *pages) == expected
    refused = by_status.get("401", 0)
    assert 1 <= refused <= concurrency  # once, or once per request in flight when it was found
    # Answers already paid for are kept: every user and list asked once, plus the refused ones.
    assert by_route["user"] + by_route["list"] == len(expected) + len(pages) + refused
    named = [r.getMessage() for r in caplog.records if digest(revoked) in r.getMessage()]
    assert len(named) == 1
    assert named[0].startswith(f"GITHUB_TOKEN #2 ({digest(revoked)}): GitHub refused it (401")
    assert not any(kept in r.getMessage() or revoked in r.getMessage() for r in caplog.records)


@pytest.mark.e2e
def test_a_token_revoked_between_demos_is_sent_once_and_the_other_writes_the_pages(
    redis_url: str, key_prefix: str, store: RedisStore, tmp_path: Path
) -> None:
    tokens = {"tok-hal-kept": "hal", "tok-ida-revoked": "ida"}
    pages = windows(4)
    with StandinServer(Dataset(size=400, seed=5), tokens=tokens) as standin:
        env = {
            "GITHUB_API_URL": standin.url,
            "GITHUB_TOKEN": ",".join(tokens),
            "REDIS_URL": redis_url,
            "GH_ASSETS_KEY_PREFIX": key_prefix,
            "GH_ASSETS_RATE_MINUTE": "5",  # paced enough that both tokens are sent, briefly
        }
        first = gh_assets(["demo", "--pages", pages[0].key], tmp_path, **env)
        used = standin.accounts_report()["ida"]["requests"]["rest"]
        standin.accounts.revoke(["tok-ida-revoked"])
        rest = gh_assets(["demo", "--pages", ",".join(w.key for w in pages[1:])], tmp_path, **env)
        refused = standin.stats()["requests"]["by_status"].get("401", 0)
        expected = standin.dataset.truth(1, 400)
    assert first.returncode == 0 and used > 1, first.stdout + first.stderr
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert refused == 1  # one try, then never again in that process
    assert stored(store, *pages) == expected
    output = rest.stdout + rest.stderr
    assert output.count(f"GITHUB_TOKEN #2 ({digest('tok-ida-revoked')}): GitHub refused it") == 1
    assert not any(token in output for token in tokens)


@pytest.mark.integration
def test_the_last_token_revoked_fails_the_page_naming_it(
    redis_url: str, key_prefix: str, store: RedisStore
) -> None:
    token = "tok-gina-last"
    governor = Governor(redis.Redis.from_url(redis_url), LIMITS, key_prefix)
    with StandinServer(Dataset(size=300, seed=5), tokens={token: "gina"}) as standin:
        with GitHubClient(standin.url, token, governor=governor) as client:
            list(crawl_pages(client, store, windows(1)))
            standin.accounts.revoke([token])
            with pytest.raises(Exception, match="401") as raised:
                list(crawl_pages(client, store, windows(2)[1:]))
        assert token not in str(raised.value)
        assert standin.stats()["requests"]["by_status"]["401"] == 1


# --- 7: a GitHub App's faults, found by the preflight -------------------------------------------


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def app_keys() -> tuple[str, str, str]:
    """The App's private key, its public key, and another App's private key (PEM)."""
    key, other = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in "ab")
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _pem(key), public.decode(), _pem(other)


@pytest.fixture
def app_standin(app_keys: tuple[str, str, str]) -> Iterator[StandinServer]:
    with StandinServer(
        Dataset(size=300, seed=3),
        apps={APP_ID: app_keys[1]},
        installations={11: APP_ID, 12: APP_ID},
    ) as standin:
        yield standin


@pytest.fixture
def app_env(app_standin: StandinServer, redis_url: str, key_prefix: str) -> dict[str, object]:
    """The settings of a demo against the App's stand-in, but the App's own."""
    standin = app_standin
    return {
        "GITHUB_API_URL": standin.url,
        "REDIS_URL": redis_url,
        "GH_ASSETS_KEY_PREFIX": key_prefix,
    }


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("fault", "line"),
    [
        ("not a PEM", "GITHUB_APP_PRIVATE_KEY: not a PEM private key nor a readable file"),
        ("no such path", "GITHUB_APP_PRIVATE_KEY: not a PEM private key nor a readable file"),
        ("another App's key", "GITHUB_APP_ID/GITHUB_APP_PRIVATE_KEY: GitHub refused it (401 "),
        ("an unknown App id", "GITHUB_APP_ID/GITHUB_APP_PRIVATE_KEY: GitHub refused it (401 "),
        ("an installation not the App's", "GITHUB_APP_INSTALLATION_IDS: 99 not among the "),
    ],
)
def test_a_github_app_fault_is_one_line_from_the_preflight(
    fault: str,
    line: str,
    app_keys: tuple[str, str, str],
    app_standin: StandinServer,
    app_env: dict[str, object],
    tmp_path: Path,
) -> None:
    private, _, other = app_keys
    env = dict(app_env)
    env["GITHUB_APP_ID"] = OTHER_APP_ID if fault == "an unknown App id" else APP_ID
    env["GITHUB_APP_PRIVATE_KEY"] = {
        "not a PEM": "MIIEpAIBAAKCAQEAnotapemkey",
        "no such path": str(tmp_path / "missing.pem"),
        "another App's key": other,
    }.get(fault, private)
    if fault == "an installation not the App's":
        env["GITHUB_APP_INSTALLATION_IDS"] = "11,99"
    result = gh_assets(["demo", "--pages", windows(1)[0].key], tmp_path, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    (message,) = result.stderr.strip().splitlines()
    assert message.startswith(f"gh-assets: {line}")
    assert "Crawling" not in result.stdout
    output = result.stdout + result.stderr
    assert "PRIVATE KEY" not in output and private.splitlines()[1] not in output
    assert other.splitlines()[1] not in output and "MIIEpAIBAAKCAQEAnotapemkey" not in output
    assert app_standin.stats()["requests"]["by_route"].get("user", 0) == 0  # no page was tried


@pytest.fixture
def demo_as_app(
    app_keys: tuple[str, str, str], app_env: dict[str, object], tmp_path: Path
) -> Callable[[], CompletedProcess]:
    """Runs ``gh-assets demo`` on one page as the App (its own key) against the stand-in."""
    env = app_env | {"GITHUB_APP_ID": APP_ID, "GITHUB_APP_PRIVATE_KEY": app_keys[0]}
    return lambda: gh_assets(["demo", "--pages", windows(1)[0].key], tmp_path, **env)


@pytest.mark.e2e
def test_the_banner_names_the_app_and_its_installations(
    demo_as_app: Callable[[], CompletedProcess], app_standin: StandinServer
) -> None:
    result = demo_as_app()
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f"GitHub: {app_standin.url}, as GitHub App 77 (GITHUB_APP_ID) on its installations\n"
        in (result.stdout)
    )
    assert "GitHub App 77: installations 11, 12\n" in result.stdout
    assert "anonymously" not in result.stdout
    report = app_standin.accounts_report()
    assert set(report) == {"installation:11", "installation:12", "ip:127.0.0.1"}
    assert report["ip:127.0.0.1"]["requests"]["rest"] == 1  # the preflight's GET /rate_limit
    assert all(report[f"installation:{i}"]["requests"]["rest"] > 0 for i in (11, 12))


@pytest.mark.e2e
def test_a_blocked_installation_of_the_app_is_one_line_from_the_preflight(
    demo_as_app: Callable[[], CompletedProcess],
    app_standin: StandinServer,
    redis_url: str,
    key_prefix: str,
) -> None:
    governor = Governor(redis.Redis.from_url(redis_url), LIMITS, key_prefix)
    governor.block("installation:11", 3600)  # as a page run records GitHub's 429s
    governor.block("installation:12", 1800)
    result = demo_as_app()
    assert result.returncode == BLOCKED, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        f"gh-assets: GitHub App {APP_ID} installation 12: GitHub blocks it (secondary rate "
        "limit) until "
    )  # the one free first
    assert "(in 30 min); nothing is sent for it until then" in line
    assert "Crawling" not in result.stdout
    report = app_standin.accounts_report()
    assert not {"installation:11", "installation:12"} & set(report)  # nothing sent as them

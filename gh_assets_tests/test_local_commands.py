"""The local commands: one shared Redis server, settings and servers checked before anything
starts, and signals that stop the whole command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis

from gh_assets_devtools import services
from gh_assets_devtools.deployment import clean_environment
from gh_assets_devtools.shared_redis import shared_redis

from .commands import GH_ASSETS, gh_assets
from .conftest import REPO

pytestmark = pytest.mark.e2e

# Built at run time so no token-shaped literal sits in the repository for scanners to flag.
FAKE_TOKEN = "ghp" + "_NotARealTokenButSecretAnyway123456"


def quiet(*_: object) -> None:
    pass


def test_the_shared_server_lives_while_any_command_uses_it(tmp_path: Path) -> None:
    with shared_redis(tmp_path, quiet) as first:
        redis.Redis.from_url(first).set("kept", "1")
        with shared_redis(tmp_path, quiet) as second:
            assert second == first
        assert services.redis_answers(first)  # the second leaving does not stop it
    assert not services.redis_answers(first)  # the last one leaving does
    assert not (tmp_path / "url").exists()
    with shared_redis(tmp_path, quiet) as again:  # persisted: the next start has the data
        assert redis.Redis.from_url(again).get("kept") == b"1"


def test_commands_starting_at_once_share_one_server(tmp_path: Path) -> None:
    urls: list[str] = []
    inside = threading.Barrier(2)
    start = threading.Barrier(2)

    def user() -> None:
        start.wait()
        with shared_redis(tmp_path, quiet) as url:
            urls.append(url)
            inside.wait(timeout=30)  # both hold it at the same time

    threads = [threading.Thread(target=user) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(urls) == 2 and urls[0] == urls[1]
    assert not services.redis_answers(urls[0])


def test_a_killed_command_gives_its_lease_back(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path\n"
         "from gh_assets_devtools.shared_redis import shared_redis\n"
         "with shared_redis(Path(sys.argv[1]), lambda _: None) as url:\n"
         "    print(url, flush=True); time.sleep(600)\n",
         str(tmp_path)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        url = holder.stdout.readline().split()[-1]
        with shared_redis(tmp_path, quiet) as shared:
            assert shared == url
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait(timeout=10)
            assert services.redis_answers(url)
        assert not services.redis_answers(url)  # the dead holder no longer counts
    finally:
        services.stop_process_group(holder)


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"GH_ASSETS_PAGE_SIZE": "abc"}, "GH_ASSETS_PAGE_SIZE='abc': expected a whole number >= 1"),
        ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "REDIS_URL='redis://127.0.0.1:1/0': nothing "),
        ({"REDIS_URL": "http://x"}, "REDIS_URL='http://x': expected a redis:// or rediss:// or "),
        ({"GITHUB_API_URL": "not-a-url"}, "GITHUB_API_URL='not-a-url': expected a https:// or "),
        ({"GITHUB_API_URL": "http://127.0.0.1:1"}, "GITHUB_API_URL='http://127.0.0.1:1': "),
        ({"GH_ASSETS_DETAIL_MODE": "soap"}, "GH_ASSETS_DETAIL_MODE='soap': expected one of "),
        (
            {"GITHUB_API_URL": "http://me:pw@127.0.0.1:1", "GITHUB_TOKEN": FAKE_TOKEN},
            "GITHUB_API_URL='http://127.0.0.1:1' carries a user and password and GITHUB_TOKEN",
        ),
    ],
)
def test_a_configuration_error_is_one_line_before_anything_starts(
    tmp_path: Path, env: dict[str, str], line: str
) -> None:
    result = gh_assets(["demo"], tmp_path, **env)
    assert result.returncode == 2
    (message,) = result.stderr.strip().splitlines()[-1:]
    assert message.startswith(f"gh-assets: {line}")
    assert "Traceback" not in result.stdout + result.stderr
    assert "Crawling" not in result.stdout  # no page was tried
    assert ":pw@" not in result.stdout + result.stderr and FAKE_TOKEN not in result.stderr


def test_credentials_in_the_api_url_are_never_printed(tmp_path: Path, standin) -> None:
    url = standin.url.replace("http://", "http://me:s3cret@")
    result = gh_assets(["demo", "--pages", "0000000001-0000000100"], tmp_path, GITHUB_API_URL=url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"GitHub: {standin.url}, with the user and password in GITHUB_API_URL" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr


def test_one_signal_stops_the_whole_demo_and_its_servers(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [GH_ASSETS, "demo"],
        cwd=REPO,
        env=clean_environment(
            GH_ASSETS_DATA_DIR=tmp_path, GH_ASSETS_PAGES=40, GH_ASSETS_STANDIN_SIZE=4000,
            GH_ASSETS_STANDIN_ARGS="--latency-ms 50",
        ),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("[1/40]"):
                break
        demo.send_signal(signal.SIGTERM)
        rest, _ = demo.communicate(timeout=60)
    finally:
        services.stop_process_group(demo)
    output = "".join(lines) + rest
    assert demo.returncode == 130, output
    assert "Stopped by a signal" in output
    assert "[3/40]" not in output  # the loop did not go on to further pages
    urls = [w for line in lines for w in line.split() if w.startswith(("redis://", "http://"))]
    assert len(urls) == 2 and not any(_answers(url) for url in urls)  # Redis and the stand-in


def _answers(url: str) -> bool:
    if url.startswith("redis://"):
        return services.redis_answers(url)
    import requests

    try:
        requests.get(url + "/users", timeout=2)
    except requests.ConnectionError:
        return False
    return True


def test_two_demos_at_once_share_the_server_and_both_succeed(tmp_path: Path) -> None:
    """Started together on a fresh data folder; the shorter one ends while the other crawls."""

    def start(pages: int) -> subprocess.Popen:
        env = clean_environment(
            GH_ASSETS_DATA_DIR=tmp_path, GH_ASSETS_PAGES=pages,
            GH_ASSETS_STANDIN_ARGS="--latency-ms 20",
        )  # fmt: skip
        return subprocess.Popen(
            [GH_ASSETS, "demo"], cwd=REPO, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip

    runs = [start(1), start(8)]
    try:
        outputs = [run.communicate(timeout=300)[0] for run in runs]
    finally:
        for run in runs:
            services.stop_process_group(run)
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert sum("started the project's server" in out for out in outputs) == 1
    assert sum("sharing the project's server" in out for out in outputs) == 1
    assert not (tmp_path / "redis" / "url").exists()  # the last one out stopped it


def test_ports_for_local_servers_are_never_ones_an_outgoing_connection_can_take() -> None:
    """An ephemeral port may be taken by any connection before the server binds it (CI saw
    dagster-webserver exit 3 so); every port handed out lies below the kernel's range."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {services.free_port() for _ in range(50)}
    assert max(ports) < low
    assert len(ports) > 40  # spread over the range, not one port over and over


def test_a_server_that_exits_while_starting_is_named_with_its_last_log_line(
    tmp_path: Path,
) -> None:
    command = [sys.executable, "-c", "print('starting'); print('[Errno 98] in use'); exit(3)"]
    with (
        pytest.raises(services.ServiceError) as failure,
        services.running(command, lambda: False, tmp_path / "s.log", timeout=30),
    ):
        pass
    assert "exited with 3 ([Errno 98] in use)" in str(failure.value)

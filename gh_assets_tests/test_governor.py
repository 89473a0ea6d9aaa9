"""The shared rate budget in a real Redis: pacing, leases, primary budgets, blocks, choice."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from gh_assets.github.governor import RESET_MARGIN, BudgetWaitTooLong, Governor, GovernorLimits

from .pacing import most_in_window

pytestmark = pytest.mark.integration

MINUTE = 1.0  # GitHub's minute, shortened
TRIES = 50


@pytest.fixture
def connection(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def governor(connection: redis.Redis, key_prefix: str, **limits: float) -> Governor:
    options = {"minute": MINUTE, "rest_points_per_minute": 0, "lease_seconds": 5.0} | limits
    return Governor(connection, GovernorLimits(**options), key_prefix)


@pytest.fixture
def gov(connection: redis.Redis, key_prefix: str) -> Governor:
    """The governor most tests start from: the default limits but a shortened minute."""
    return governor(connection, key_prefix)


def headers(limit: int, remaining: int, reset: float, resource: str = "core") -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(int(reset)),
        "X-RateLimit-Resource": resource,
    }


@pytest.mark.slow
def test_pacing_holds_every_rolling_minute_to_the_rate_across_threads(
    connection: redis.Redis, key_prefix: str
) -> None:
    rate = 20
    gov = governor(connection, key_prefix, rest_points_per_minute=rate)
    sent: list[float] = []
    lock = threading.Lock()

    def send(count: int) -> None:
        own = governor(connection, key_prefix, rest_points_per_minute=rate)  # another process
        for _ in range(count):
            grant = own.acquire(["user:1"], "core")
            with lock:
                sent.append(grant.slot)
            own.release(grant, None, charged=True)

    started = time.monotonic()
    threads = [threading.Thread(target=send, args=(20,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert len(sent) == 60
    assert most_in_window(sent, MINUTE) == rate  # by Redis's clock; the network adds jitter
    assert elapsed >= (60 - 1) * MINUTE / rate * 0.95  # no burst beyond the rate
    assert elapsed <= 60 * MINUTE / rate * 1.5  # and the rate is kept up
    assert gov.state("user:1")["core:reserved"] == 0


def test_a_lease_never_released_frees_its_slot_when_it_expires(
    connection: redis.Redis, key_prefix: str
) -> None:
    gov = governor(connection, key_prefix, max_in_flight=2, lease_seconds=0.6)
    held = [gov.acquire(["user:1"], "core") for _ in range(2)]  # a holder killed: never released
    started = time.monotonic()
    grant = gov.acquire(["user:1"], "core")
    waited = time.monotonic() - started
    assert 0.4 <= waited <= 2.0 and grant.lease not in {g.lease for g in held}
    assert grant.waited == pytest.approx(waited, abs=0.05)


def test_the_primary_budget_is_reserved_and_corrected_from_headers(gov: Governor) -> None:
    reset = time.time() + 100
    gov.observe("user:1", headers(5000, 2, reset))
    first, second = gov.acquire(["user:1"], "core"), gov.acquire(["user:1"], "core")
    with pytest.raises(BudgetWaitTooLong) as held:  # two in flight hold the last two points
        gov.acquire(["user:1"], "core", max_wait=10)
    assert held.value.reason == "primary" and not held.value.secondary
    assert 95 + RESET_MARGIN <= held.value.seconds <= 101 + RESET_MARGIN
    gov.release(first, headers(5000, 2, reset), charged=False)  # a 304: not counted
    third = gov.acquire(["user:1"], "core")
    gov.release(second, headers(5000, 1, reset), charged=True)
    gov.release(third, headers(5000, 0, reset), charged=True)
    state = gov.state("user:1")
    assert (state["core:remaining"], state["core:reserved"]) == (0, 0)
    assert gov.state("user:1")["core:limit"] == 5000


def test_answers_overtaking_each_other_keep_the_lowest_count(gov: Governor) -> None:
    reset = time.time() + 100
    gov.observe("user:1", headers(5000, 10, reset))
    gov.observe("user:1", headers(5000, 12, reset))  # an older answer, late
    assert gov.state("user:1")["core:remaining"] == 10
    gov.observe("user:1", headers(5000, 4999, reset + 3600))  # the next window
    assert gov.state("user:1")["core:remaining"] == 4999


@pytest.mark.slow
def test_a_passed_reset_refills_the_budget(connection: redis.Redis, key_prefix: str) -> None:
    gov = governor(connection, key_prefix, reset_margin=1.0)
    gov.observe("user:1", headers(60, 0, int(time.time()) + 2))  # GitHub's resets are whole
    with pytest.raises(BudgetWaitTooLong):
        gov.acquire(["user:1"], "core", max_wait=0)
    grant = gov.acquire(["user:1"], "core", max_wait=4)
    assert grant.waited >= 1.9  # the reset and the margin for GitHub's clock
    assert gov.state("user:1")["core:remaining"] == 60


def test_the_budget_that_resets_first_is_spent_first_and_a_preference_wins(gov: Governor) -> None:
    now = time.time()
    gov.observe("user:1", headers(5000, 4000, now + 3000))
    gov.observe("user:2", headers(5000, 4000, now + 600))
    assert gov.acquire(["user:1", "user:2"], "core").identity == "user:2"
    assert gov.acquire(["user:1", "user:2"], "core", prefer="user:1").identity == "user:1"
    gov.observe("user:2", headers(5000, 0, now + 600))
    assert gov.acquire(["user:1", "user:2"], "core", prefer="user:2").identity == "user:1"


def test_rest_and_graphql_are_separate_budgets(gov: Governor) -> None:
    gov.observe("user:1", headers(5000, 0, time.time() + 600))
    with pytest.raises(BudgetWaitTooLong):
        gov.acquire(["user:1"], "core", max_wait=0)
    gov.observe("user:1", headers(5000, 8, time.time() + 600, "graphql"))
    assert gov.acquire(["user:1"], "graphql", cost=4).identity == "user:1"
    assert gov.state("user:1")["graphql:reserved"] == 4


@pytest.mark.slow
def test_a_block_stops_every_process_doubles_and_lowers_the_rate_after(
    connection: redis.Redis, key_prefix: str
) -> None:
    gov = governor(connection, key_prefix, rest_points_per_minute=600)
    other = governor(connection, key_prefix, rest_points_per_minute=600)
    first = gov.block("user:1", None)
    assert MINUTE <= first <= MINUTE * 1.25
    with pytest.raises(BudgetWaitTooLong) as held:
        other.acquire(["user:1"], "core", max_wait=0.1)
    assert held.value.reason == "secondary" and held.value.secondary
    second = other.block("user:1", None)
    assert 2 * MINUTE <= second <= 2.5 * MINUTE + 0.01  # doubling, from the block's end
    assert other.block("user:1", 0.5) == pytest.approx(second, abs=0.05)  # never shortened
    time.sleep(second)
    for _ in range(6):
        grant = other.acquire(["user:1"], "core")
        other.release(grant, None, charged=True)
    slots = list(other.slots)[-6:]  # by Redis's clock: a busy client's wake-ups do not count
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) >= 2 * MINUTE / 600 * 0.99  # halved while lowered: 3.3 ms, not 1.7 ms


def test_retry_after_is_honoured_exactly(gov: Governor) -> None:
    assert gov.block("user:1", 0.7) == pytest.approx(0.7, abs=0.02)
    started = time.monotonic()
    gov.acquire(["user:1"], "core")
    assert 0.6 <= time.monotonic() - started <= 1.5


@pytest.mark.slow
def test_a_grant_waiting_for_its_slot_sends_nothing_once_blocked(
    connection: redis.Redis, key_prefix: str
) -> None:
    gov = governor(connection, key_prefix, rest_points_per_minute=2, horizon_minutes=1.0)
    gov.acquire(["user:1"], "core")  # the next slot is half a minute away
    blocker = threading.Timer(0.1, gov.block, args=("user:1", 1.0))
    blocker.start()
    started = time.monotonic()
    gov.acquire(["user:1"], "core")
    blocker.join()
    assert time.monotonic() - started >= 1.0  # not at its slot (0.5 s) but after the block


def test_an_identity_remembered_for_a_credential(
    gov: Governor, connection: redis.Redis, key_prefix: str
) -> None:
    assert gov.identity_of("sha256:0123456789ab") is None
    gov.remember_identity("sha256:0123456789ab", "user:42", 60)
    assert gov.identity_of("sha256:0123456789ab") == "user:42"
    keys = {k.decode() for k in connection.scan_iter(match=f"{key_prefix}*")}
    assert keys and all(k.startswith(key_prefix + "{governor}:") for k in keys)


def test_refusals_of_requests_in_flight_when_a_block_began_do_not_double_it(gov: Governor) -> None:
    sent = [gov.acquire(["user:1"], "core").slot for _ in range(5)]  # five in flight
    gov.block("user:1", None, sent_at=sent[0])
    until = gov.state("user:1")["block_until"]  # compared as stored: no clock in between
    for slot in sent[1:]:  # their refusals arrive one after the other
        gov.block("user:1", None, sent_at=slot)
        assert gov.state("user:1")["block_until"] == until
    assert gov.block("user:1", 3.0, sent_at=sent[0]) == pytest.approx(3.0, abs=0.05)
    assert gov.state("user:1")["block_level"] == 1


# Issue 19: the budget's stored state when answers or Redis misbehave.


def redis_now(connection: redis.Redis) -> float:
    seconds, micros = connection.time()
    return seconds + micros / 1e6


def grants(gov: Governor, answer: dict[str, str], tries: int = TRIES) -> int:
    """How many of ``tries`` acquires that may not wait are granted, each answered ``answer``."""
    granted = 0
    for _ in range(tries):
        try:
            grant = gov.acquire(["user:1"], "core", max_wait=0)
        except BudgetWaitTooLong:
            continue
        granted += 1
        gov.release(grant, answer, charged=True)
    return granted


def test_an_answer_without_rate_limit_headers_changes_nothing_it_does_not_know(
    gov: Governor,
) -> None:
    reset = time.time() + 600
    gov.observe("user:1", headers(5000, 2, reset))
    first = gov.acquire(["user:1"], "core")
    gov.release(first, headers(5000, 1, reset), charged=True)
    second = gov.acquire(["user:1"], "core")
    gov.release(second, {"Content-Type": "text/html"}, charged=True)  # a proxy's answer
    assert grants(gov, headers(5000, 0, reset), tries=20) == 0
    state = gov.state("user:1")
    assert (state["core:limit"], state["core:remaining"]) == (5000, 0)


def test_a_limit_switched_off_by_an_older_release_is_restored_by_the_next_answer(
    gov: Governor, connection: redis.Redis
) -> None:
    reset = int(time.time()) + 600
    connection.hset(gov.keys("user:1")[0], mapping={"core:limit": -1, "core:reset": reset})
    gov.observe("user:1", headers(5000, 0, reset))  # the same window, headers again
    assert grants(gov, headers(5000, 0, reset), tries=20) == 0
    gov.exhausted("user:1", "core", datetime.fromtimestamp(reset, UTC))
    assert gov.state("user:1")["core:limit"] == 5000


def test_a_reset_past_by_redis_clock_is_held_a_margin_and_never_refilled_again(
    gov: Governor, connection: redis.Redis
) -> None:
    behind = redis_now(connection) - 1  # GitHub's clock a second behind Redis's
    gov.observe("user:1", headers(60, 0, behind))
    assert grants(gov, headers(60, 0, behind)) == 0
    with pytest.raises(BudgetWaitTooLong) as held:
        gov.acquire(["user:1"], "core", max_wait=0)
    assert held.value.reason == "primary"
    assert 0 < held.value.seconds <= gov.limits.reset_margin  # held until reset + margin


@pytest.mark.slow
def test_a_reset_that_stays_past_gets_one_probe_per_refill_however_many_threads_wait(
    connection: redis.Redis, key_prefix: str
) -> None:
    gov = governor(connection, key_prefix, reset_margin=0.3)
    behind = redis_now(connection) - 1  # GitHub's reset stays here: its clock far behind
    gov.observe("user:1", headers(60, 0, behind))
    first = gov.acquire(["user:1"], "core")  # the window refilled by Redis's clock, in full
    gov.release(first, headers(60, 0, behind), charged=True)  # GitHub: still that window
    lock = threading.Lock()
    refills: list[float] = []  # the refill (its R:ended) that gave each grant
    in_flight, most_in_flight = 0, 0

    def send() -> None:
        nonlocal in_flight, most_in_flight
        while True:
            grant = gov.acquire(["user:1"], "core", max_wait=30)
            with lock:
                if len(refills) >= 12:
                    gov.release(grant, None, charged=False)
                    return
                refills.append(gov.state("user:1")["core:ended"])
                in_flight += 1
                most_in_flight = max(most_in_flight, in_flight)
            time.sleep(0.05)  # the request's round trip
            with lock:
                in_flight -= 1
            gov.release(grant, headers(60, 0, behind), charged=True)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(refills) == 12
    assert len(set(refills)) == 12  # each refill one probe, not one grant per waiting thread
    assert most_in_flight == 1
    state = gov.state("user:1")
    # The last refill's probe was given back unsent: one point, not the limit.
    assert (state["core:limit"], state["core:remaining"], state["core:probe"]) == (60, 1, 1)
    gov.observe("user:1", headers(60, 60, behind + 3600))  # a later window: probing ends
    assert "core:probe" not in gov.state("user:1")
    assert grants(gov, headers(60, 59, behind + 3600), tries=5) == 5


def test_reservations_come_back_to_the_live_leases_when_the_leases_set_is_lost(
    connection: redis.Redis, key_prefix: str
) -> None:
    gov = governor(connection, key_prefix, max_in_flight=500)
    reset = time.time() + 600
    gov.observe("user:1", headers(100, 100, reset))
    for _ in range(50):
        gov.acquire(["user:1"], "core")  # 50 in flight, their holders lost with the set
    connection.delete(gov.keys("user:1")[1])
    assert gov.state("user:1")["core:reserved"] == 0
    gov.observe("user:1", headers(100, 100, reset + 3600))  # the next window, full
    assert _holding(gov, 200) == 100  # not 50: nothing reserved for leases that are gone
    assert gov.state("user:1")["core:reserved"] == 100


def _holding(gov: Governor, tries: int) -> int:
    """Acquires granted, and kept in flight, until the budget holds them back."""
    for taken in range(tries):
        try:
            gov.acquire(["user:1"], "core", max_wait=0)
        except BudgetWaitTooLong:
            return taken
    return tries


@pytest.mark.slow
def test_lost_budget_keys_start_cautiously_past_the_slots_already_granted(
    connection: redis.Redis, key_prefix: str
) -> None:
    rate = 40
    gov = governor(connection, key_prefix, rest_points_per_minute=rate, horizon_minutes=0.25)
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            grant = gov.acquire(["user:1"], "core")
            gov.release(grant, None, charged=True)

    threads = [threading.Thread(target=send) for _ in range(12)]  # more than the horizon holds
    for thread in threads:
        thread.start()
    try:
        time.sleep(2.5 * MINUTE)
        connection.delete(*gov.keys("user:1"))  # FLUSHDB, or a restart without persistence
        time.sleep(1.5 * MINUTE)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    most = most_in_window(list(gov.slots), MINUTE)  # by Redis's clock
    assert most <= rate, f"{most} grants in one minute of {rate}"

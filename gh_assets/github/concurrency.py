"""How many requests a client has in flight, which waiting request goes next, and its threads."""

import contextvars
import heapq
import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")

# One client's own bound (its threads). What GitHub allows per account, across every process and
# host, is kept by the shared budget (governor.py, GovernorLimits.max_in_flight).
DEFAULT_MAX_CONCURRENCY = 32

_RANK: contextvars.ContextVar[int] = contextvars.ContextVar("gh_assets_request_rank", default=0)


@contextmanager
def request_rank(rank: int) -> Iterator[None]:
    """Requests sent in this context take a free slot before those of a higher rank: earlier
    pages of ``crawl_pages`` finish first instead of all pages in flight advancing in lockstep."""
    token = _RANK.set(rank)
    try:
        yield
    finally:
        _RANK.reset(token)


class _Slots:
    """At most ``size`` holders at once, like a ``BoundedSemaphore``, but a freed slot goes to the
    waiter of lowest ``request_rank``, then the longest waiting: with a semaphore the releasing
    thread takes it back for its next task, so every page keeps its share and none finishes early.
    """

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self._size = self._free = size
        self._waiting: list[tuple[int, int, threading.Lock]] = []  # heap: rank, arrival, gate
        self._arrival = itertools.count()

    def __enter__(self) -> None:
        with self._lock:
            if self._free:  # a free slot means nobody waits: release() hands slots to waiters
                self._free -= 1
                return
            gate = threading.Lock()
            gate.acquire()
            heapq.heappush(self._waiting, (_RANK.get(), next(self._arrival), gate))
        gate.acquire()  # released by __exit__ of a holder: the slot is handed over

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            if self._waiting:
                heapq.heappop(self._waiting)[2].release()
            elif self._free < self._size:
                self._free += 1
            else:
                raise ValueError("a slot was released more often than taken")


@contextmanager
def _worker_pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    """Threads for one call's requests; an error out of the block cancels what has not started."""
    with ThreadPoolExecutor(workers, thread_name_prefix="github") as pool:
        try:
            yield pool
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _submit(
    pool: ThreadPoolExecutor, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> Future[T]:
    """``pool.submit`` in a copy of the caller's context (a context cannot run in two threads)."""
    return pool.submit(contextvars.copy_context().run, fn, *args, **kwargs)

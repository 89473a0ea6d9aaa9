"""``Connection``: the redis-py client of a store, made on first use, on a single Redis or a Redis
Cluster alike, with the store's scripts registered on it.

``from_url`` finds out on first use whether the URL names a node of a cluster (``INFO cluster``)
and then uses redis-py's cluster client: nothing else to configure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib import resources
from typing import Any, Self
from urllib.parse import urlsplit

import redis
from redis.cluster import LoadBalancingStrategy, RedisCluster

from gh_assets.github.urls import safe_url
from gh_assets.storage.keys import KeyNames
from gh_assets.storage.schema import BLOCK, KEY_PREFIX


def _script(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text()


WRITE_PAGE = _script("write_page.lua")
LOGINS = _script("logins.lua")
PAGES_USERS = _script("pages_users.lua")
READ_AGGREGATES = _script("read_aggregates.lua")
_CLIENT_DEFAULTS = {"socket_timeout": 60, "socket_connect_timeout": 10, "health_check_interval": 30}


class Connection(KeyNames):
    """A store's client (``client``), connected on first use, and where its data lives for
    messages that must not show a password (``_url``)."""

    def __init__(
        self,
        client: redis.Redis | RedisCluster | None = None,
        prefix: str = KEY_PREFIX,
        *,
        block: int = BLOCK,
        connect: Callable[[], redis.Redis | RedisCluster] | None = None,
        where: str | None = None,
    ):
        if client is None and connect is None:
            raise ValueError("RedisStore needs a client or a way to connect")
        super().__init__(prefix, block)
        self._connect = connect
        self._connect_replicas: Callable[[], RedisCluster] | None = None
        self._replicas: RedisCluster | None = None
        self._where = where
        self._lock = threading.Lock()
        self._checked = False
        self.write_retries = 0  # page writes tried again (a moving slot, a page rewritten)
        self.read_retries = 0  # frame reads started over (a slot moved or moving)
        self._client: redis.Redis | RedisCluster | None = None
        if client is not None:
            self._use(client)

    @classmethod
    def from_url(
        cls, url: str, prefix: str = KEY_PREFIX, *, block: int = BLOCK, **client_options: Any
    ) -> Self:
        """A store on the redis://, rediss:// or unix:// URL (password or ACL user in it), which
        may name any node of a Redis Cluster. Nothing connects until the first use."""
        options = _CLIENT_DEFAULTS | client_options
        # Not connected yet; a URL redis-py refuses raises ValueError here.
        single = redis.Redis.from_url(url, **options)

        def connect() -> redis.Redis | RedisCluster:
            try:
                enabled = str(single.info("cluster").get("cluster_enabled", 0)) == "1"
            except redis.ResponseError:  # INFO refused (ACL, a proxy): not a cluster node
                enabled = False
            if not enabled:
                return single
            single.close()
            return RedisCluster.from_url(url, **options)

        store = cls(None, prefix, block=block, connect=connect, where=safe_url(url))
        # Replica reads (``read_frame(from_replicas=True)``) go through a client of their own:
        # its connections send READONLY, and nothing else the store does ever uses it.
        store._connect_replicas = lambda: RedisCluster.from_url(
            url, load_balancing_strategy=LoadBalancingStrategy.ROUND_ROBIN_REPLICAS, **options
        )
        return store

    # The client, connected on first use -----------------------------------------------------
    @property
    def client(self) -> redis.Redis | RedisCluster:
        """The redis-py client: ``redis.Redis``, or ``RedisCluster`` when the URL names a node
        of a cluster."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    assert self._connect is not None
                    self._use(self._connect())
        assert self._client is not None
        return self._client

    @property
    def cluster(self) -> bool:
        return isinstance(self.client, RedisCluster)

    def close(self) -> None:
        """Close the clients' connections, if they ever connected."""
        for client in (self._client, self._replicas):
            if client is not None:
                client.close()

    def _use(self, client: redis.Redis | RedisCluster) -> None:
        self._write_page = client.register_script(WRITE_PAGE)
        self._logins = client.register_script(LOGINS)
        self._pages_users = client.register_script(PAGES_USERS)
        self._read_aggregates = client.register_script(READ_AGGREGATES)
        self._client = client

    def __repr__(self) -> str:
        # The connection kwargs may carry a password: show only where the data lives.
        return f"{type(self).__name__}({self._location()} prefix={self.prefix!r})"

    def _location(self) -> str:
        url = self._url()
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return parts.path
        cluster = " cluster" if self._client is not None and self.cluster else ""
        return f"{parts.hostname}:{parts.port or 6379} db={parts.path.strip('/') or 0}{cluster}"

    def _url(self) -> str:
        """Where the data lives as a URL without credentials, for one-line messages."""
        if self._where is not None:
            return self._where
        client = self.client
        if isinstance(client, RedisCluster):
            node = client.get_default_node()
            return f"redis://{node.host}:{node.port}/0"
        kwargs = client.connection_pool.connection_kwargs
        if kwargs.get("path"):
            return f"unix://{kwargs['path']}"
        return f"redis://{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db', 0)}"

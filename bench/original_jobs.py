"""The original design's RQ jobs, in a module as light as the original's tasks module.

``PreloadedWorker`` is plain ``rq.Worker`` (one forked work horse per job); naming it with
``rq worker -w`` imports this module, and with it ``requests``, in the worker before it forks, so
horses do not pay the imports: the kindest setup for the original design.
"""

from __future__ import annotations

import redis
import requests
from rq import Queue, Worker

QUEUE = "github"
FIELDS = ("id", "login", "type", "public_repos", "public_gists", "followers", "following")

_clients: dict[str, redis.Redis] = {}


class PreloadedWorker(Worker):
    """``rq.Worker`` unchanged; importing it preloads the jobs' module."""


def _redis(url: str) -> redis.Redis:
    # The original kept one module-level client; a forking worker rebuilds its connection in
    # every horse.
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url)
    return _clients[url]


def crawl_users_page(api_url: str, queue_url: str, data_url: str, since: int, max_id: int) -> int:
    """``GET /users?since=`` (30 per page): enqueue the next page, then one job per user."""
    resp = requests.get(f"{api_url}/users", params={"since": since}, timeout=60)
    resp.raise_for_status()
    listed = resp.json()
    users = [user for user in listed if user["id"] <= max_id]
    queue = Queue(QUEUE, connection=_redis(queue_url))
    if listed and listed[-1]["id"] < max_id and "next" in resp.links:
        queue.enqueue(crawl_users_page, api_url, queue_url, data_url, listed[-1]["id"], max_id)
    for user in users:
        queue.enqueue(crawl_user, api_url, data_url, user["login"])
    return len(users)


def crawl_user(api_url: str, data_url: str, login: str) -> None:
    """``GET /users/{login}`` and one ``HSET`` of the user's fields."""
    resp = requests.get(f"{api_url}/users/{login}", timeout=60)
    resp.raise_for_status()
    user = resp.json()
    _redis(data_url).hset(
        f"gh:user:{user['id']}", mapping={name: str(user[name]) for name in FIELDS}
    )

"""Benchmark 4: bytes per user in Redis, with the project's real fields, and at GitHub's scale.

Two views: ``MEMORY USAGE`` of a random sample of user hashes (the hash and its key), and the
``INFO memory`` ``used_memory`` delta per user after writing N users through ``write_page``
(hashes plus the login index, the id index and the page sets). ``OBJECT ENCODING`` of the sample
must be ``listpack``, Redis's compact encoding. For contrast, the same hashes with the ETag as
GitHub sends it (``W/"<64 hex>"``, 68 bytes: over ``hash-max-listpack-value`` 64).
"""

from __future__ import annotations

import random
import statistics

from bench.figures import BenchError, Row, Section
from bench.servers import Context, flush
from bench.users import page_writes, user_hash
from gh_assets.storage import RedisStore

GITHUB_IDS = 250_000_000
EXISTING_SHARE = 2 / 3
USERS_AT_SCALE = GITHUB_IDS * EXISTING_SHARE
PAGE_USERS = 100


def run(ctx: Context) -> Section:
    size = ctx.size
    n = size.memory_users
    section = Section(
        "memory",
        f"Memory: bytes per user in Redis ({n:,} users written through write_page)",
        params={
            "users": n,
            "sample": size.memory_sample,
            "fields": list(user_hash(1)),
            "github_ids": GITHUB_IDS,
            "existing_share": round(EXISTING_SHARE, 4),
        },
    )
    store = RedisStore.from_url(ctx.redis_url)
    client = store.client
    rng = random.Random(4)
    per_user, per_hash, listpack = [], [], []
    encodings: dict[str, int] = {}
    try:
        config = client.config_get("hash-max-listpack-*")
        section.params["server_config"] = config
        for _ in range(ctx.runs):
            flush(client)
            before = client.info("memory")["used_memory"]
            for page in page_writes(1, n, PAGE_USERS):
                store.write_page(page)
            after = client.info("memory")["used_memory"]
            if store.user_count() != n:
                raise BenchError(f"{store.user_count()} users stored, {n} expected")
            per_user.append((after - before) / n)
            sample = rng.sample(range(1, n + 1), min(size.memory_sample, n))
            with client.pipeline(transaction=False) as pipe:
                for user_id in sample:
                    pipe.memory_usage(store.user_key(user_id), samples=0)
                    pipe.object("encoding", store.user_key(user_id))
                answers = pipe.execute()
            sizes, kinds = (
                answers[0::2],
                [k.decode() if isinstance(k, bytes) else str(k) for k in answers[1::2]],
            )
            per_hash.append(statistics.mean(sizes))
            listpack.append(100 * kinds.count("listpack") / len(kinds))
            for kind in kinds:
                encodings[kind] = encodings.get(kind, 0) + 1
        # The same hashes with the ETag stored as received (68 bytes).
        flush(client)
        contrast = []
        contrast_kinds = set()
        for user_id in range(1, min(size.memory_sample, n) + 1):
            fields = user_hash(user_id)
            fields["etag"] = f'W/"{fields["etag"]}"'
            key = f"contrast:user:{user_id}"
            client.hset(key, mapping=fields)
            contrast.append(client.memory_usage(key, samples=0))
            contrast_kinds.add(client.object("encoding", key).decode())
    finally:
        flush(client)
        client.close()

    measured = {"hash": per_hash, "used": per_user, "listpack": listpack, "contrast": contrast}
    section.add_rows(
        ROWS,
        measured,
        scale_m=USERS_AT_SCALE / 1e6,
        contrast_kinds="/".join(sorted(contrast_kinds)),
    )
    section.details["encodings"] = encodings
    section.details["contrast_encodings"] = sorted(contrast_kinds)
    if listpack and min(listpack) < 100:
        section.notes.append(f"Not every sampled hash is a listpack: {encodings}")
    return section


ROWS = (
    Row(
        "hash_bytes",
        "MEMORY USAGE of a user hash (sample mean)",
        "B",
        lambda m: m["hash"],
        digits=0,
    ),
    Row(
        "used_per_user",
        "used_memory delta per user (hash + login, id and page indexes)",
        "B",
        lambda m: m["used"],
        digits=0,
    ),
    Row("listpack_share", "sampled hashes in listpack encoding", "%", lambda m: m["listpack"]),
    Row(
        "github_gb",
        "at GitHub's scale ({scale_m:.0f} M users), used_memory",
        "GB",
        lambda m: [b * USERS_AT_SCALE / 1e9 for b in m["used"]],
    ),
    Row(
        "github_hash_gb",
        "at GitHub's scale ({scale_m:.0f} M users), user hashes only",
        "GB",
        lambda m: [b * USERS_AT_SCALE / 1e9 for b in m["hash"]],
    ),
    Row(
        "etag_as_received_bytes",
        "contrast: ETag stored as received (68 B) -> {contrast_kinds}",
        "B",
        lambda m: statistics.mean(m["contrast"]),
        digits=0,
    ),
)

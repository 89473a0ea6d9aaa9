"""The Redis key schema, a contract for other tools and notebooks (prefix ``gh:`` by default):

- ``gh:user:{id}``: hash ``id login type public_repos public_gists followers following
  fetched_at [etag etag_auth]``; integers as decimal strings, ``fetched_at`` ISO-8601 UTC,
  ``etag`` the entity tag without ``W/`` and quotes, ``etag_auth`` which credential got it.
- ``gh:logins``: hash login lower-cased in ASCII only (``ascii_lower``) -> id.
- ``gh:ids``: sorted set of every stored user id (score = id).
- ``gh:page:{page}``: hash of page bookkeeping (window, counts, ``fetched_at``).
- ``gh:page:{page}:users`` / ``gh:page:{page}:gone``: sets of the page's user ids and of the ids
  listed but deleted before their details were read.
- ``gh:pages``: sorted set page -> ``fetched_at`` as epoch seconds (oldest pages first).
- ``gh:deferred``: sorted set page -> epoch seconds after which a page that hit a long rate
  limit may run again; a successful write of the page removes it.
- ``gh:page:{page}:staged``: hash id -> the user's hash as JSON (or ``gone``), answers a page got
  before an error stopped it, reused by its re-run; expires after 3 hours, and the page's write
  removes it. Not part of the stored users.
- ``gh:page:{page}:agg``: hash of the page's partial aggregates, replaced with the page by the same
  atomic write (absent while the page holds no user): ``users``; per account type ``type:{type}``
  (accounts) and ``first:{type}`` (its lowest id); per counter ``{counter}:count``,
  ``{counter}:sum``, ``{counter}:sumsq`` (sum of squares), ``{counter}:min``, ``{counter}:max`` and
  per type ``{counter}:sum:{type}``; ``top``, JSON ``[[id, login, type, followers], ...]`` (strings)
  of the page's ``PAGE_TOP`` most followed accounts, ties to the lower id.
- ``gh:page:{page}:hist:{counter}``: hash value -> accounts of the page with that value, one per
  counter (written and removed with ``:agg``). Merged over the pages in ``gh:pages`` they give the
  exact distribution, so every statistic of the summary without reading a user.

Nothing needs ``KEYS`` or a scan of the keyspace.
"""

import string
from datetime import UTC, datetime

COUNTERS = ("public_repos", "public_gists", "followers", "following")
FRAME_FIELDS = ("id", "login", "type", *COUNTERS, "fetched_at")
USER_FIELDS = (*FRAME_FIELDS, "etag", "etag_auth")
PAGE_TOP = 10  # accounts in a page's ``top`` list: the summary's top list is within their union
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def ascii_lower(login: str) -> str:
    """A login's key in ``gh:logins``: A-Z lower-cased, every other character kept.

    The same rule as Lua's ``string.lower`` in ``write_page.lua`` (bytes, C locale), so both
    sides agree on any login, even a non-ASCII one from a hostile server (GitHub's are ASCII).
    """
    return login.translate(_ASCII_LOWER)


def iso_utc(moment: datetime) -> str:
    """The one timestamp format of the schema: ISO-8601, UTC, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

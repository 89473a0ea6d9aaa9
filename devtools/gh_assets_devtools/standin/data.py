"""Deterministic, lazily generated GitHub accounts for the stand-in.

Every ID's account is a pure function of ``(seed, id)``, so a dataset of ten million IDs costs
nothing until asked and two processes with the same seed serve the same users. Tests change or
delete accounts through a small override layer on top. Logins end in the account's ID (after a
realistic-looking handle that never ends in a digit), which keeps them unique and makes
``by_login`` O(1) without an index.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gh_assets.user_fields import COUNTERS, DETAIL_NAMES, TIMES, epoch_seconds

MISSING_ONE_IN = 3  # about a third of GitHub's IDs are deleted or never existed
ORG_SHARE = 0.04
MAX_LOGIN = 39
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9]))*")
_EPOCH = datetime(2008, 1, 10, tzinfo=UTC)  # GitHub's first accounts
_CREATED_UNTIL = datetime(2024, 12, 31, tzinfo=UTC)
_UPDATED_UNTIL = datetime(2025, 6, 30, tzinfo=UTC)
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_FIRST = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "nina", "oscar", "peggy", "quinn", "rupert", "sybil", "trent", "ursula", "victor", "wendy",
    "xavier", "yusuf", "zoe", "amara", "bruno", "chen", "diego", "elif", "farah", "goran", "hana",
    "igor", "jonas", "kenji", "leila", "mateo", "noor", "olga", "priya", "ravi", "sofia", "tomas",
    "uma", "vera", "wei", "yara", "zain", "lukas", "emma", "noah", "mia", "liam", "anya", "kai",
    "lena", "omar", "sara", "felix", "ines", "arjun", "mei",
)  # fmt: skip
_LAST = (
    "smith", "nguyen", "garcia", "muller", "rossi", "kim", "silva", "novak", "kowalski", "tanaka",
    "ivanova", "haddad", "okafor", "jensen", "dubois", "lopez", "patel", "schmidt", "wang",
    "costa", "berg", "fischer", "moreau", "sato", "khan", "ali", "romero", "weber", "yilmaz",
    "hansen", "li", "park", "santos", "becker", "meyer", "lund", "kaur", "ahmed", "cohen",
)  # fmt: skip
_HANDLE = (
    "code", "dev", "byte", "pixel", "cloud", "data", "hack", "rust", "node", "lambda", "vector",
    "kernel", "stack", "null", "async", "quantum", "neon", "cyber", "octo", "bit", "loop", "shell",
    "git", "tensor", "ops", "ninja", "wizard", "coder", "maker",
)  # fmt: skip
_ORG_A = (
    "open", "blue", "red", "swift", "bright", "deep", "iron", "silver", "green", "north", "rapid",
    "quiet", "solid", "prime", "atomic", "lunar", "polar", "urban", "wild", "cobalt",
)  # fmt: skip
_ORG_B = (
    "labs", "works", "systems", "foundation", "collective", "software", "studio", "tech", "data",
    "cloud", "io", "hq", "dev", "group", "research", "forge", "ai", "net", "apps", "project",
)  # fmt: skip
_COMPANIES = (
    "@github", "@microsoft", "@google", "Acme Corp", "Initech", "@mozilla", "Freelance",
    "@shopify", "University of Oslo", "@redhat", "Globex", "@canonical", "@stripe",
    "Self-employed",
)  # fmt: skip
_CITIES = (
    "San Francisco", "Berlin", "London", "Tokyo", "São Paulo", "Bangalore", "Paris", "Toronto",
    "Lagos", "Seoul", "Amsterdam", "New York", "Warsaw", "Melbourne", "Mexico City", "Istanbul",
    "Nairobi", "Stockholm", "Madrid", "Shanghai",
)  # fmt: skip
_BIOS = (
    "Software engineer.", "Open source enthusiast.", "Building things for the web.",
    "PhD student in machine learning.", "Maintainer of a few small libraries.",
    "Coffee, code and cats.", "Backend developer. Rust and Go.", "Data scientist.",
    "Security researcher.", "Making computers do things.",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class StandinUser:
    """One account with every field GitHub's ``public-user`` shows (URLs are derived); the
    defaults are what GitHub shows of an account that filled in no profile and has no counts."""

    id: int
    login: str
    type: str  # "User" or "Organization"
    site_admin: bool = False
    name: str | None = None
    company: str | None = None
    blog: str = ""  # GitHub answers "" rather than null when there is no blog
    location: str | None = None
    email: str | None = None
    hireable: bool | None = None
    bio: str | None = None
    twitter_username: str | None = None
    public_repos: int = 0
    public_gists: int = 0
    followers: int = 0
    following: int = 0
    created_at: str
    updated_at: str


_FIELDS = {f.name for f in fields(StandinUser)}
STORED_FIELDS = ("id", "login", "type", *DETAIL_NAMES)  # what a crawl keeps of each account


def ground_truth(user: StandinUser) -> dict[str, Any]:
    """The fields a crawl keeps of ``user``, typed as GitHub answers them (``/_standin/users``)."""
    return {name: getattr(user, name) for name in STORED_FIELDS}


def stored_form(rows: Iterable[Mapping[str, Any]]) -> dict[int, dict[str, str]]:
    """What Redis must hold for these ``ground_truth`` rows: id -> its hash's fields, as strings."""
    return {row["id"]: {name: _stored(name, row[name]) for name in STORED_FIELDS} for row in rows}


def _stored(name: str, value: Any) -> str:
    """A field as Redis holds it: a time as epoch seconds (``user_fields``), others as text."""
    return str(epoch_seconds(value) if name in TIMES else value)


class Dataset:
    """Accounts with IDs ``1..size``; ``update``/``delete`` override the generated ones."""

    def __init__(self, size: int = 1000, seed: int = 0) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.seed = seed
        self._lock = threading.Lock()
        # Overrides are replaced whole (frozen users), so readers need no lock under the GIL.
        self._overrides: dict[int, StandinUser | None] = {}  # None: deleted
        self._renamed: dict[str, int] = {}  # lower-case login of an overridden account -> ID

    def user(self, user_id: int) -> StandinUser | None:
        """The account with this ID, or None when there is none (never existed, or deleted)."""
        if user_id in self._overrides:
            return self._overrides[user_id]
        return self._generate(user_id)

    def users_between(self, first: int, last: int) -> list[StandinUser]:
        """Existing accounts with ``first <= id <= last``, ascending."""
        ids = range(max(first, 1), min(last, self.size) + 1)
        return [u for u in map(self.user, ids) if u is not None]

    def users_after(self, since: int, limit: int) -> list[StandinUser]:
        """Up to ``limit`` existing accounts with ``id > since``, ascending (``GET /users``)."""
        found: list[StandinUser] = []
        user_id = max(since, 0)
        while len(found) < limit and user_id < self.size:
            user_id += 1
            user = self.user(user_id)
            if user is not None:
                found.append(user)
        return found

    def by_login(self, login: str) -> StandinUser | None:
        """The account using ``login`` now, compared case-insensitively as GitHub does."""
        key = login.lower()
        if key in self._renamed:
            return self.user(self._renamed[key])
        digits = len(login) - len(login.rstrip("0123456789"))
        if not digits or login[-digits] == "0":
            return None
        user = self.user(int(login[-digits:]))
        return user if user is not None and user.login.lower() == key else None

    def all_users(self) -> list[StandinUser]:
        return self.users_between(1, self.size)

    def truth(self, first: int, last: int) -> dict[int, dict[str, str]]:
        """What Redis must hold once IDs ``first..last`` are crawled (``stored_form``)."""
        return stored_form(map(ground_truth, self.users_between(first, last)))

    def update(self, user_id: int, **changes: object) -> StandinUser:
        """Change fields of an existing account (counts, ``login=`` to rename); returns it.

        ``updated_at`` moves to now unless given, as GitHub's does on a profile change.
        """
        unknown = set(changes) - (_FIELDS - {"id"})
        if unknown:
            raise ValueError(f"unknown or read-only fields: {sorted(unknown)}")
        for name in COUNTERS:
            value = changes.get(name, 0)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        changes.setdefault("updated_at", datetime.now(UTC).strftime(_TIME_FORMAT))
        with self._lock:
            current = self.user(user_id)
            if current is None:
                raise KeyError(f"no user with id {user_id}")
            login = changes.get("login", current.login)
            if not isinstance(login, str) or not valid_login(login):
                raise ValueError(f"not a valid GitHub login: {login!r}")
            holder = self.by_login(login)
            if holder is not None and holder.id != user_id:
                raise ValueError(f"login {login!r} is taken by user {holder.id}")
            updated = replace(current, **changes)
            self._renamed.pop(current.login.lower(), None)
            if updated.login != self._generated_login(user_id):
                self._renamed[updated.login.lower()] = user_id
            self._overrides[user_id] = updated
            return updated

    def delete(self, user_id: int) -> None:
        """The account disappears: 404 for its ID and login, absent from every list."""
        with self._lock:
            current = self.user(user_id)
            if current is None:
                raise KeyError(f"no user with id {user_id}")
            self._renamed.pop(current.login.lower(), None)
            self._overrides[user_id] = None

    def _generated_login(self, user_id: int) -> str | None:
        generated = self._generate(user_id)
        return None if generated is None else generated.login

    def _generate(self, user_id: int) -> StandinUser | None:
        if not 1 <= user_id <= self.size:
            return None
        digest = hashlib.blake2b(f"{self.seed}:{user_id}".encode(), digest_size=8).digest()
        draw = int.from_bytes(digest, "big")
        if user_id != 1 and draw % MISSING_ONE_IN == 0:  # ID 1 always exists, as on GitHub
            return None
        rng = random.Random(draw)
        if rng.random() < ORG_SHARE:
            return self._organization(user_id, rng)
        return self._person(user_id, rng)

    def _person(self, user_id: int, rng: random.Random) -> StandinUser:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        handle = rng.choice(
            (
                first,
                first + last,
                f"{first}-{last}",
                first[0] + last,
                first.title() + last.title(),
                f"{rng.choice(_HANDLE)}-{rng.choice(_HANDLE)}",
                f"{first}-{rng.choice(_HANDLE)}",
            )
        )
        if rng.random() < 0.15:
            handle = handle[0].upper() + handle[1:]
        login = _login(handle, user_id, rng)
        created, updated = _dates(user_id, self.size, rng)
        return StandinUser(
            id=user_id,
            login=login,
            type="User",
            site_admin=rng.random() < 0.002,
            name=f"{first.title()} {last.title()}" if rng.random() < 0.7 else None,
            company=rng.choice(_COMPANIES) if rng.random() < 0.3 else None,
            blog=f"https://{login.lower()}.dev" if rng.random() < 0.25 else "",
            location=rng.choice(_CITIES) if rng.random() < 0.45 else None,
            email=f"{login.lower()}@example.com" if rng.random() < 0.15 else None,
            hireable=True if rng.random() < 0.2 else None,
            bio=rng.choice(_BIOS) if rng.random() < 0.2 else None,
            twitter_username=f"{first}_{last}"[:15] if rng.random() < 0.1 else None,
            public_repos=_heavy_tail(rng, scale=4.0, alpha=1.2, cap=20_000),
            public_gists=0 if rng.random() < 0.6 else _heavy_tail(rng, 2.0, 1.3, cap=5_000),
            followers=_heavy_tail(rng, scale=2.0, alpha=1.1, cap=300_000),
            following=_heavy_tail(rng, scale=1.5, alpha=1.3, cap=10_000),
            created_at=created,
            updated_at=updated,
        )

    def _organization(self, user_id: int, rng: random.Random) -> StandinUser:
        a, b = rng.choice(_ORG_A), rng.choice(_ORG_B)
        handle = rng.choice((f"{a}-{b}", a + b, a.title() + b.title()))
        login = _login(handle, user_id, rng)
        created, updated = _dates(user_id, self.size, rng)
        # GET /users/{org} reports followers, following and gists as 0 (see recording 13): the
        # defaults, as are an empty company, email, hireable, bio and twitter_username.
        return StandinUser(
            id=user_id,
            login=login,
            type="Organization",
            name=f"{a.title()} {b.title()}" if rng.random() < 0.8 else None,
            blog=f"https://{login.lower()}.org" if rng.random() < 0.5 else "",
            location=rng.choice(_CITIES) if rng.random() < 0.3 else None,
            public_repos=1 + _heavy_tail(rng, scale=3.0, alpha=1.0, cap=20_000),
            created_at=created,
            updated_at=updated,
        )


def valid_login(login: str) -> bool:
    """GitHub's rule: alphanumerics and single inner hyphens, at most 39 characters."""
    return len(login) <= MAX_LOGIN and _LOGIN.fullmatch(login) is not None


def _login(handle: str, user_id: int, rng: random.Random) -> str:
    """``handle`` + the ID (the handle never ends in a digit, so the ID can be read back)."""
    digits = str(user_id)
    separator = "-" if rng.random() < 0.25 else ""
    handle = handle[: MAX_LOGIN - len(digits) - len(separator)].rstrip("-")
    return f"{handle}{separator}{digits}"


def _heavy_tail(rng: random.Random, scale: float, alpha: float, cap: int) -> int:
    """Pareto-distributed count from 0: mostly small, a few in the thousands."""
    return min(int(scale * rng.paretovariate(alpha) - scale), cap)


def _dates(user_id: int, size: int, rng: random.Random) -> tuple[str, str]:
    """created_at rising with the ID (as on GitHub), updated_at some time after it."""
    span = (_CREATED_UNTIL - _EPOCH).total_seconds()
    created = _EPOCH + timedelta(seconds=span * user_id / size + rng.uniform(0, 86_400))
    updated = created + (_UPDATED_UNTIL - created) * rng.random()
    return created.strftime(_TIME_FORMAT), updated.strftime(_TIME_FORMAT)

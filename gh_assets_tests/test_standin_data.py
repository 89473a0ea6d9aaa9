"""The stand-in's accounts, no server: the same seed gives the same accounts, IDs are sparse with a
few organizations and heavy-tailed counts, ten million IDs cost nothing until asked, renames and
deletions."""

from __future__ import annotations

import re

import pytest

from gh_assets_devtools.standin import Dataset

from .standin_fixtures import SIZE
from .standin_fixtures import dataset as dataset

LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")


@pytest.mark.unit
def test_the_same_seed_gives_the_same_accounts_and_another_seed_others() -> None:
    first, again, other = Dataset(2000, seed=1), Dataset(2000, seed=1), Dataset(2000, seed=2)
    assert first.all_users() == again.all_users()
    assert first.all_users() != other.all_users()
    assert {u.id for u in first.all_users()} != {u.id for u in other.all_users()}
    assert first.user(1) is not None and other.user(1) is not None  # ID 1 exists, as on GitHub


@pytest.mark.unit
def test_ids_are_sparse_with_a_few_organizations_and_heavy_tailed_counts() -> None:
    users = Dataset(SIZE, seed=0).users_between(1, SIZE)
    assert 0.28 < 1 - len(users) / SIZE < 0.39
    orgs = [u for u in users if u.type == "Organization"]
    assert 0.02 < len(orgs) / len(users) < 0.06
    assert {u.type for u in users} == {"User", "Organization"}
    assert all(o.followers == o.following == o.public_gists == 0 for o in orgs)
    assert sum(o.public_repos > 0 for o in orgs) == len(orgs)
    followers = sorted(u.followers for u in users)
    assert followers[len(followers) // 2] <= 10 and followers[-1] >= 1000
    assert sum(f <= 10 for f in followers) / len(followers) > 0.8
    logins = [u.login for u in users]
    assert all(LOGIN.fullmatch(login) for login in logins)
    assert len({login.lower() for login in logins}) == len(logins)
    assert any(login != login.lower() for login in logins)
    assert all(u.created_at <= u.updated_at for u in users)
    assert [u.created_at for u in users[:50]] == sorted(u.created_at for u in users[:50])


@pytest.mark.unit
def test_ten_million_ids_cost_nothing_until_asked() -> None:
    huge = Dataset(size=10_000_000, seed=3)
    tail = huge.users_between(9_999_900, 10_000_100)
    assert 50 < len(tail) < 90 and tail[-1].id <= 10_000_000
    assert huge.by_login(tail[-1].login.upper()) == tail[-1]
    assert huge.users_after(10_000_000, 10) == []


@pytest.mark.unit
def test_update_renames_and_delete_removes(dataset: Dataset) -> None:
    first, second = dataset.users_between(1, 20)[:2]
    renamed = dataset.update(first.id, login="New-Name", followers=first.followers + 7)
    assert renamed.followers == first.followers + 7 and renamed.updated_at >= first.updated_at
    assert dataset.by_login("new-NAME") == renamed == dataset.user(first.id)
    assert dataset.by_login(first.login) is None
    with pytest.raises(ValueError, match="taken"):
        dataset.update(second.id, login="NEW-name")
    with pytest.raises(ValueError, match="login"):
        dataset.update(second.id, login="bad--login")
    dataset.delete(second.id)
    assert dataset.user(second.id) is None and dataset.by_login(second.login) is None
    assert second.id not in {u.id for u in dataset.users_between(1, 20)}
    with pytest.raises(KeyError):
        dataset.update(second.id, followers=1)

"""The summary from the pages' partial aggregates equals pandas' on the full frame.

"Equal" is defined in ``gh_assets.aggregates`` and checked by ``assert_same_summary`` (with
``summary_differences``, which the bench uses too): counts, sums, min, max, median, p90, p99,
``by_type`` and ``top_followers`` identical (values and dtypes); mean and std to
``math.isclose(rel_tol=1e-12)``, the mean exactly while the total is below 2**53.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from gh_assets.aggregates import (
    REL_TOL,
    AggregatesError,
    CounterTotals,
    merge_pages,
    summarize_pages,
    summary_differences,
)
from gh_assets.crawl import crawl_pages
from gh_assets.defs.analysis.summary import github_user_summary
from gh_assets.github import GitHubClient
from gh_assets.partitions import PageWindow
from gh_assets.plots import PLOTS
from gh_assets.resources import RedisResource
from gh_assets.storage import COUNTERS, RedisStore
from gh_assets.storage.store import page_aggregates
from gh_assets.summary import UserSummary, summarize
from gh_assets_devtools.standin import Dataset

from .page_writes import P1, key, page
from .same_summary import assert_same_summary
from .user_hashes import account

PNG = b"\x89PNG"


def write_pages(store: RedisStore, users: list[dict[str, str]], per_page: int = 7) -> None:
    """``users`` in pages of ``per_page``, registered in ``gh:pages`` as a crawl does."""
    for number, first in enumerate(range(0, len(users), per_page)):
        store.write_page(page(users[first : first + per_page], key=key(number)))


CRAFTED = {
    "single user": [account(5, followers=3, public_repos=1)],
    "zeros": [account(i) for i in range(1, 30)],
    "organizations only": [account(i, "Organization", followers=i % 4) for i in range(1, 12)],
    "ties": [
        # followers tie across pages: the lower id wins; types tie: the first seen (lower id) first
        *(account(i, "Organization" if i % 2 else "User", followers=7) for i in range(1, 25)),
        account(25, "Bot", followers=7),
        account(26, "Bot", followers=0),
    ],
    "huge": [
        account(1, followers=2**62, following=2**31, public_repos=3),
        account(2, followers=2**40, public_gists=2**62 - 1),
        account(3, followers=0, following=2**31 + 1),
        *(account(i, "Organization", followers=i, public_repos=10**9) for i in range(4, 20)),
    ],
}


@pytest.mark.integration
@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_users_summarise_as_pandas_does(store: RedisStore, case: str) -> None:
    users = CRAFTED[case]
    random.Random(case).shuffle(users)  # pages need not arrive in id order
    write_pages(store, users, per_page=5)
    summary = assert_same_summary(store)
    assert summary.counters["count"].tolist() == [len(users)] * 4
    if case == "huge":  # sums of squares beyond int64 and a double's integers: exact strings
        pages = [page.decode() for page in store.client.zrange(store.pages_key, 0, -1)]
        agg = [store.client.hget(store.page_key(p, "agg"), "followers:sumsq") for p in pages]
        assert max(int(sumsq) for sumsq in agg) >= 2**124
        assert merge_pages(store).counters["followers"].squares == sum(
            int(u["followers"]) ** 2 for u in users
        )


@pytest.mark.integration
@pytest.mark.parametrize("size", [2, 3, 4, 10, 101, 599, 600, 601, 1000, 2345])
def test_random_counters_of_any_size_summarise_as_pandas_does(store: RedisStore, size: int) -> None:
    # Sizes on both sides of numpy's 600-element median paths; heavy tails, odd and even counts.
    rng = random.Random(size)
    kinds = ["User"] * 20 + ["Organization"] * 3 + ["Bot"]
    users = [
        account(
            user_id,
            rng.choice(kinds),
            public_repos=int(rng.paretovariate(1.2)) - 1,
            public_gists=rng.randrange(3),
            followers=int(rng.paretovariate(0.8)) - 1,
            following=rng.randrange(10**9),
        )
        for user_id in rng.sample(range(1, 10 * size + 1), size)
    ]
    write_pages(store, users, per_page=rng.choice([1, 37, 100, 1000]))
    assert_same_summary(store)


@pytest.mark.integration
def test_a_sum_beyond_int64_is_refused_not_wrapped(store: RedisStore) -> None:
    write_pages(store, [account(1, followers=2**62), account(2, followers=2**62)])
    with pytest.raises(AggregatesError, match=r"^followers: the sum .* exceeds int64$"):
        summarize_pages(store)


@pytest.mark.integration
def test_an_empty_store_gives_pandas_empty_summary(store: RedisStore) -> None:
    expected = summarize(store.read_frame())
    found = summarize_pages(store)
    for name in UserSummary.TABLES:
        pd.testing.assert_frame_equal(getattr(found, name), getattr(expected, name))
    store.write_page(page([], gone=(1, 2)))  # a page whose users are all gone: no aggregates
    assert store.client.exists(*store.aggregate_keys(P1)) == 0
    assert summarize_pages(store).counters["count"].tolist() == [0, 0, 0, 0]


@pytest.mark.integration
def test_summary_differences_name_each_difference(store: RedisStore) -> None:
    write_pages(store, [account(i, followers=i % 7, public_repos=i) for i in range(1, 40)])
    expected, found = summarize(store.read_frame()), summarize_pages(store)
    assert summary_differences(expected, found) == []
    counters = found.counters.copy()
    counters.at["followers", "p90"] += 1  # exact: any change differs
    counters.at["public_repos", "std"] *= 1 + 1e-9  # beyond REL_TOL
    counters.at["following", "std"] *= 1 + 1e-14  # within it
    top = found.top_followers.iloc[::-1].reset_index(drop=True)
    changed = replace(found, counters=counters, top_followers=top)
    differences = summary_differences(expected, changed)
    assert [line.split(":")[0] for line in differences] == [
        "counters",
        "public_repos std",
        "top_followers",
    ]
    recast = replace(changed, counters=counters.astype({"max": "float64"}))
    assert [line.split(" {")[0] for line in summary_differences(expected, recast)] == [
        "counters' dtypes"
    ]


@pytest.mark.integration
def test_a_page_without_aggregates_is_named_in_one_line(store: RedisStore) -> None:
    write_pages(store, [account(i) for i in range(1, 20)], per_page=5)
    for number in (1, 3):  # as a page written before the aggregates existed
        store.client.delete(*store.aggregate_keys(key(number)))
    with pytest.raises(AggregatesError) as refused:
        summarize_pages(store)
    assert str(refused.value) == (
        f"2 pages hold users but no aggregates ({key(1)}, {key(3)}): written before the pages "
        "kept aggregates; crawl them again (unchanged users cost a free 304 each)"
    )


@pytest.mark.integration
@pytest.mark.slow
def test_a_crawl_its_recrawls_and_deleted_accounts_summarise_as_pandas_does(
    store: RedisStore, dataset: Dataset, client: GitHubClient
) -> None:
    windows = [PageWindow.number(k, 100) for k in range(4)]
    list(crawl_pages(client, store, windows))
    first = assert_same_summary(store)
    assert first.counters.at["followers", "count"] == len(dataset.users_between(1, 400))

    # One page re-crawled with changed users: a new most-followed account, an organization.
    changed = dataset.users_between(201, 300)
    dataset.update(changed[3].id, followers=10**8, public_repos=7)
    dataset.update(changed[4].id, followers=0, following=12345)
    list(crawl_pages(client, store, [windows[2]]))
    again = assert_same_summary(store)
    assert again.top_followers["id"].iloc[0] == changed[3].id
    assert again.counters.at["followers", "sum"] != first.counters.at["followers", "sum"]

    # A page loses users (deleted accounts): its aggregates lose them with it.
    gone = [user.id for user in dataset.users_between(1, 100)[:5]]
    for user_id in gone:
        dataset.delete(user_id)
    list(crawl_pages(client, store, [windows[0]]))
    final = assert_same_summary(store)
    assert final.counters.at["followers", "count"] == len(dataset.users_between(1, 400))
    assert final.counters.at["followers", "count"] == again.counters.at["followers", "count"] - 5


@pytest.mark.integration
@pytest.mark.slow
def test_the_summary_asset_reads_the_aggregates_and_plots_them(
    store: RedisStore, redis_url: str
) -> None:
    users = [
        account(1, followers=5, public_repos=3, public_gists=1, following=2),
        account(2, followers=0, created_at=None),  # as an older release wrote it: in no year
        account(3, followers=500, public_repos=10, created_at=1325376000),  # 2012-01-01
        account(4, "Organization", followers=40, public_repos=7),
    ]
    write_pages(store, users, per_page=3)
    with dg.instance_for_test() as instance:
        context = dg.build_asset_context(instance=instance)
        result = github_user_summary(context, RedisResource(url=redis_url, key_prefix=store.prefix))
    assert isinstance(result.value, UserSummary)
    assert result.metadata["accounts"] == 4
    assert result.metadata["organizations"] == 1
    assert result.metadata["followers_p50"] == 22.5
    top = result.metadata["top_followers"].records[0].data
    assert (top["login"], top["followers"]) == ("login3", 500)
    assert result.value.per_year.to_dict() == {"created_at": {2008: 2, 2012: 1}}
    assert sorted(PLOTS) == [
        "created_at_per_year",
        "follower_distribution",
        "repos_distribution",
        "users_vs_organizations",
    ]
    for name in PLOTS:
        assert "data:image/png;base64,iVBORw0KGgo" in result.metadata[name].value, name


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("accounts", [0, 1])
def test_the_plots_draw_small_and_empty_stores(store: RedisStore, accounts: int) -> None:
    write_pages(store, [account(1, "Organization")][:accounts])
    merged = merge_pages(store)
    for name, plot in PLOTS.items():
        assert plot(merged).startswith(PNG), name


@pytest.mark.unit
def test_the_merged_histograms_are_the_distribution() -> None:
    # The pure part: page_aggregates' histograms add up to numpy's own counts.
    rng = np.random.default_rng(3)
    values = rng.integers(0, 50, size=300)
    users = [account(i + 1, followers=int(v)) for i, v in enumerate(values)]
    _, histograms = page_aggregates(users)
    followers = histograms[COUNTERS.index("followers")]
    distinct, counts = np.unique(values, return_counts=True)
    assert followers == {str(v): str(c) for v, c in zip(distinct, counts, strict=True)}


@pytest.mark.unit
def test_the_statistics_repeat_pandas_bit_for_bit_on_random_columns() -> None:
    # The arithmetic alone, on many columns: numpy's interpolation step for step (dropping its
    # "nearer end" branch, or taking the median as the 0.5 quantile, fails here by an ulp).
    rng = np.random.default_rng(12)
    for _ in range(1500):
        size = int(rng.integers(1, 1500))
        scale = int(rng.choice([3, 10**4, 10**9, 10**16, 2**60]))
        column = rng.integers(0, scale, size=size, dtype=np.int64)
        frame = pd.DataFrame({counter: column for counter in COUNTERS})
        values, accounts = np.unique(column, return_counts=True)
        total = sum(int(x) for x in column)
        squares = sum(int(x) ** 2 for x in column)
        totals = CounterTotals(
            size, total, squares, int(values[0]), int(values[-1]), values, accounts
        )
        pandas = {
            "median": frame.median(),
            "p90": frame.quantile(0.90),
            "p99": frame.quantile(0.99),
            "mean": frame.mean(),
            "std": frame.std(),
        }
        pandas = {name: float(found.iloc[0]) for name, found in pandas.items()}
        assert totals.median() == pandas["median"], (column, "median")
        assert totals.quantile(0.90) == pandas["p90"], (column, "p90")
        assert totals.quantile(0.99) == pandas["p99"], (column, "p99")
        assert math.isclose(totals.mean(), pandas["mean"], rel_tol=REL_TOL)
        if total < 2**53:
            assert totals.mean() == pandas["mean"]
        if size > 1:
            assert math.isclose(totals.std(), pandas["std"], rel_tol=REL_TOL), column
        else:
            assert math.isnan(totals.std()) and math.isnan(pandas["std"])

"""``assert_same_summary``: the summary merged from the pages' aggregates equals pandas' on the
full frame, as ``gh_assets.aggregates`` defines equal (the aggregates' and the assets' tests)."""

from __future__ import annotations

from gh_assets.aggregates import merge_pages, summarize_pages, summary_differences
from gh_assets.storage import COUNTERS, RedisStore
from gh_assets.summary import UserSummary, summarize


def assert_same_summary(store: RedisStore) -> UserSummary:
    """``summarize_pages(store)`` equals ``summarize(store.read_frame())`` as defined above."""
    frame = store.read_frame()
    expected, found = summarize(frame), summarize_pages(store)
    differences = summary_differences(expected, found)
    assert not differences, "\n".join(differences)
    merged = merge_pages(store)
    for counter in COUNTERS:  # min is kept too (the summary shows no min)
        totals = merged.counters[counter]
        assert (totals.low, totals.high) == (
            (int(frame[counter].min()), int(frame[counter].max())) if len(frame) else (None, None)
        )
        assert totals.squares == sum(int(v) ** 2 for v in frame[counter])
    return found

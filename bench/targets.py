"""The targets of the issues (4, 13, and the Redis Cluster's merged summary), checked against
the figures' medians: PASS, MISS (by how much), n/a."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.figures import Figure, Section


@dataclass(frozen=True)
class Target:
    section: str
    key: str
    op: str  # ">=", "<=" or "between" (threshold..upper, both included)
    threshold: float
    text: str
    sizes: tuple[str, ...] = ("default",)  # where the threshold means something
    upper: float | None = None  # the upper bound of "between"

    def describe(self) -> str:
        if self.op == "between":
            return f"{self.threshold:g}-{self.upper:g}"
        return f"{self.op} {self.threshold:g}"

    def passes(self, value: float) -> bool:
        if self.op == "between":
            assert self.upper is not None
            return self.threshold <= value <= self.upper
        return value >= self.threshold if self.op == ">=" else value <= self.threshold

    def shortfall(self, value: float) -> str:
        """How far a missed figure is from the target, in words."""
        if self.op == "between" and self.upper is not None and value > self.upper:
            return f"over the upper bound {self.upper:g} by {value - self.upper:.3g}"
        if self.op in (">=", "between"):
            if value <= 0:
                return "no value"
            return f"{value / self.threshold:.0%} of target, {self.threshold / value:.2f}x short"
        if self.threshold <= 0:
            return f"over by {value - self.threshold:.3g}"
        return f"{value / self.threshold:.2f}x the limit, over by {value - self.threshold:.3g}"


TARGETS = (
    Target("crawl", "rest.ceiling_share", ">=", 70, "crawl REST >= 70% of the concurrency ceiling"),
    Target("crawl", "rest_vs_original", ">=", 20, "crawl REST >= 20x the original's users/s"),
    Target("crawl", "rest.requests_per_user", "<=", 1.02, "crawl REST <= 1.02 requests/user"),
    Target("crawl", "graphql.requests_per_user", "<=", 0.03, "crawl GraphQL <= 0.03 requests/user"),
    Target("crawl", "recrawl.not_modified_share", ">=", 99, "unchanged re-crawl >= 99% 304"),
    Target("frame", "project.1000000.seconds", "<=", 5, "1,000,000 users -> DataFrame <= 5 s"),
    *(
        Target(
            "frame",
            f"project.1000000.{peak}_ratio",
            "<=",
            3,
            f"1,000,000 users: {label} <= 3x the frame",
        )
        for peak, label in (("traced_peak", "peak (tracemalloc)"), ("rss_peak", "peak RSS delta"))
    ),
    Target("frame", "speedup.10000", ">=", 500, ">= 500x the original loop at 10,000 users"),
    Target("writes", "project.users_per_s", ">=", 30_000, "writes >= 30,000 users/s"),
    Target(
        "memory",
        "listpack_share",
        ">=",
        100,
        "user hashes in compact (listpack) encoding",
        sizes=("default", "tiny"),
    ),
    Target(
        "cluster",
        "summary.speedup",
        ">=",
        100,
        "1,000,000 users: merged summary >= 100x faster than summarize(frame)",
    ),
    Target(
        "cluster",
        "summary.identical",
        ">=",
        1,
        "merged summary identical to summarize(frame)",
        sizes=("default", "tiny"),
    ),
    *(
        Target(
            "orchestration",
            f"multi{pages}.overhead_per_page",
            "<=",
            1.0,
            f"50-page backfill overhead <= 1 s/page ({pages} pages/run)",
        )
        for pages in (10, 25)
    ),
    Target(
        "economy",
        "secondary_refusals",
        "<=",
        0,
        "zero secondary-limit hits under GitHub's limits",
        sizes=("default", "tiny"),
    ),
    Target(
        "economy",
        "primary_refusals",
        "<=",
        0,
        "zero primary-limit refusals under GitHub's limits",
        sizes=("default", "tiny"),
    ),
    Target(
        "economy",
        "recrawl.rate_share",
        "between",
        95,
        "unchanged re-crawl sustains 95-100% of the configured rate",
        upper=100,
    ),
    Target("economy", "rest.users_per_hour", ">=", 4_900, "first REST crawl >= 4,900 users/h/id"),
    Target(
        "economy", "graphql.users_per_hour", ">=", 120_000, "GraphQL mode >= 120,000 users/h/id"
    ),
    Target("economy", "acquire.p99_ms", "<=", 5, "governor acquire p99 <= 5 ms"),
    *(
        Target("at_scale", f"{phase}.{sensor}", "<=", 5, f"{sensor} tick < 5 s at 100,000 pages")
        for phase in ("tick", "tick_queued")
        for sensor in ("github_pages_sensor", "stale_pages_sensor", "refresh_analysis_sensor")
    ),
    *(
        Target("at_scale", key, "<=", 3, "github_users partition status < 3 s at 100,000 pages")
        for key in ("status.seconds", "status_queued.seconds")
    ),
    Target("at_scale", "backfill.seconds", "<=", 600, "backfill of 100,000 pages queued < 10 min"),
)


def target_for(section: str, key: str) -> Target | None:
    return next((t for t in TARGETS if t.section == section and t.key == key), None)


def missed(section: Section, key: str, size: str) -> bool:
    """Whether ``section``'s figure ``key`` misses its target at this size (False: no target)."""
    target = target_for(section.name, key)
    figure = section.figure(key)
    if target is None or figure is None or size not in target.sizes:
        return False
    return not target.passes(figure.median)


def evaluate(sections: dict[str, Section], size: str) -> list[dict[str, Any]]:
    """Every target with its figure's median and status."""
    found = []
    for target in TARGETS:
        section = sections.get(target.section)
        figure: Figure | None = section.figure(target.key) if section else None
        row: dict[str, Any] = {
            "target": target.text,
            "section": target.section,
            "figure": target.key,
            "op": target.op,
            "threshold": target.threshold,
            **({"upper": target.upper} if target.upper is not None else {}),
        }
        if figure is None:
            reason = "not measured"
            if section is None:
                reason = "benchmark not run"
            elif section.skipped:
                reason = f"skipped: {section.skipped}"
            row |= {"status": "n/a", "why": reason}
        elif size not in target.sizes:
            row |= {"value": figure.median, "status": "n/a", "why": f"{size} size"}
        elif target.passes(figure.median):
            row |= {"value": figure.median, "status": "PASS"}
        else:
            row |= {
                "value": figure.median,
                "status": "MISS",
                "by": target.shortfall(figure.median),
            }
        found.append(row)
    return found

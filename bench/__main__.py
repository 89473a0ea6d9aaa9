"""``python -m bench [--size tiny] [--runs N] [--only NAME] [--json PATH]``.

Starts its own Redis server (and its own stand-ins, RQ workers and Dagster deployment as each
benchmark needs them), runs the benchmarks in order, prints one table and writes the same
figures as JSON. Exits 1 when a benchmark failed (e.g. a side stored the wrong users); a missed
target is reported, not an error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import report, targets
from bench.figures import Section
from bench.servers import Context, server_info
from bench.sizes import SIZES
from gh_assets_devtools.services import redis_server

TITLES = {
    "crawl": "Crawl",
    "writes": "Redis writes",
    "frame": "Redis -> DataFrame",
    "memory": "Memory",
    "cluster": "Redis Cluster",
    "orchestration": "Orchestration",
    "limits": "Physical limits",
    "economy": "Rate-limit economy",
    "at_scale": "Orchestration at scale",
}
BENCHMARKS = tuple(TITLES)  # in the order they run


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds every context manager: servers and workers stop


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median of them)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these benchmarks (repeatable or comma-separated): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--json", type=Path, default=Path("bench-results/latest.json"))
    args = parser.parse_args(argv)
    args.only = [name.strip() for item in args.only for name in item.split(",") if name.strip()]
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    return args


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    args = parse_args(argv)
    size = SIZES[args.size]
    selected = [name for name in BENCHMARKS if not args.only or name in args.only]
    started = time.perf_counter()
    sections: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="gh-assets-bench-") as scratch:
        tmp = Path(scratch)
        with redis_server(tmp / "redis", persist=False) as url:
            ctx = Context(size, args.runs, tmp, url, frozenset(args.only))
            meta = {
                "date": report.now(),
                "size": size.name,
                "runs": args.runs,
                "only": args.only,
                "machine": report.machine(),
                "versions": report.versions(),
                "redis_server": server_info(url),
                "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            }
            for name in selected:
                log(f"{name} ...")
                begun = time.perf_counter()
                try:
                    section = importlib.import_module(f"bench.{name}").run(ctx)
                except KeyboardInterrupt:
                    raise
                except Exception as error:
                    traceback.print_exc()
                    section = Section(name, TITLES[name], error=f"{type(error).__name__}: {error}")
                section.seconds = time.perf_counter() - begun
                ctx.sections[name] = section
                sections.append(section)
                state = "FAILED" if section.error else "skipped" if section.skipped else "done"
                log(f"{name} {state} in {section.seconds:.1f} s")
                ctx.flush_all()
    wall = time.perf_counter() - started
    meta["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    verdicts = [
        v for v in targets.evaluate(ctx.sections, size.name) if v["section"] in ctx.sections
    ]
    print(report.table(meta, sections, verdicts), flush=True)
    print(f"\nwall time {wall:.0f} s; figures as JSON in {args.json}", flush=True)
    report.write_json(args.json, report.to_json(meta, sections, verdicts, wall))
    return 1 if any(s.error for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())

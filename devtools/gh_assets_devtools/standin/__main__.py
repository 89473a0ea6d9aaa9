"""``python -m gh_assets_devtools.standin``: serve the GitHub stand-in until SIGTERM or Ctrl-C.

``--port-file`` appears (atomically) only once the server listens, so a parent process can wait
for the file instead of polling the port.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from gh_assets_devtools.standin.data import Dataset
from gh_assets_devtools.standin.server import StandinServer


def id_range(text: str) -> tuple[int, int]:
    """``300-400`` or ``300``: an inclusive range of user IDs."""
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FIRST-LAST or ID, got {text!r}") from None
    if low > high:
        raise argparse.ArgumentTypeError(f"empty ID range {text!r}")
    return low, high


def token_map(text: str) -> dict[str, str]:
    """``tokA=alice,tokB=alice``: tokens and the logins whose budgets they share."""
    tokens: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        token, sep, login = pair.partition("=")
        if not sep or not token.strip() or not login.strip():
            raise argparse.ArgumentTypeError(f"expected TOKEN=LOGIN, got {pair!r}")
        tokens[token.strip()] = login.strip()
    return tokens


# The options that are not StandinServer's: every other one is its keyword of the same name.
NOT_SERVER_OPTIONS = ("size", "port_file")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m gh_assets_devtools.standin", description=__doc__.splitlines()[0]
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=0, help="0: any free port")
    add("--size", type=int, default=1000, help="highest user ID that may exist")
    add("--seed", type=int, default=0)
    add("--latency-ms", type=float, default=0.0, help="added to every API answer")
    add("--error-rate", type=float, default=0.0, help="share of API answers that are 503s")
    add("--fail-ids", type=id_range, action="append", default=[], metavar="FIRST-LAST",
        help="answer 502 for these users and list pages showing them (repeatable)")  # fmt: skip
    add("--rate-limit", type=int, default=5000, help="requests per window and account")
    add("--rate-window", type=float, default=3600.0, help="seconds")
    add("--tokens", type=token_map, metavar="TOKEN=LOGIN,...",
        help="tokens of one login share its budgets (others: a budget each)")  # fmt: skip
    add("--minute", type=float, default=60.0, help="seconds in a secondary-limit minute")
    add("--secondary-in-flight", type=int, metavar="N",
        help="requests answered at once per account (GitHub: 100; default: no limit)")  # fmt: skip
    add("--rest-points-per-minute", type=int, metavar="N",
        help="REST requests per rolling minute and account (GitHub: 900)")  # fmt: skip
    add("--graphql-points-per-minute", type=int, metavar="N",
        help="GraphQL queries per rolling minute and account (GitHub: 2000)")  # fmt: skip
    add("--secondary-retry-after", action=argparse.BooleanOptionalAction, default=True,
        help="whether secondary-limit refusals carry Retry-After")  # fmt: skip
    add("--secondary-status", type=int, choices=(403, 429), default=403)
    add("--secondary-block", type=float, metavar="SECONDS",
        help="how long a refusal blocks its account (default: one --minute)")  # fmt: skip
    add("--installation-limit", type=int, metavar="N",
        help="a GitHub App installation's requests per window (default: --rate-limit)")  # fmt: skip
    add("--installation-token-ttl", type=float, default=3600.0, metavar="SECONDS")
    add("--port-file", type=Path, help="write the base URL here once listening")
    add("--verbose", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    options = {k: v for k, v in vars(args).items() if k not in NOT_SERVER_OPTIONS}
    try:
        server = StandinServer(Dataset(size=args.size, seed=args.seed), **options).start()
    except (ValueError, OSError) as exc:
        print(f"gh_assets_devtools.standin: {exc}", file=sys.stderr)
        return 2
    try:
        url = server.url
        print(f"GitHub stand-in serving {args.size} ids (seed {args.seed}) at {url}", flush=True)
        if args.port_file:
            write_atomically(args.port_file, url + "\n")
        stop.wait()
    finally:
        if args.port_file:
            with contextlib.suppress(FileNotFoundError):
                args.port_file.unlink()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

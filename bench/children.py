"""Processes the bench runs to completion (``redis-benchmark``, ``python -m bench.<module>``): one
way to start them from the repository and to turn a failure into a ``BenchError``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.figures import BenchError

REPO = Path(__file__).resolve().parents[1]


def run_child(command: list[str], *, what: str, timeout: float, tail: int = 2000) -> str:
    """``command``'s stdout, run in the repository with it on PYTHONPATH (so ``-m bench.x``
    works); a BenchError with the last ``tail`` characters of its stderr if it fails."""
    done = subprocess.run(
        command,
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"{what} failed: {done.stderr.strip()[-tail:]}")
    return done.stdout


def run_module(module: str, *args: str, what: str, timeout: float, tail: int = 2000) -> Any:
    """``python -m module *args``: the JSON its last line of output holds (the bench's children
    print their measurement last)."""
    stdout = run_child([sys.executable, "-m", module, *args], what=what, timeout=timeout, tail=tail)
    return json.loads(stdout.strip().splitlines()[-1])

"""The stand-in's command line run as a process of its own, as ``gh-assets`` and the compose
file start it: shared by the stand-in's tests of its flags."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from gh_assets_devtools import standin


@contextlib.contextmanager
def standin_command(port_file: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``python -m`` the stand-in with ``args``: its process and URL, until SIGTERM at the end of
    the block, after which it must have exited 0 and written nothing to stderr."""
    command = [sys.executable, "-m", standin.__name__, *args, "--port-file", str(port_file)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert process.poll() is None and time.monotonic() < deadline, process.stderr
            time.sleep(0.02)
        yield process, port_file.read_text().strip()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0 and stderr == ""  # quiet: no per-request lines

"""gh_assets' tests. ``RECORDINGS``: real GitHub answers and schemas kept in the repository, so a
fresh clone runs every test that replays or validates against them (recordings/README.md)."""

from pathlib import Path

RECORDINGS = Path(__file__).parent / "recordings"

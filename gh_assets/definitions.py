"""The code location: whatever ``gh_assets/defs/`` declares (``dg.load_from_defs_folder``),
built from one ``Settings`` read when Dagster loads the location (nothing is read at import
time, so ``dg check defs`` names a bad setting in one line)."""

from pathlib import Path

import dagster as dg

from gh_assets.settings import Settings, loading


def build_defs(settings: Settings | None = None) -> dg.Definitions:
    """The definitions for ``settings`` (unset: the environment's); tests build their own."""
    with loading(settings or Settings.from_env()):
        return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs()

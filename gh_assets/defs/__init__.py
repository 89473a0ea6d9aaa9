"""The code location's Dagster objects by concern, loaded by ``gh_assets.definitions`` through
``dg.load_from_defs_folder``: ``crawl/`` (pages into Redis), ``analysis/`` (frame, summary and
their checks), ``resources.py`` (GitHub, Redis, the IO managers and the executor)."""

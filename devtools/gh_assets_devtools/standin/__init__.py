"""A faithful local stand-in for GitHub's REST users API: offline demos, tests and benchmarks."""

from gh_assets_devtools.standin.admin import StandinAdmin, StandinAdminError
from gh_assets_devtools.standin.data import Dataset, StandinUser
from gh_assets_devtools.standin.server import StandinServer

__all__ = ["Dataset", "StandinAdmin", "StandinAdminError", "StandinServer", "StandinUser"]

#!/bin/sh
# The daemon's start (docker-compose.yml's `daemon`; devtools/gh_assets_devtools/topology.py
# runs it natively):
# set the github_api pool's limit explicitly, then run dagster-daemon. A fresh instance ignores
# pools.default_limit on its first burst of runs (the limit is read before the pool exists), so
# the limit is written into the instance's storage on every start; the UI and
# `dagster instance concurrency set github_api N` change it while running.
# The limit: GH_ASSETS_POOL_LIMIT, else the instance's pools.default_limit (deploy/dagster.yaml)
# -- the rule `gh-assets dev` and `gh-assets demo` follow on one machine, in the same code
# (gh_assets.pool_limit.pool_limit); 0, garbage or no limit at all stop the start in one line.
set -eu
gh-assets set-pool-limit
exec dagster-daemon run -w "${DAGSTER_WORKSPACE:-deploy/workspace.yaml}"

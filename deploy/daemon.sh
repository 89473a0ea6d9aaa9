#!/bin/sh
# The daemon's start (docker-compose.yml's `daemon`; gh_assets/local/topology.py runs it natively):
# set the github_api pool's limit explicitly, then run dagster-daemon. A fresh instance ignores
# pools.default_limit on its first burst of runs (the limit is read before the pool exists), so
# the limit is written into the instance's storage on every start; the UI and
# `dagster instance concurrency set github_api N` change it while running.
# The limit: GH_ASSETS_POOL_LIMIT, else deploy/dagster.yaml's pools.default_limit (2) -- the rule
# `gh-assets dev` and `gh-assets demo` follow on one machine (gh_assets.local.cli.pool_limit).
set -eu
dagster instance concurrency set github_api "${GH_ASSETS_POOL_LIMIT:-2}"
exec dagster-daemon run -w "${DAGSTER_WORKSPACE:-deploy/workspace.yaml}"

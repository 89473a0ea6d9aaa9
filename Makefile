# gh_assets: `make demo` crawls and summarises offline, `make dev` opens the Dagster UI,
# `make test` runs the whole suite (CI), `make check` lint and the fast tests (the edit loop),
# `make test-unit` the tests that need no server,
# `make test-compose` docker-compose.yml built and run on a Docker engine (in `make test` too).
# The first call creates the virtualenv in $(VENV). Every install takes the versions in uv.lock
# (one lock for every extra: what CI tested), through uv; after editing pyproject.toml's
# dependencies run `$(VENV)/bin/uv lock` and commit uv.lock with it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
TESTING := $(VENV)/.installed-test
DEVTOOLS := $(VENV)/.installed-dev
# The local tooling (devtools/: `gh-assets demo`/`dev`/`notebook`, the stand-in, the harnesses),
# which every extra but scale and s3 pulls in; never in the runtime (`pip install .`, the image).
DEMOING := $(VENV)/.installed-demo
# What a sync reads: the runtime's and the devtools' pyproject.toml (one uv workspace), the lock.
LOCKED := pyproject.toml devtools/pyproject.toml uv.lock
# dg (Dagster's project CLI: `dg dev`, `dg check defs`) on this virtualenv, which it then
# recognises as the project's (no mismatch warning).
DG := VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(BIN)):$$PATH $(BIN)/dg
UV := $(BIN)/uv
UV_VERSION := 0.13.9
# `uv sync` into $(VENV), refusing a uv.lock that no longer matches pyproject.toml, leaving the
# other extras' packages in place; uv trusts the system's CA store (a TLS-intercepting proxy's
# CA installed there works, as for pip).
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_SYSTEM_CERTS ?= 1
SYNC := $(UV) sync --locked --inexact --quiet

.PHONY: install demo dev test test-unit test-compose prerequisites check lint format clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "gh_assets needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(UV): | $(BIN)/python
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"

$(RUNTIME): $(LOCKED) | $(UV)
	$(SYNC)
	@touch $@

# An extra's install: `uv sync --extra NAME` for $(VENV)/.installed-NAME, then the stamps of the
# runtime and of the extras that NAME includes (INCLUDES_NAME, as pyproject.toml's extras do).
$(VENV)/.installed-%: $(LOCKED) | $(UV)
	$(SYNC) --extra $*
	@touch $@ $(RUNTIME) $(INCLUDES_$*)

INCLUDES_test := $(DEVTOOLS) $(DEMOING)
INCLUDES_dev := $(DEMOING)

install: $(RUNTIME)

demo: $(DEMOING)
	$(BIN)/gh-assets demo $(if $(PAGES),--pages $(PAGES))

dev: $(DEVTOOLS)
	$(BIN)/gh-assets dev

lint: $(TESTING)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(TESTING)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The system packages the tests need (Chromium, PostgreSQL's binaries, Docker): installed from
# apt as root, else named in one line (.ci/prerequisites).
prerequisites:
	@.ci/prerequisites

test: lint prerequisites
	$(BIN)/python -m pytest

# The compose stack alone: base images made locally if they cannot be pulled, the project's
# image, two workers, a backfill, a worker killed (gh_assets_tests/test_compose.py).
test-compose: $(TESTING) prerequisites
	$(BIN)/python -m pytest gh_assets_tests/test_compose.py -v -s

# Under 2 minutes on 2 cores: the definitions loaded as Dagster loads them (dg check defs), then
# the unit tests and the integration tests not marked slow (the tiers: pyproject.toml's markers).
check: lint
	$(DG) check defs
	$(BIN)/python -m pytest -m "unit or (integration and not slow)"

# The unit tier alone: no server, no process, seconds.
test-unit: $(TESTING)
	$(BIN)/python -m pytest -m unit

clean:
	rm -rf .data

# `make notebook`: notebooks/explore.ipynb in JupyterLab on this virtualenv, on the instance and
# data of `make demo` (DAGSTER_HOME defaults to .data/dagster_home) and on REDIS_URL or else the
# project's Redis, kept up while JupyterLab runs. NOTEBOOK_ARGS="--no-browser" go to jupyter lab.
NOTEBOOKING := $(VENV)/.installed-notebook
.PHONY: notebook

INCLUDES_notebook := $(DEMOING)

notebook: $(NOTEBOOKING)
	$(BIN)/gh-assets notebook $(NOTEBOOK_ARGS)

# `make bench`: every benchmark (crawl, writes, Redis -> pandas, memory, orchestration, limits)
# against the original design and this machine's limits, with servers of its own; prints one
# table and writes bench-results/latest.json. BENCH_ARGS="--only crawl" or "--size tiny".
BENCHING := $(VENV)/.installed-bench
.PHONY: bench

INCLUDES_bench := $(DEMOING)

bench: $(BENCHING)
	$(BIN)/python -m bench $(BENCH_ARGS)

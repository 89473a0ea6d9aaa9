# gh_assets: `make demo` crawls and summarises offline, `make dev` opens the Dagster UI,
# `make test` runs the whole suite. The first call creates the virtualenv in $(VENV).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
TESTING := $(VENV)/.installed-test

.PHONY: install demo dev test lint format clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "gh_assets needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(TESTING): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@ $(RUNTIME)

install: $(RUNTIME)

demo: $(RUNTIME)
	$(BIN)/gh-assets demo $(if $(PAGES),--pages $(PAGES))

dev: $(RUNTIME)
	$(BIN)/gh-assets dev

lint: $(TESTING)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(TESTING)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf .data

# `make bench`: every benchmark (crawl, writes, Redis -> pandas, memory, orchestration, limits)
# against the original design and this machine's limits, with servers of its own; prints one
# table and writes bench-results/latest.json. BENCH_ARGS="--only crawl" or "--size tiny".
BENCHING := $(VENV)/.installed-bench
.PHONY: bench

$(BENCHING): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	@touch $@ $(RUNTIME)

bench: $(BENCHING)
	$(BIN)/python -m bench $(BENCH_ARGS)

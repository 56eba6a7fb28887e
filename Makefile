# Two commands on a fresh machine: `make run` starts the whole service (with embedded
# PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set), `make test` tests it.
# Everything runs from the virtualenv in .venv, created and filled on first use.

# python3.11 if it is really there (a pyenv shim may exist without the version), else python3.
BOOTSTRAP_PYTHON := $(shell for p in python3.11 python3; do \
	$$p -c 'import sys' >/dev/null 2>&1 && { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
# Touched after a successful install: pip runs again only when a requirements file changes.
INSTALLED := $(VENV)/.installed
# Extra pytest arguments, e.g. `make test ARGS="-k spend -x"`.
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run test test-unit test-integration test-e2e test-ha lint bench soak services \
	stop-services clean

help:
	@echo "make run               the whole service: API, workers, beat, Flower (Ctrl-C stops it)"
	@echo "make test              lint, then every test (unit, integration, end-to-end)"
	@echo "make test-unit | test-integration | test-e2e"
	@echo "make test-ha           failovers: PostgreSQL primary and Redis master killed under load"
	@echo "make lint              ruff check, ruff format --check, mypy --strict (ledger db api worker)"
	@echo "make bench             the benchmark on a stack of its own (ARGS=\"--short --repeat 3\": medians)"
	@echo "make soak              10 minutes at half load: RSS of each process group, reconciliation"
	@echo "make services          start embedded PostgreSQL and Redis, print their URLs"
	@echo "make stop-services     stop them"
	@echo "make clean             stop them, remove .venv and .data"

install: $(INSTALLED)

$(INSTALLED): requirements.txt requirements-dev.txt
	@test -n "$(BOOTSTRAP_PYTHON)" || { echo "python3.11 or python3 is needed" >&2; exit 1; }
	test -x $(PY) || $(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -r requirements-dev.txt
	@touch $@

run: install
	$(PY) -m stack run

# Lint first: a type error fails `make test` (and so CI) before any test runs.
test: lint
	@scripts/install-test-tools
	$(PY) -m pytest $(ARGS)

test-unit: install
	$(PY) -m pytest tests/unit $(ARGS)

test-integration: install
	$(PY) -m pytest tests/integration $(ARGS)

test-e2e: install
	$(PY) -m pytest tests/e2e $(ARGS)

# Also part of `make test`. Needs Debian's pg_auto_failover and Redis Sentinel (installed
# by scripts/install-test-tools as root), or the tests skip loudly.
test-ha: install
	@scripts/install-test-tools
	$(PY) -m pytest tests/ha -m ha $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy --strict ledger db api worker

# `make bench ARGS="--repeat 3"`: every row three times, the median and the spread.
bench: install
	$(PY) -m bench $(ARGS)

# `make soak ARGS="--soak-minutes 30 --rate 200"`.
soak: install
	$(PY) -m bench --soak $(ARGS)

services: install
	$(PY) -m stack services

stop-services: install
	$(PY) -m stack stop-services

clean:
	@if [ -x $(PY) ]; then $(PY) -m stack stop-services || true; fi
	rm -rf $(VENV) .data

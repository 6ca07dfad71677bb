# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test fuzz lint install install-dev bench clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

## Start the whole platform on http://localhost:8080 (embedded PostgreSQL and Redis unless configured).
run: install
	$(PY) -m sapien.launcher run

## Lint, type-check and run the whole suite against real PostgreSQL, broker and worker processes.
test: install-dev lint
	$(PY) -m sapien.launcher test -- $(PY) -m pytest $(PYTEST_ARGS)

## Fuzz every operation of the OpenAPI schema at length, then chained (stateful) scenarios; FUZZ_SEED=N repeats a run.
FUZZ_EXAMPLES ?= 300
FUZZ_SEED ?= $(shell date +%s)
fuzz: install-dev
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m sapien.launcher test -- \
		$(PY) -m pytest tests/fuzz --hypothesis-seed=$(FUZZ_SEED) $(PYTEST_ARGS)

## Ruff, mypy, and the import direction of docs/architecture.md (import-linter, contracts in pyproject.toml).
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo

## Benchmark the whole pipeline on loopback (with a peer and same-run limits); BENCH_ARGS="--quick" for a smoke run.
bench: install-dev
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

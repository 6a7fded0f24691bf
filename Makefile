# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The broker tests mostly wait (group joins, restarts, timeouts): 3 processes share the 2 cores. Each module runs
# in one process (loadfile), the slowest start first (tests/conftest.py sorts them; no reorder by size).
PARALLEL ?= -n 3 --dist loadfile --no-loadscope-reorder

.PHONY: demo test unit integration e2e bench venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/loyalty demo

test: $(STAMP)
	bash .ci/system-deps
	$(BIN)/python -m pytest -q $(PARALLEL) --durations=25 tests

unit: $(STAMP)
	$(BIN)/python -m pytest -q $(PARALLEL) tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest -q $(PARALLEL) tests/integration

e2e: $(STAMP)
	$(BIN)/python -m pytest -q $(PARALLEL) tests/e2e

bench: $(STAMP)
	$(BIN)/loyalty bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

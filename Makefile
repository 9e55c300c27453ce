# `make run` and `make test` work on a fresh machine: each creates .venv if missing, installs the
# package (once; re-installs only when setup.cfg or pyproject.toml change), then runs.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# What `make run` and `make demo` need: the package and the study's statistics and plots. `make
# test` adds every extra its tests need on top (STAMP).
RUN_STAMP := $(VENV)/.installed-run
# torch is installed first, pinned: an unpinned resolve pulls a multi-GB CUDA build here.
TORCH ?= torch==2.13.0
# verl (and tensordict, pyvers) without their requirements: verl pins transformers<5.11 and pulls
# its trainer's stack (wandb, tensorboard, peft); the adapter needs only what `dev` lists.
VERL_NO_DEPS ?= verl==0.9.1 tensordict==0.10.0 pyvers==0.1.0
PYTEST_WORKERS ?= 2
export NO_MKDOCS_2_WARNING := 1

.DEFAULT_GOAL := help
.PHONY: help install chromium run demo test test-fast lint format docs docs-serve bench clean distclean

help:
	@echo "make run     install (if needed; 2-3 min the first time) and run the quick reward study:"
	@echo "             42 runs, about 5 min on 2 idle cores, up to ~20 min when the cores are shared"
	@echo "make demo    install (if needed) and play demo transcripts with the LLM voice"
	@echo "make test    install (if needed), lint, run the whole test suite, build the docs (CI)"
	@echo "make test-fast  the fast tier: tests not marked slow/llm/server/benchmark (~2 min)"
	@echo "make lint    ruff check + ruff format --check"
	@echo "make format  ruff format + ruff check --fix"
	@echo "make docs    build the docs site (strict) into site/"
	@echo "make bench   run benchmarks/throughput.py"
	@echo "make clean   remove build outputs and caches (distclean also removes .venv)"

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Package __init__ files are prerequisites too: an editable install made before a package had its
# __init__.py records it as a namespace package (the package then imports without its contents).
PKG_INITS := $(wildcard dialogue_gym/__init__.py dialogue_gym/*/__init__.py envs/__init__.py)

$(RUN_STAMP): setup.cfg pyproject.toml $(PKG_INITS) | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e '.[study]'
	touch $@

$(STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install -e '.[dev]'
	$(BIN)/python -m pip install --no-deps $(VERL_NO_DEPS)
	touch $@

install: $(STAMP)

# The UI's browser tests (tests/test_ui_browser.py) drive the distribution's Chromium through
# Playwright; nothing downloads a browser at run time.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

run: $(RUN_STAMP)
	$(BIN)/dialogue-gym study --quick

demo: $(RUN_STAMP)
	$(BIN)/dialogue-gym demo

# pyproject.toml's addopts leave the slow, llm, server and benchmark tiers out of a plain
# `pytest`; `-m ""` clears that selection, so CI runs every test. HYPOTHESIS_PROFILE=ci gives the
# fuzz suite (tests/test_fuzz.py) its larger example budget (tests/conftest.py).
test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	HYPOTHESIS_PROFILE=ci DIALOGUE_GYM_STRICT_EXTRAS=1 $(BIN)/pytest -m "" -n $(PYTEST_WORKERS)
	$(BIN)/mkdocs build --strict

test-fast: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	$(BIN)/mkdocs serve

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf build dist site *.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

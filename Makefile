# ReplyDesk — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# Keep Python's bytecode caches (and pytest's rewritten test modules) even where the shell disables them:
# without them every test process recompiles ~330 modules, ~10 s of each `make test-fast`.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test test-fast lint bench llm clean-venv eval

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# torch first: `torch==2.13.0` takes the local CPU build; a plain `torch` would pull a CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/replydesk kb build
	$(BIN)/replydesk serve --host 127.0.0.1 --port 8000

PYTHON_DIRS := service kb_index eval bench tests scripts

# The whole suite: unit tier, PostgreSQL storage tests, the eval baseline gate and the slow end-to-end tests.
test: $(STAMP)
	@bash scripts/postgres.sh || echo "make test: PostgreSQL could not be started (reason above): the PostgreSQL storage tests will FAIL."
	@bash scripts/browser.sh || echo "make test: Chromium or axe-core could not be installed (reason above): the browser tests will FAIL."
	@bash scripts/redis.sh || echo "make test: Redis could not be started (reason above): the shared rate-limit tests will FAIL."
	$(BIN)/pytest -n 2 --dist loadfile

# The inner loop: the unit tier only (no PostgreSQL, no Redis, no ../shared datasets, no eval gate, no slow
# end-to-end tests).
test-fast: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile -m "not slow and not postgres and not shared and not redis"

# ruff (lint + format), the type checker, the import-layers contract, the help articles, and the OpenAPI
# schema (Redocly CLI, pinned in scripts/openapi).
lint: $(STAMP)
	$(BIN)/ruff check $(PYTHON_DIRS)
	$(BIN)/ruff format --check $(PYTHON_DIRS)
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/replydesk kb lint
	PYTHON=$(abspath $(BIN))/python bash scripts/openapi_lint.sh

bench: $(STAMP)
	$(BIN)/python -m bench.run

eval: $(STAMP)
	$(BIN)/replydesk eval run eval/suites/default.yaml --out reports/

# A small real LLM (Gemma 3 270M via llama-cpp-python) on 127.0.0.1:8081 for recording drafting cassettes.
# Not part of `make test`. Stop it with `bash scripts/llm_server.sh stop`.
llm:
	bash scripts/llm_server.sh start

clean-venv:
	rm -rf $(VENV)

# The README's two commands: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
INTEROP_STAMP := tests/interop/node_modules/.installed

.PHONY: run test lint fmt install interop-deps frontend bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,postgres,redis,dev]'
	touch $(STAMP)

install: $(STAMP)

$(INTEROP_STAMP): tests/interop/package.json tests/interop/package-lock.json
	cd tests/interop && npm ci --no-audit --no-fund --loglevel=error
	touch $(INTEROP_STAMP)

interop-deps: $(INTEROP_STAMP)

# The browser editor: npm ci when the lock changes, esbuild into frontend/dist when dist is
# missing or older than any source (build.mjs writes dist/index.html last).
FRONTEND_STAMP := frontend/node_modules/.installed
FRONTEND_SRC   := $(shell find frontend/src -type f 2>/dev/null) frontend/build.mjs

$(FRONTEND_STAMP): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $(FRONTEND_STAMP)

frontend/dist/index.html: $(FRONTEND_STAMP) $(FRONTEND_SRC)
	cd frontend && node build.mjs

frontend: frontend/dist/index.html

run: install frontend
	$(BIN)/collab serve

test: install interop-deps frontend
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check collab storage tests
	$(BIN)/ruff format --check collab storage tests
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff check --fix collab storage tests
	$(BIN)/ruff format collab storage tests

clean:
	rm -rf $(VENV) tests/interop/node_modules

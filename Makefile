# The README's two commands: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
INTEROP_STAMP := tests/interop/node_modules/.installed

.PHONY: run test lint fmt install interop-deps frontend package bench bench-quick bench-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,postgres,redis,amqp,dev]'
	touch $(STAMP)

install: $(STAMP)

$(INTEROP_STAMP): tests/interop/package.json tests/interop/package-lock.json
	cd tests/interop && npm ci --no-audit --no-fund --loglevel=error
	touch $(INTEROP_STAMP)

interop-deps: $(INTEROP_STAMP)

# y-webrtc for tests/browser/test_webrtc.py (bundled by the test itself)
WEBRTC_STAMP := tests/browser/webrtc/node_modules/.installed

$(WEBRTC_STAMP): tests/browser/webrtc/package.json tests/browser/webrtc/package-lock.json
	cd tests/browser/webrtc && npm ci --no-audit --no-fund --loglevel=error
	touch $(WEBRTC_STAMP)

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

# After the frontend stamp is defined: a prerequisite is expanded when make reads the rule.
# The TypeScript: Biome (format, lint, import order; frontend/biome.json) and tsc --noEmit.
lint: install $(FRONTEND_STAMP)
	$(BIN)/ruff check collab storage tests setup.py
	$(BIN)/ruff format --check collab storage tests setup.py
	$(BIN)/mypy
	cd frontend && npm run --silent lint && npm run --silent check

fmt: install $(FRONTEND_STAMP)
	$(BIN)/ruff check --fix collab storage tests setup.py
	$(BIN)/ruff format collab storage tests setup.py
	cd frontend && npm run --silent fmt

# The sdist and the wheel, into dist/. As `python -m build` does, the wheel is built from the
# sdist, so setup.py builds the editor into it from the sources there (npm ci + esbuild; ~15 s).
package: install
	$(BIN)/python -m build --outdir dist .

run: install frontend
	$(BIN)/collab serve

test: install interop-deps $(WEBRTC_STAMP) frontend bench-deps
	$(BIN)/pytest

# The peer benchmark (bench/run.py): our server against the reference @y/websocket-server and
# @hocuspocus/server from npm, interleaved, 3 repetitions of issue 16's targets and 1 of the other
# scenarios (~40 min on 2 cores); writes docs/benchmarks.md and docs/img/bench-*.png.
# `make bench-quick` (or BENCH_QUICK=1 make bench): each scenario once, scaled down, a few minutes.
BENCH_STAMP    := bench/node_modules/.installed
BENCH_PY_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): bench/package.json bench/package-lock.json
	cd bench && npm ci --no-audit --no-fund --loglevel=error
	touch $(BENCH_STAMP)

$(BENCH_PY_STAMP): $(STAMP) bench/requirements.txt
	$(BIN)/pip install --quiet -r bench/requirements.txt
	touch $(BENCH_PY_STAMP)

bench-deps: $(BENCH_STAMP) $(BENCH_PY_STAMP)

bench: bench-deps
	$(BIN)/python bench/run.py $(if $(BENCH_QUICK),--quick)

bench-quick: bench-deps
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) tests/interop/node_modules bench/node_modules build dist

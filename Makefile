# The everyday commands (CONTRIBUTING.md). VENV is the venv with pycni and
# its test, build and lint extras (scripts/install-deps.sh makes .venv).
#
#   make lint    ruff over the tree, mypy over [tool.mypy] modules
#   make unit    install the tree into VENV, run tests/unit (no root needed)
#   make test    everything, as CI does (./test.sh: deps, lint, build, all tests; root)
#   make build   the standalone plugin executables in dist/cni-bin (./build.sh)
#   make bench   pycni against the reference plugins (bench/bench.py; root)
#                e.g. make bench BENCH_ARGS="-n 200 --case version"

VENV ?= .venv
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?= -q
BENCH_ARGS ?=

.PHONY: lint unit test build bench deps install

lint:
	$(PYTHON) scripts/lint.py

# tests/unit/test_import_sets.py needs a regular (non-editable) install of
# the tree as it is now. setuptools builds in build/lib and never removes a
# module the tree no longer has: without the rm it would be installed again.
install:
	rm -rf build/lib
	$(PYTHON) -m pip install -q --no-deps --force-reinstall .

unit: install
	$(PYTHON) -m pytest tests/unit $(PYTEST_ARGS)

test:
	./test.sh

build:
	PYCNI_BUILD_VENV=$(VENV) ./build.sh

bench: install
	$(PYTHON) bench/bench.py $(BENCH_ARGS)

deps:
	scripts/install-deps.sh

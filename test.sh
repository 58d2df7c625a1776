#!/usr/bin/env bash
# Install everything needed and run pycni's whole test suite (as root).
# Real-kernel tests build their own network namespaces and never touch the
# machine's own interfaces, routes, sysctls or firewall.
#
#   ./test.sh                 everything
#   ./test.sh tests/unit      pytest arguments are passed through
set -euo pipefail
cd "$(dirname "$0")"

scripts/install-deps.sh
# Lint and type check first: a finding fails the run (and CI) before any
# test runs (CONTRIBUTING.md "Conventions checked").
.venv/bin/python scripts/lint.py
# Standalone binaries (static launchers + static CPython); tests/integration/test_binaries.py
# smoke-tests them.
PYCNI_BUILD_VENV=.venv ./build.sh
exec .venv/bin/python -m pytest "${@:-tests}"

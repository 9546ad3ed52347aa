#!/usr/bin/env bash
# Set up .venv (once) and run the whole test suite. Extra arguments go to pytest.
# With --lint first (as CI runs it), `ruff check` and `mypy` run before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
lint=0
if [ "${1:-}" = "--lint" ]; then
    lint=1
    shift
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ] \
    || [ scripts/setup.sh -nt .venv/.installed ]; then
    bash scripts/setup.sh .venv
    touch .venv/.installed
fi
if [ "$lint" = 1 ]; then
    .venv/bin/ruff check .
    bash scripts/typecheck.sh  # the settings are in pyproject.toml's [tool.mypy]
fi
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Set up .venv (once) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
    bash scripts/setup.sh .venv
    touch .venv/.installed
fi
exec .venv/bin/python -m pytest "$@"

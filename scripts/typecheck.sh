#!/usr/bin/env bash
# mypy over the installed names (lookalike.indexer, lookalike.search, ...). mypy cannot
# follow setuptools' package-dir mapping of an editable install, so this lays the
# installed package out as symbolic links under build/typecheck/ and checks that.
# Usage: scripts/typecheck.sh [MYPY ARGS...]   (the settings are in pyproject.toml)
set -euo pipefail
cd "$(dirname "$0")/.."
view=build/typecheck/lookalike
rm -rf build/typecheck
mkdir -p "$view"
for entry in lookalike/*.py lookalike/commands; do
    ln -s "../../../$entry" "$view/"
done
for package in indexer search classifier webapp; do
    ln -s "../../../$package" "$view/$package"
done
exec "${MYPY:-.venv/bin/mypy}" "$@"

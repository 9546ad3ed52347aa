#!/usr/bin/env bash
# Set up .venv (once), index FOLDER into LIBRARY and serve the web app on http://127.0.0.1:PORT.
# Usage: scripts/serve.sh FOLDER [LIBRARY] [PORT]
set -euo pipefail
folder="${1:?usage: scripts/serve.sh FOLDER [LIBRARY] [PORT]}"
library="${2:-${LOOKALIKE_LIBRARY:-$HOME/.local/share/lookalike/library}}"
port="${3:-8000}"
cd "$(dirname "$0")/.."
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ] \
    || [ scripts/setup.sh -nt .venv/.installed ]; then
    bash scripts/setup.sh .venv
    touch .venv/.installed
fi
.venv/bin/lookalike index "$folder" --library "$library" --labels-from-folders --labels-per-class 5 \
    --unlabelled-folder distractors
exec .venv/bin/lookalike serve --library "$library" --port "$port"

#!/usr/bin/env bash
# The wheel check (a CI step): build the wheel from this checkout, check that it holds
# one top-level name (lookalike) with every module and its package data, install it into
# a fresh virtual environment with its default dependencies only (no extras, no pip
# cache), check that no torch came with it and that what it installed stays within
# 700 MiB (du, the environment after the install less the empty one: pip and setuptools
# were there before), then index a few dev images with it and check that a search for
# one finds it first.
# Usage: bash scripts/check_wheel.sh   (PYTHON: the interpreter, default python3;
#        LOOKALIKE_DEV_DATA: the dev data, default ../shared/data/caltech101-dev)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
python="${PYTHON:-python3}"
data="$(cd "${LOOKALIKE_DEV_DATA:-../shared/data/caltech101-dev}" && pwd)"
limit_mb=700  # the issue's bound on the default install
start=$SECONDS
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Build from a copy of the files git knows (tracked, or new and not ignored): a build/
# folder left by an earlier build would otherwise put its stale modules in the wheel.
mkdir "$work/src"
git ls-files -z --cached --others --exclude-standard \
    | xargs -0 -I{} sh -c '[ ! -e "$1" ] || cp --parents -P "$1" "$2"' _ {} "$work/src"
"$python" -m pip wheel -q --no-deps --no-cache-dir -w "$work/dist" "$work/src"
wheel="$(echo "$work"/dist/lookalike-*.whl)"
"$python" - "$wheel" "$repo" <<'EOF'
import sys
import zipfile
from pathlib import Path

wheel, repo = sys.argv[1], Path(sys.argv[2])
names = {n for n in zipfile.ZipFile(wheel).namelist() if not n.endswith("/")}
top = {n.split("/")[0] for n in names if ".dist-info/" not in n}
if top != {"lookalike"}:
    sys.exit(f"the wheel's top-level names are {sorted(top)}, not only lookalike")
# Every module and data file of the tree, where setuptools' package-dir puts it.
where = {"lookalike": "lookalike", "indexer": "lookalike/indexer", "search": "lookalike/search",
         "classifier": "lookalike/classifier", "webapp": "lookalike/webapp"}
expected = {
    f"{where[folder]}/{path.relative_to(repo / folder).as_posix()}"
    for folder in where
    for path in (repo / folder).rglob("*")
    if path.is_file() and "__pycache__" not in path.parts
    and (path.suffix == ".py" or "templates" in path.parts or "static" in path.parts
         or path.name == "imagenet_names.txt")
}
packaged = {n for n in names if ".dist-info/" not in n}
if expected != packaged:
    sys.exit(f"missing from the wheel: {sorted(expected - packaged)}; "
             f"not in the tree: {sorted(packaged - expected)}")
print(f"wheel: {Path(wheel).name}, {len(packaged)} files under lookalike/ only")
EOF

"$python" -m venv "$work/venv"
venv="$work/venv"
empty_mb=$(du -sm "$venv" | cut -f1)
"$venv/bin/python" -m pip install -q --no-cache-dir "$wheel"
"$venv/bin/python" - <<'EOF'
import sys
from importlib import metadata

installed = {d.metadata["Name"].lower() for d in metadata.distributions()}
heavy = sorted(n for n in installed if n in {"torch", "torchvision", "timm", "open-clip-torch",
               "triton", "ray"} or n.startswith("nvidia-"))
if heavy:
    sys.exit(f"the default install pulled in {heavy}")
EOF
venv_mb=$(du -sm "$venv" | cut -f1)
size_mb=$((venv_mb - empty_mb))
echo "lean venv: ${size_mb} MiB installed (limit ${limit_mb} MiB), ${venv_mb} MiB in all" \
    "with the empty venv's ${empty_mb} MiB; no torch"
if [ "$size_mb" -gt "$limit_mb" ]; then
    echo "the default install is over ${limit_mb} MiB" >&2
    exit 1
fi

# A few dev images, a temporary library and model cache; run outside the checkout so
# that nothing but the installed package can be imported.
mkdir -p "$work/photos"
for class in Faces Leopards accordion; do
    mkdir "$work/photos/$class"
    for image in $(ls "$data/images/$class" | head -4); do
        ln -s "$data/images/$class/$image" "$work/photos/$class/$image"
    done
done
cd "$work"
export LOOKALIKE_CACHE="$work/cache"
"$venv/bin/lookalike" index "$work/photos" --library "$work/lib" --labels-from-folders -q
query="$(ls "$work"/photos/Leopards/* | head -1)"
"$venv/bin/lookalike" search "$query" --library "$work/lib" -k 3 --json > "$work/search.json"
"$venv/bin/python" - "$work/search.json" "$query" <<'EOF'
import json
import sys

doc = json.load(open(sys.argv[1]))
first = doc[0]["results"][0]
if first["path"] != sys.argv[2]:
    sys.exit(f"searching {sys.argv[2]} found {first['path']} first")
print(f"index + search from the wheel: the query found itself first (score {first['score']:.4f})")
EOF
echo "wheel check passed in $((SECONDS - start)) s"

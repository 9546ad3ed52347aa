# One place for the project's chores. `make test` and `make serve` set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
IMAGES ?= ../shared/data/caltech101-dev
LIBRARY ?= $(HOME)/.local/share/lookalike/library
PORT ?= 8000

.PHONY: setup test test-fast lint typecheck format bench serve clean

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)
	touch $@

setup: $(VENV)/.installed

test:
	bash scripts/test.sh -q

test-fast: setup
	$(PY) -m pytest -q -m "not browser and not ray"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	MYPY=$(VENV)/bin/mypy bash scripts/typecheck.sh

typecheck: setup
	MYPY=$(VENV)/bin/mypy bash scripts/typecheck.sh

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Every benchmark in scripts/, one after another. The first run indexes the dev data
# (images/ and distractors/) into the bench cache, $LOOKALIKE_CACHE/bench or
# ~/.cache/lookalike/bench (twice: plain and with copy detection), and bench_web builds
# its 100k library there; later runs reuse them. Sizes are the scripts' defaults except
# where noted, so that each benchmark takes a few minutes on the 2-core machine (all of
# them: 29 minutes while other jobs ran, with the dev libraries already built):
# bench_search and bench_copy_index at 100k vectors (the README's 1M rows need ~8 GB of
# disk and ~5 GB of memory), bench_copies with 50 sources and 1,000 distractors (the
# README's rows: 100 and 3,000). bench_ray needs the ray extra, and the references of
# bench_index and bench_web need torch (the test set-up installs both).
bench: setup
	$(PY) scripts/bench_index.py
	$(PY) scripts/bench_search.py --n 100000
	$(PY) scripts/bench_copy_index.py --n 100000
	$(PY) scripts/bench_copies.py --sources 50 --extra 1000
	$(PY) scripts/probe_copy_model.py sscd_distilled
	$(PY) scripts/bench_duplicates.py --seeds 3
	$(PY) scripts/bench_look_alikes.py --originals 80 --seeds 3
	$(PY) scripts/bench_neighbours.py
	$(PY) scripts/bench_tagging.py
	$(PY) scripts/bench_clusters.py
	$(PY) scripts/bench_web.py
	$(PY) scripts/bench_search_filters.py
	$(PY) scripts/bench_ray.py
	$(PY) scripts/bench_map.py

serve:
	bash scripts/serve.sh $(IMAGES) $(LIBRARY) $(PORT)

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .mypy_cache test-artifacts

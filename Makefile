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

bench: setup
	$(PY) scripts/bench_index.py
	$(PY) scripts/bench_search.py --n 100000
	$(PY) scripts/bench_copies.py
	$(PY) scripts/bench_tagging.py
	$(PY) scripts/bench_clusters.py
	$(PY) scripts/bench_web.py
	$(PY) scripts/bench_ray.py

serve:
	bash scripts/serve.sh $(IMAGES) $(LIBRARY) $(PORT)

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .mypy_cache test-artifacts

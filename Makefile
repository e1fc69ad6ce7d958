# The README's two commands: `make run` (every suite on the model, reports in reports/out)
# and `make test` (the framework's own tests, lint, and the suites on the model).
# Each sets itself up on a bare machine: system packages, then a virtual environment.

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.apflab-installed
OUT    ?= reports/out

# command:package pairs the model targets need (see targets/host-packages.sh).
HOST_PACKAGES := python3:python3 venv:python3-venv git:git

.PHONY: run test setup lint bench clean

run: setup
	$(PY) -m apflab run --out $(OUT)

test: setup lint
	$(PY) -m apflab run --out $(OUT)
	$(PY) -m pytest tests

setup: $(STAMP)

$(STAMP): pyproject.toml
	@targets/host-packages.sh $(HOST_PACKAGES)
	python3 -c 'import sys; assert sys.version_info >= (3, 10), "apflab needs Python 3.10 or newer"'
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

lint: setup
	$(PY) -m ruff check .

bench: setup
	$(PY) bench/suite_speed.py

clean:
	rm -rf $(OUT) build *.egg-info

# Two commands on a fresh machine (needs only Python 3.11): `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= default
STAGES ?=

.PHONY: setup run test lint format unit quick nbval lab clean-outputs

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, exact pin: its CPU wheel (an unpinned torch pulls a multi-GB CUDA build)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

## run: every numbered notebook, executed by papermill with params/$(PROFILE).yaml -> outputs/$(PROFILE)/
run: setup
	$(PY) -m stlib.pipeline --params params/$(PROFILE).yaml $(if $(STAGES),--stages $(STAGES),)

## test: unit tests + nbval over every notebook on the smoke profile (STLIB_PARAMS: a tiny synthetic graph, 2 epochs,
## minutes); the notebooks' own parameters are the default profile's (as long as make run: make nbval)
test: setup lint
	STLIB_OUTPUT_DIR=$${STLIB_OUTPUT_DIR:-$$(mktemp -d)} $(PY) -m pytest -q -p no:cacheprovider tests
	STLIB_PARAMS=params/smoke.yaml STLIB_OUTPUT_DIR=$${STLIB_OUTPUT_DIR:-$$(mktemp -d)} $(PY) -m pytest -q -p no:cacheprovider --nbval-lax notebooks

## nbval: nbval over the notebooks as they stand, i.e. with the default profile's parameters (as long as make run)
nbval: setup
	STLIB_OUTPUT_DIR=$${STLIB_OUTPUT_DIR:-$$(mktemp -d)} $(PY) -m pytest -q -p no:cacheprovider --nbval-lax notebooks

## lint: ruff's linter and formatter check (rules in pyproject.toml); `make format` rewrites in place
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

unit: setup
	$(PY) -m pytest -q tests

## quick: the unit tests without the slow ones (torchrun, papermill, kills, compile, subprocesses and worker processes);
## make test runs them all
quick: setup
	$(PY) -m pytest -q -m "not slow" tests

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=. $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) $(LAB_ARGS)

clean-outputs:
	rm -rf outputs/default outputs/default-interactive outputs/runs outputs/ledger.csv

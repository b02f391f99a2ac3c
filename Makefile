# Two commands on a fresh machine: `make book` and `make test`. Both call `setup` first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= embedded

.PHONY: setup test lint book clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks book/_ext

# pytest exits 5 when it collected nothing: that is not a failure of the code under test.
test: lint
	$(PY) -m pytest -q tests --nbval-lax book/*.ipynb -p no:cacheprovider; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

book: setup
	$(PY) -m actiondistill book --profile $(PROFILE)

clean:
	rm -rf _build book/_executed

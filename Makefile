# Two set-up commands for a fresh machine (see README):
#   make demo   - create .venv, install mridiff, run the demo on the bundled default model
#   make test   - create .venv with the dev extra, run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test install install-dev lint

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

install: $(PY)
	$(PIP) install -q -e .

install-dev: $(PY)
	$(PIP) install -q -e '.[dev,data]'

demo: install
	$(VENV)/bin/mridiff demo --overwrite

test: install-dev
	$(PY) -m pytest -q tests

lint: install-dev
	$(VENV)/bin/ruff check mridiff tests data_prep benchmarks
	$(VENV)/bin/mypy mridiff

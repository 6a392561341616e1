# Quickstart targets. Only Python 3.11+ with pip is needed: everything else (uv, tox) is
# bootstrapped into .venv from the package registry.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
# First-party distributions installed by `make install` (editable, for development).
FIRST_PARTY := -e ./core -e ".[all]"

.PHONY: install run test lint types bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Backplane needs Python 3.11 or newer, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)

$(UV): $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

install: $(UV)
	$(UV) pip install --python $(BIN)/python --quiet $(FIRST_PARTY) "tox>=4.20" "tox-uv>=1.11"

run: install
	$(BIN)/backplane db upgrade
	$(BIN)/backplane demo seed
	$(BIN)/backplane serve

test: install
	$(BIN)/tox run

lint: install
	$(BIN)/tox run -e lint

types: install
	$(BIN)/tox run -e types

bench: install
	$(BIN)/tox run -e bench

clean:
	rm -rf $(VENV) .tox dist build

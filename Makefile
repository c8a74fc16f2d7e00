# The two quick-start commands: `make run` and `make test` (see README.md).
VENV ?= .venv
CORES ?= 2
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: run test lint setup
setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

run: setup
	$(BIN)/snakemake --cores $(CORES)

lint: setup
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .

test: lint
	$(BIN)/pytest

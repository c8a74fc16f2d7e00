# The two quick-start commands: `make run` and `make test` (see README.md).
VENV ?= .venv
CORES ?= 2
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: run test test-local lint setup setup-slurm cluster
setup: $(VENV)/.installed
setup-slurm: $(VENV)/.installed-slurm

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-slurm: $(VENV)/.installed requirements-slurm.txt
	$(BIN)/pip install --quiet -r requirements-slurm.txt
	touch $@

run: setup
	$(BIN)/snakemake --cores $(CORES)

lint: setup
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .

# A local single-node SLURM cluster for the tests (needs root; installs the
# Debian packages when missing). Stop it with: python3 tests/slurm/cluster.py stop
cluster:
	timeout -k 10 300 $(PYTHON) tests/slurm/cluster.py start

# Everything, the SLURM tests included: what CI runs.
test: lint setup-slurm cluster
	$(BIN)/pytest

# Without root: everything but the SLURM tests.
test-local: lint
	$(BIN)/pytest -m "not slurm"

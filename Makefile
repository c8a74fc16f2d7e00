# The two quick-start commands: `make run` and `make test` (see README.md).
VENV ?= .venv
# The tests' environment also has the SLURM executor plugin, which makes every
# Snakemake start ask SLURM for its configuration (~9 s when no controller
# answers), so it is kept apart from the environment `make run` uses.
TEST_VENV ?= .venv-test
CORES ?= 2
PYTHON ?= python3
# The tests other than SLURM's on two processes, a file each at a time (its
# fixtures are the file's): most wait on Snakemake's start-up and on their
# runs' stages, which leave a core idle (load 1.0 on two cores, one process).
PARALLEL = -n 2 --dist loadfile

.PHONY: run test test-local setup cluster
setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-run.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(TEST_VENV)/.installed: requirements.txt requirements-run.txt requirements-slurm.txt
	$(PYTHON) -m venv $(TEST_VENV)
	$(TEST_VENV)/bin/pip install --quiet --upgrade pip
	$(TEST_VENV)/bin/pip install --quiet -r requirements-slurm.txt
	$(PYTHON) tests/evict_from_page_cache.py $(TEST_VENV)
	touch $@

run: setup
	$(VENV)/bin/snakemake --cores $(CORES)

# A local three-node SLURM cluster for the tests (needs root; installs the
# Debian packages when missing). Stop it with: python3 tests/slurm/cluster.py stop
cluster:
	timeout -k 10 300 $(PYTHON) tests/slurm/cluster.py start

# Everything, the SLURM tests included: what CI runs. The SLURM tests spend
# their time waiting for the cluster, so they run beside the others, in a
# session of their own that Ctrl-C stops too, with their own temporary
# directory and no cache (the other pytest writes it); their report follows.
test: $(TEST_VENV)/.installed cluster
	$(TEST_VENV)/bin/snakemake --lint
	$(TEST_VENV)/bin/snakefmt --check .
	@slurm=$$(mktemp -d) || exit 1; \
	setsid $(TEST_VENV)/bin/pytest -m slurm -p no:cacheprovider --basetemp=$$slurm/tmp > $$slurm/log 2>&1 & \
	slurm_tests=$$!; trap 'kill -TERM -- -$$slurm_tests 2>/dev/null' INT TERM; \
	$(TEST_VENV)/bin/pytest -m "not slurm" $(PARALLEL); others=$$?; \
	wait $$slurm_tests; slurm_status=$$?; cat $$slurm/log; \
	test $$slurm_status = 0 && rm -rf $$slurm; \
	test $$others = 0 && test $$slurm_status = 0

# Without root: everything but the SLURM tests.
test-local: setup
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakefmt --check .
	$(VENV)/bin/pytest -m "not slurm" $(PARALLEL)

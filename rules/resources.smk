# What each job asks the scheduler for: memory from the budget, run time from
# the bytes it handles (on a cluster, these become sbatch's --mem and -t).
import math

from snakeshuf.planning.memory import CLUSTER_JOB_OVERHEAD_MB

# Cluster run times assume a tenth of the slowest stage's speed measured here
# (~150 MB/s per core): shared filesystems and busy nodes are slower.
SLOWEST_EXPECTED_MB_PER_S = 15
RUNTIME_MARGIN_MINUTES = 10


def get_budget_mb(wildcards, attempt):
    """The job's own memory budget. A retry gets more; the output never depends on it."""
    return config["memory_mb"] * attempt


def get_mem_mb(wildcards, attempt):
    """What the scheduler is asked for: the budget and, on a cluster, Snakemake's
    own processes that run in the job (see CLUSTER_JOB_OVERHEAD_MB)."""
    overhead = CLUSTER_JOB_OVERHEAD_MB if workflow.non_local_exec else 0
    return get_budget_mb(wildcards, attempt) + overhead


def runtime_for(nbytes):
    """Minutes to ask a cluster for a job that handles `nbytes` (and more on a retry)."""

    def get_runtime(wildcards, attempt):
        seconds = nbytes / 2**20 / SLOWEST_EXPECTED_MB_PER_S
        return attempt * (RUNTIME_MARGIN_MINUTES + math.ceil(seconds / 60))

    return get_runtime

import atexit
import json
import math
import os
import shlex
import sys

sys.path.insert(0, os.path.join(workflow.basedir, "scripts"))

from snakeshuf.config import check_config, separator_byte
from snakeshuf.plan import (
    ConfigError,
    make_paired_plan,
    make_plan,
    plan_file_name,
    plan_file_text,
    scratch_dir,
)
from snakeshuf.memory import CLUSTER_JOB_OVERHEAD_MB
from snakeshuf import layout
from snakeshuf.sheet import read_sample_sheet
from snakeshuf.records import InputError, common_header
from snakeshuf.jobs import atomic_write
from snakeshuf.parts import (
    column_names,
    layout_spec,
    output_codec,
    output_paths,
    read_layout,
)
from snakeshuf.disk import check_writable, shortfalls
from snakeshuf.lock import OutputLock
from snakeshuf.namespace import RunFiles, check_names
from snakeshuf.resume import clear_stale_incomplete_marker, remove_leftovers


def fail(error):
    """Stop before any job runs, with the message alone (no traceback)."""
    print(f"snakeshuf: error: {error}", file=sys.stderr)
    sys.exit(1)


def literal(path):
    """A path used inside a Snakemake pattern: braces are not wildcards."""
    return path.replace("{", "{{").replace("}", "}}")


def first_header(plan, lines, separator):
    return common_header(plan.files[:1], lines, separator) if lines else b""


def make_input_plan(config, sheet, run):
    """The plan for aligned files ('paired'), a sample sheet or 'inputs'."""
    if config["paired"]:
        if config["header_lines"]:
            raise ConfigError(
                "config keys 'paired' and 'header_lines' cannot be combined: remove the headers first"
            )
        return make_paired_plan(config["paired"], run, config["memory_mb"])
    return make_plan(
        read_sample_sheet(sheet, SHEET_SCHEMA) if sheet else config["inputs"],
        run,
        config["memory_mb"],
        config["chunk_mb"],
        sheet=sheet,
    )


def owned_files(outputs):
    """The files and directories this run writes (see snakeshuf.namespace)."""
    scratch = scratch_dir(config["scratch"], config["output"])
    name = os.path.basename(scratch)
    directories = (
        scratch,
        os.path.join("logs", name),
        os.path.join("benchmarks", name),
    )
    return RunFiles(config["output"], tuple(outputs), directories)


SHEET_SCHEMA = os.path.join(workflow.basedir, "config", "sample_sheet.schema.yaml")

try:
    check_config(config, os.path.join(workflow.basedir, "config", "schema.yaml"))
    LAYOUT = read_layout(config["splits"], config["shards"])
    # Aligned inputs have an output per column, named after the first group.
    COLUMNS = column_names(config["paired"][0]) if config["paired"] else None
    OUTPUTS = output_paths(config["output"], LAYOUT, COLUMNS)
    RUN_FILES = owned_files(OUTPUTS)
    check_names(RUN_FILES)
    SHEET = config["sample_sheet"]
    PLAN = make_input_plan(config, SHEET, RUN_FILES)
    HEADER_LINES = config["header_lines"]
    # Every process reads the first input's header (its length goes on the job
    # command lines); the main process checks all the others before any job.
    HEADER = first_header(PLAN, HEADER_LINES, separator_byte(config))
except (ConfigError, InputError) as error:
    fail(error)

SCRIPTS = os.path.join(workflow.basedir, "scripts")
SCRATCH = RUN_FILES.directories[0]
RUN_NAME = os.path.basename(SCRATCH)
RUNS_DIR = os.path.join(SCRATCH, "runs")
STATS_DIR = os.path.join(SCRATCH, "buckets")
PLAN_TEXT = plan_file_text(PLAN)
PLAN_PATH = os.path.join(SCRATCH, plan_file_name(PLAN_TEXT))
PLAN_FILE = literal(PLAN_PATH)
RUN_PATTERN = os.path.join(literal(RUNS_DIR), layout.RUN)
INDEX_PATTERN = os.path.join(literal(RUNS_DIR), layout.INDEX)
STATS_PATTERN = os.path.join(literal(STATS_DIR), layout.STATS)
# Every bucket job needs every run file: the bucket table stands for them all,
# so that the DAG has one edge per bucket job instead of two per chunk.
BUCKET_TABLE = os.path.join(literal(RUNS_DIR), layout.TABLE)
FILE_BOUNDS = os.path.join(literal(RUNS_DIR), layout.BOUNDS)
OUTPUT_CODEC = output_codec(config["output"])
# One plain output file: bucket jobs write their records straight into it.
# Otherwise they write pieces (compressed if the output is), which gather joins.
IN_PLACE = len(OUTPUTS) == 1 and OUTPUT_CODEC is None and PLAN.width == 1
PIECES_DIR = os.path.join(SCRATCH, "pieces")
# The summary is written just before the output appears; it is not a rule output.
SUMMARY = RUN_FILES.summary
# The bucket jobs write the output here, each into its own region.
TARGET = config["output"] + ".partial"
CHUNKS = range(len(PLAN.chunks))
BUCKETS = range(PLAN.buckets)
SEPARATOR = separator_byte(config)
# Cluster run times assume a tenth of the slowest stage's speed measured here
# (~150 MB/s per core): shared filesystems and busy nodes are slower.
SLOWEST_EXPECTED_MB_PER_S = 15
RUNTIME_MARGIN_MINUTES = 10
OUTPUT_LOCK = OutputLock(RUN_FILES.lock)


def take_output_lock():
    """Hold the output's lock until this process ends, or stop if another run holds it."""
    if OUTPUT_LOCK.held:
        return
    try:
        os.makedirs(os.path.dirname(OUTPUT_LOCK.path), exist_ok=True)
        holder = OUTPUT_LOCK.acquire()
    except OSError as error:
        fail(
            f"cannot lock output '{config['output']}' ({OUTPUT_LOCK.path}): {error.strerror}"
        )
    if holder:
        fail(
            f"output '{config['output']}' is being written by another run ({holder}): "
            "wait for it to finish, or choose another output path"
        )
    atexit.register(OUTPUT_LOCK.release)


# The lock is taken while parsing when the output's directory exists, so that
# the clean-up below never touches another run's files; a dry run whose lock
# is held elsewhere goes on (it writes nothing), a real run stops in onstart.
if workflow.is_main_process and os.access(os.path.dirname(OUTPUT_LOCK.path), os.W_OK):
    try:
        if OUTPUT_LOCK.acquire() is None:
            atexit.register(OUTPUT_LOCK.release)
    except OSError:
        pass  # take_output_lock, before any job, says what is wrong
if OUTPUT_LOCK.held and clear_stale_incomplete_marker(OUTPUTS, SUMMARY):
    remove_leftovers(SCRATCH, OUTPUTS, SUMMARY)


wildcard_constraints:
    chunk=r"\d+",
    bucket=r"\d+",


def python_for_jobs():
    """The interpreter running Snakemake has snakeshuf's packages; with
    --software-deployment-method conda, the rule's environment's python does."""
    methods = getattr(workflow.deployment_settings, "deployment_method", ())
    return (
        "python" if any("conda" in str(m).lower() for m in methods) else sys.executable
    )


def script_command(name):
    """Shell words that run scripts/<name>.py, as a literal shell-rule prefix.
    `exec` leaves no shell behind to count against the memory budget; jobs are
    single-threaded, and OpenBLAS's idle thread pool only costs memory."""
    words = ["exec", "env", "OPENBLAS_NUM_THREADS=1", python_for_jobs()]
    words.append(os.path.join(SCRIPTS, f"{name}.py"))
    return literal(shlex.join(words))


def log_dir(rule_name):
    return os.path.join("logs", RUN_NAME, rule_name)


def log_path(rule_name, wildcard=""):
    """A log's pattern: `wildcard` is e.g. "{bucket}" (the rule's own name if none)."""
    return os.path.join(
        literal(log_dir(rule_name)), layout.LOG.format(name=wildcard or rule_name)
    )


def benchmark_path(rule_name, wildcard=""):
    return os.path.join(
        "benchmarks", literal(RUN_NAME), rule_name, f"{wildcard or rule_name}.tsv"
    )


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


def get_chunk_files(wildcards):
    return [f.path for f in PLAN.chunk_files(int(wildcards.chunk))]


def write_plan_file(path):
    """Written when the main process parses the workflow, before any job runs
    (jobs on a cluster read it from the shared scratch directory)."""
    if os.path.exists(path):
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_write(path) as handle:
            handle.write(PLAN_TEXT.encode())
    except OSError as error:
        fail(
            check_writable(config["scratch"], config["output"])
            or f"cannot write '{path}': {error}"
        )


if workflow.is_main_process:
    write_plan_file(PLAN_PATH)


def pieces_arguments():
    """shuffle_bucket's options for layouts written as pieces (quoted shell words)."""
    if IN_PLACE:
        return ""
    words = ["--pieces-dir", PIECES_DIR, "--lines-per-record", str(PLAN.width)]
    words += ["--codec", OUTPUT_CODEC] if OUTPUT_CODEC else []
    return shlex.join(words)


LAYOUT_JSON = json.dumps(layout_spec(LAYOUT))


def get_output_name(wildcards, output):
    """The configured output name, from which gather names the files it writes
    (given with the layout, not as a list: thousands of shards would not fit
    on a command line)."""
    return config["output"]


def get_runs_dir(wildcards, output):
    """Where the run files are: beside the bucket table (there may be no run
    files at all, when every input is empty)."""
    return os.path.dirname(output.table)


def get_stats_dir(wildcards, input):
    return os.path.dirname(input.stats[0])


def run_files():
    return expand(RUN_PATTERN, chunk=CHUNKS) + expand(INDEX_PATTERN, chunk=CHUNKS)


def compressed_note():
    compressed = sum(f.codec is not None for f in PLAN.files)
    return f" ({compressed} compressed: size estimated)" if compressed else ""


def output_description():
    if len(OUTPUTS) == 1:
        return OUTPUTS[0]
    return f"{len(OUTPUTS)} files, {OUTPUTS[0]} ... {OUTPUTS[-1]}"


def plan_lines():
    memory = PLAN.memory
    return [
        f"inputs:   {len(PLAN.files)} file(s){compressed_note()}, {PLAN.total_bytes / 2**20:,.1f} MiB"
        + (f", listed in {SHEET} ('inputs' not used)" if SHEET else ""),
        f"chunks:   {len(PLAN.chunks)} split job(s) of up to {PLAN.chunk_bytes / 2**20:,.0f} MiB",
        f"buckets:  {PLAN.buckets} shuffle job(s) of ~{PLAN.total_bytes / PLAN.buckets / 2**20:,.1f} MiB",
        f"memory:   {memory.memory_mb} MB per job (longest record {memory.block_bytes / 2**20:,.0f} MiB)",
        f"scratch:  {SCRATCH}",
        f"disk:     ~{PLAN.total_bytes * (2.06 if IN_PLACE else 3.06) / 2**30:,.2f} GiB at peak "
        + (
            "(run files + output)"
            if IN_PLACE
            else "(run files + pieces + output files)"
        ),
        f"output:   {output_description()} (seed {config['seed']})",
    ]


def preflight():
    """Checks that need the filesystem as it is when the run starts."""
    problem = check_writable(config["scratch"], config["output"])
    if problem:
        fail(problem)
    take_output_lock()
    if HEADER_LINES:
        try:
            common_header(PLAN.files, HEADER_LINES, SEPARATOR)
        except InputError as error:
            fail(error)
    if config["check_disk_space"]:
        problems = shortfalls(
            PLAN.total_bytes, SCRATCH, config["output"], pieces=not IN_PLACE
        )
        if problems:
            fail("\n  ".join(problems))


def print_summary():
    with open(SUMMARY) as handle:
        summary = json.load(handle)
    stages = ", ".join(
        f"{k} {v} s" for k, v in summary["stage_seconds"].items() if v is not None
    )
    print(
        f"snakeshuf: {summary['records']:,} records, {summary['bytes']:,} bytes "
        f"-> {output_description()} (seed {summary['seed']}, {summary['buckets']} buckets)\n"
        f"snakeshuf: wall time per stage: {stages}; summary: {SUMMARY}",
        file=sys.stderr,
    )

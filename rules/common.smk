# The plan: the configuration checked, the inputs planned and the run spec
# built, every time Snakemake parses the workflow (on a cluster, in every job
# too, so it only calls stat() and reads the first input's header); the
# output's lock; and the input functions of the rules.
import atexit
import errno
import gc
import glob
import os
import sys

sys.path.insert(0, os.path.join(SNAKESHUF_DIR, "scripts"))

from snakeshuf.control import console, preflight, progress
from snakeshuf.control.lock import NotALock
from snakeshuf.control.resume import (
    clear_dead_runs_locks,
    clear_stale_markers,
    incomplete_markers,
    locks_of_runs_of,
    remove_leftovers,
)
from snakeshuf.control.stopping import RunStopper, cancel_scheduler_wakeups
from snakeshuf.errors import ConfigError, InputError, OutputError
from snakeshuf.mixing import dedup
from snakeshuf.mixing.weights import parse_weight, sources_of
from snakeshuf.outputs import destinations, provenance
from snakeshuf.outputs.publishing import settle
from snakeshuf.outputs.layout import column_names, output_paths, read_layout, read_take
from snakeshuf.outputs.namespace import (
    RunFiles,
    check_left_alone,
    check_names,
    check_outside_inputs,
)
from snakeshuf.outputs.provenance import output_is_complete
from snakeshuf.planning.config import check_config, input_path, separator_byte
from snakeshuf.planning.plan import Chunking, make_paired_plan, make_plan, recall_codecs
from snakeshuf.planning.sheet import read_sample_sheet
from snakeshuf.planning.spec import RunSpec
from snakeshuf.records import formats
from snakeshuf.records.lines import common_header
from snakeshuf.sources import objects, pipes
from snakeshuf.sources.locations import check_no_urls
from snakeshuf.stages.jobs import disk_full_message
from snakeshuf.stages.scratch import Scratch, run_directory

SHEET_SCHEMA = os.path.join(SNAKESHUF_DIR, "config", "sample_sheet.schema.yaml")
STOPPER = RunStopper()
if workflow.is_main_process and not IN_MODULE:  # a module's signals are its includer's
    STOPPER.listen()


def piped_copies(paths, run):
    """`paths`, each pipe replaced by its copy (snakeshuf.sources.pipes), made under
    the output's lock: another run of this output may be reading its own."""
    main = workflow.is_main_process
    if main and not IN_MODULE and any(map(pipes.is_pipe, paths)):
        take_output_lock()
    return pipes.resolve(paths, Scratch(run.directories[0]).piped, main)


def make_input_plan(run):
    """The plan for aligned files ('paired'), a sample sheet or 'inputs'."""
    if config["paired"]:
        if config["header_lines"]:
            raise ConfigError(
                "config keys 'paired' and 'header_lines' cannot be combined: remove the headers first"
            )
        groups = [[input_path(config, p) for p in group] for group in config["paired"]]
        sources, _ = sources_of([g[0] for g in config["paired"]], config["weights"])
        return make_paired_plan(groups, run, config["memory_mb"], sources)
    sheet = config["sample_sheet"] and input_path(config, config["sample_sheet"])
    if sheet:
        rows = read_sample_sheet(sheet, SHEET_SCHEMA)
        listed = [row["path"] for row in rows]
        check_no_urls(
            [("sample_sheet", path) for path in listed], objects_read=("sample_sheet",)
        )
        names = [row.get("source") or row["path"] for row in rows]
        weights = [
            parse_weight(row["weight"]) if row.get("weight") else None for row in rows
        ]
        sources, entry_sources = sources_of(
            names, config["weights"], weights, f"sample sheet '{sheet}'"
        )
    else:
        listed = config["inputs"]
        sources, entry_sources = sources_of(listed, config["weights"])
    return make_plan(
        piped_copies([input_path(config, p) for p in listed], run),
        run,
        config["memory_mb"],
        Chunking(config["chunk_mb"], config["max_chunk_gb"]),
        sheet=sheet,
        entry_sources=entry_sources,
        sources=sources,
    )


def try_output_lock():
    """Hold the output's lock until this process ends; return None, or who holds it."""
    if OUTPUT_LOCK.held:
        return None
    try:
        holder = OUTPUT_LOCK.acquire()
    except (NotALock, ConfigError, OutputError) as error:
        console.fail(error)
    except OSError as error:
        console.fail(
            f"config key 'output': cannot write '{error.filename or OUTPUT_LOCK.path}' "
            f"({error.strerror}), where the output's lock goes: choose an output path in "
            "a directory you can write"
        )
    if holder is None:
        atexit.register(OUTPUT_LOCK.release)
    return holder


def written_by_another_run(holder):
    return f"output '{config['output']}' is being written by another run ({holder})"


def take_output_lock():
    holder = try_output_lock()
    if holder:
        console.fail(
            f"{written_by_another_run(holder)}: wait for it to finish, or choose another output path"
        )


def owned_files(outputs):
    """The files and directories this run writes (see snakeshuf.outputs.namespace)."""
    scratch = run_directory(config["scratch"], config["output"])
    name = os.path.basename(scratch)
    directories = (
        scratch,
        os.path.join("logs", name),
        os.path.join("benchmarks", name),
        os.path.join("reports", name),
    )
    return RunFiles(config["output"], tuple(outputs), directories)


def read_dedup(plan):
    """Config key 'dedup' as a dedup.Dedup (None: keep duplicates), checked against the inputs."""
    found = dedup.read_config(config["dedup"])
    if found is None:
        return None
    # A table's field is a column, checked before the first job (snakeshuf.records.formats).
    if found.field is not None and not formats.is_parquet(plan.files):
        if config["paired"]:
            raise ConfigError(
                "config key 'dedup': aligned inputs ('paired') are deduplicated by whole records only"
            )
        scratch = Scratch(RUN_FILES.directories[0])
        # May read the start of a file whose name gives no format: in the main
        # process only, not again in every cluster job.
        named = {
            dedup.format_of(found, f.path, scratch.shown(f.path))
            for f in plan.files
            if workflow.is_main_process
        }
        if (
            isinstance(found.field, str)
            and named & {"tsv", "csv"}
            and not config["header_lines"]
        ):
            raise ConfigError(
                f"config key 'dedup' names column {found.field!r}, but the inputs have no header "
                "(config key 'header_lines' is 0): give the column's number from 1, or set header_lines"
            )
    return found


def run_spec(plan, run, layout):
    """Everything that defines the output (snakeshuf.planning.spec)."""
    parquet = formats.parquet_output(plan.files, config)
    lines, separator = config["header_lines"], separator_byte(config)
    header = common_header(plan.files[:1], lines, separator) if lines else b""
    return RunSpec(
        files=plan.files,
        chunks=plan.chunks,
        width=plan.width,
        buckets=plan.buckets,
        parts=plan.layout.parts,
        seed=config["seed"],
        separator=separator,
        header_lines=lines,
        header_bytes=len(header),
        layout=layout,
        take=TAKE,
        output=config["output"],
        scratch=run.directories[0],
        sources=plan.sources,
        dedup=read_dedup(plan),
        parquet=parquet,
    )


try:
    check_config(config, os.path.join(SNAKESHUF_DIR, "config", "schema.yaml"))
    if config["s3_endpoint"]:
        objects.use_endpoint(config["s3_endpoint"])
    LAYOUT = read_layout(config["splits"], config["shards"])
    TAKE = read_take(config["head"], config["fraction"])
    # Aligned inputs have an output per column, named after the first group.
    COLUMNS = column_names(config["paired"][0]) if config["paired"] else None
    if IN_MODULE and objects.is_object(config["output"]):
        raise ConfigError(
            f"config key 'output': '{config['output']}' is in object storage, but as a module snakeshuf "
            "writes files (the including workflow's rules ask for them): write a file and upload it"
        )
    RUN_FILES = owned_files(output_paths(config["output"], LAYOUT, COLUMNS))
    OUTPUT_LOCK = destinations.of(config["output"]).lock(RUN_FILES.lock)
    check_names(RUN_FILES)
    OBJECT_FACTS = Scratch(RUN_FILES.directories[0]).object_facts
    # A job plans what its main process planned (saved by stage_plan; a
    # module's main process runs no onstart, and saves nothing).
    if workflow.is_main_process:
        # Read once: an object's is a request.
        SUMMARY_RECORD = provenance.read_record(RUN_FILES.summary)
        recall_codecs(SUMMARY_RECORD)
    elif not IN_MODULE:
        objects.recall(OBJECT_FACTS)
    PLAN = make_input_plan(RUN_FILES)
    check_outside_inputs(RUN_FILES, [*config["inputs"], *(f.path for f in PLAN.files)])
    SPEC = run_spec(PLAN, RUN_FILES, LAYOUT)
except (ConfigError, InputError, OutputError) as error:
    console.fail(error)


def judge_output_on_disk():
    """Whether the output set on disk is this run's (snakeshuf.outputs.provenance)."""
    try:
        check_left_alone(RUN_FILES, SUMMARY_RECORD, config["overwrite"])
        summary = (RUN_FILES.summary, SUMMARY_RECORD)
        verdict = provenance.judge(SPEC, summary, config["overwrite"])
    except (ConfigError, OutputError) as error:
        console.fail(error)
    console.print_verdict(SPEC.output, verdict)
    return verdict


# Jobs do not judge: to them the output is never current, which only
# declares gather's receipt (rules/gather.smk).
VERDICT = provenance.Verdict(current=False)


def receipt(step):
    """The empty file written once this spec's output is `step` (in the run's logs)."""
    return os.path.join(
        RUN_FILES.directories[1], "gather", f"{step}-{SPEC.fingerprint[:16]}"
    )


RECEIPT = receipt("published")
# In a module, gather leaves the joined files to rule publish (rules/gather.smk).
JOINED = receipt("joined") if IN_MODULE else RECEIPT
if workflow.is_main_process:  # also on -n, and for each module instance
    console.print_plan(SPEC, PLAN, config["sample_sheet"])
    VERDICT = judge_output_on_disk()
    for path in {RECEIPT, JOINED} if not VERDICT.current else ():
        if os.path.exists(path):
            os.remove(path)  # an earlier run's, of an output changed since

PLAN_FILE = SPEC.plan_file()
# Written by onstart, moved into place by rule write_plan (rules/plan.smk).
STAGED_PLAN = f"{PLAN_FILE}.staged"
SCRATCH = Scratch(SPEC.scratch)
RUN_NAME = os.path.basename(SPEC.scratch)
CHUNKS = range(len(SPEC.chunks))
BUCKETS = range(SPEC.buckets)


def start_run():
    """Before the first job (onstart): the checks, the output's lock, the plan
    file, progress lines, a clean stop on SIGTERM or Ctrl-C. In a module, rule write_plan runs
    the checks; no lock, no progress, and signals are the including workflow's."""
    try:
        preflight.check_places(SPEC)
        take_output_lock()
        # Else no job reads the inputs (and an object's check is a request).
        if not VERDICT.current:
            preflight.check(SPEC, config["check_disk_space"], config["memory_mb"])
        stage_plan()
        if not VERDICT.current:  # else no gather checks it
            destinations.record_holder(OUTPUT_LOCK.path, SCRATCH.lock_holder)
    except (ConfigError, InputError, OutputError) as error:
        console.fail(error)
    progress.watch(SPEC)
    STOPPER.attach(workflow.scheduler, workflow.local_exec)
    # What Snakemake has built lives until the end: leaving it out of every
    # garbage collection, the interpreter's last ones included, saves ~0.3 s.
    gc.freeze()


def stage_plan():
    """Write the plan file for rule write_plan to move into place, and what
    the jobs are to recall of the run's objects."""
    try:
        SPEC.write(STAGED_PLAN)
        if not VERDICT.current:  # else no job will recall it
            objects.remember(OBJECT_FACTS)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise ConfigError(disk_full_message(error)) from None
        raise ConfigError(
            f"config key 'scratch': cannot write '{error.filename}' ({error.strerror}): "
            "choose a scratch directory you can write"
        ) from None


def discard_staged_plan():
    """A run that did not need the plan file (it was there) leaves none behind."""
    if os.path.exists(STAGED_PLAN):
        os.remove(STAGED_PLAN)


def finish_run():
    """After the last job (onsuccess): the result on the console."""
    cancel_scheduler_wakeups()
    discard_staged_plan()
    try:
        summary = provenance.read_record(RUN_FILES.summary)
    except (ConfigError, OutputError):
        summary = None  # the run is done: the store failed only this look
    if summary and summary.get("fingerprint") == SPEC.fingerprint:
        console.print_summary(SPEC, summary)


def report_failure():
    """After a failed or stopped run (onerror): what to do now."""
    cancel_scheduler_wakeups()
    discard_staged_plan()
    try:
        published = output_is_complete(SPEC.outputs, RUN_FILES.summary)
    # The store failed the run, and fails this look too.
    except (ConfigError, OutputError):
        published = False
    console.print_failure_hint(SPEC.output, STOPPER.signal_name, published)


# A killed run (SIGKILL, power loss) leaves Snakemake's locks, which would
# make this run ask for --unlock: the output's lock, which the kernel freed,
# shows that run is dead, so its locks go (not in a module: the including
# workflow's locks are its own). A live run's locks are named, as Snakemake's
# refusal that follows would advise --unlock (a dry run goes on).
if workflow.is_main_process and not IN_MODULE and os.path.isdir(".snakemake/locks"):
    # Every run of this output asks for a receipt there (rules/gather.smk).
    receipts = os.path.join(os.path.dirname(RECEIPT), "published-")
    live_run = try_output_lock()
    if live_run and locks_of_runs_of(receipts):
        console.note(
            f"{written_by_another_run(live_run)}, which holds Snakemake's lock of "
            "this directory: wait for it, do not --unlock"
        )
    elif not live_run and clear_dead_runs_locks(receipts):
        console.note("cleared the locks of a run of this output that was killed")


# A run killed just after publishing leaves its scratch directory, the old
# set's files it was to remove, and in a module Snakemake's markers that would
# make this one redo gather on missing inputs (snakeshuf.control.resume).
# Clearing them once the output is current is, with a stale receipt, the only
# write while parsing (a dry run's too: it finishes a publish), and only under
# the output's lock, so it never touches a running run's files.
# Not while the scratch directory holds another spec's plan: that is an
# interrupted run, which its own command resumes.
def holds_another_plan():
    return any(path != PLAN_FILE for path in glob.glob(SCRATCH.plan("*")))


if workflow.is_main_process and VERDICT.current:
    try:
        # The old set's files that a run killed after its summary left
        # (publishing.settle), under the output's lock.
        if SUMMARY_RECORD.get("superseded") and try_output_lock() is None:
            settle(RUN_FILES.summary)
        if (
            (incomplete_markers(SPEC.outputs) or os.path.isdir(SPEC.scratch))
            and not holds_another_plan()
            and try_output_lock() is None
        ):
            clear_stale_markers(SPEC.outputs, RUN_FILES.summary)
            remove_leftovers(SPEC.scratch, SPEC.outputs, RUN_FILES.summary)
    except (OSError, ConfigError, OutputError) as error:
        console.note(
            f"could not finish what an earlier run left ({error}); the output is complete"
        )


wildcard_constraints:
    chunk=r"\d+",
    bucket=r"\d+",


def get_input_files(wildcards):
    """The local inputs: Snakemake checks files; the jobs check objects themselves."""
    return [f.path for f in SPEC.files if not objects.is_object(f.path)]


def get_chunk_files(wildcards):
    files = (SPEC.files[s.file_index].path for s in SPEC.chunks[int(wildcards.chunk)])
    return [path for path in files if not objects.is_object(path)]

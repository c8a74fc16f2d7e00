"""The `snakeshuf` command: the workflow for people who do not use Snakemake.

It turns its options into a configuration and runs Snakemake's own command
line in its own process (what python -m snakemake runs) on the same Snakefile, so its output is
byte for byte what `snakemake --config ...` gives, and signals (SIGTERM,
Ctrl-C) reach the run directly. Exit status: 0 done, 1 the run failed or
was stopped (run the same command again), 2 a usage or configuration error;
a signal before the workflow is read ends it as the signal does (130 for
Ctrl-C, 143 for SIGTERM; snakeshuf.control.start).
"""

import argparse
import atexit
import glob
import hashlib
import importlib.metadata
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import yaml

from snakeshuf import __version__
from snakeshuf.control.lock import LOCK, NotALock
from snakeshuf.errors import ConfigError, OutputError
from snakeshuf.outputs import destinations
from snakeshuf.planning.memory import MIN_MEMORY_MB
from snakeshuf.sources import objects, pipes
from snakeshuf.sources.locations import check_no_urls, configured_paths
from snakeshuf.stages.scratch import PIPED

# In the run's state directory, where the jobs of a cluster run can read it.
CONFIG_DIR = os.path.join(".snakemake", "snakeshuf")
STDOUT = "-"
STATE_NAME_CHARS = 200  # of OUT's name, in its state directory's: an object's may be longer than a file's
STDOUT_CLOSED = 128 + signal.SIGPIPE  # the status of shuf killed by SIGPIPE
COPY_BYTES = 1 << 20
UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}

DESCRIPTION = """\
Write a uniformly random permutation of the lines (records) of IN... to OUT in
bounded memory, a pure function of the inputs and the seed. IN may be globs,
- or other pipes (read to the end first), s3:// objects, gzip/bzip2/xz/zstd
files, or Parquet files (their rows, into OUT.parquet); OUT is - for standard
output, a file or an s3:// object, compressed if it ends in .gz or .zst."""

EXAMPLES = """\
examples:
  snakeshuf 'web/*.gz' -o d.jsonl.zst --split valid=0.01 --split train=rest:64
  zstdcat big.zst | snakeshuf -n 1000 - -o -       (1,000 random records)
  snakeshuf big.txt -o out.txt --memory 4G --profile slurm       (on SLURM)

exit status: 0 done or up to date, 1 failed or stopped (run the same command
again), 2 bad usage or configuration, 130/143 Ctrl-C/SIGTERM before the start."""


def workflow_dir():
    """Where the Snakefile is: the source tree this module sits in, or where
    `pip install` put the workflow's files (under <prefix>/share/snakeshuf)."""
    tree = str(Path(__file__).resolve().parents[3])  # control/ snakeshuf/ scripts/ <tree>
    if os.path.isfile(os.path.join(tree, "Snakefile")):
        return tree
    for path in importlib.metadata.distribution("snakeshuf").files or ():
        if path.name == "Snakefile":
            return os.path.dirname(path.locate())
    sys.exit("snakeshuf: error: the workflow's Snakefile is not installed; reinstall snakeshuf")


def mebibytes(text):
    """'2G', '512M', '1.5G' or a plain number of MiB -> MiB (at least MIN_MEMORY_MB)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", text.strip().upper())
    if not match:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size like 512M or 2G")
    number, unit = float(match.group(1)), match.group(2)
    mib = round(number * UNITS[unit or "M"] / UNITS["M"])
    if mib < MIN_MEMORY_MB:
        raise argparse.ArgumentTypeError(f"'{text}' is below the minimum of {MIN_MEMORY_MB}M a job needs")
    return mib


def at_least_zero(text):
    """A whole number of 0 or more (a head count)."""
    if not re.fullmatch(r"\d+", text.strip()):
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of 0 or more")
    return int(text)


def fraction(text):
    """A number from 0 to 1, kept as the decimal written."""
    if not re.fullmatch(r"(0?\.\d+|[01](\.\d*)?)", text.strip()) or float(text) > 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number from 0 to 1, e.g. 0.01")
    return float(text)


def at_least_one(text):
    """A whole number of 1 or more (cores, shards)."""
    if not re.fullmatch(r"\d+", text.strip()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of 1 or more")
    return int(text)


def named_values(options, flag):
    """{name: value} of (name, value) options of `flag` (--split, --weight) in
    order, None if none; a name given twice is an error."""
    named = {}
    for name, value in options or ():
        if name in named:
            raise argparse.ArgumentTypeError(f"{flag} {name} is given twice; give each once")
        named[name] = value
    return named or None


def split_option(text):
    """'valid=0.01', 'test=1000' or 'train=rest:64' -> (name, size or {size, shards})."""
    match = re.fullmatch(r"([^=]+)=(rest|\d+|\d*\.\d+)(?::(\d+))?", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not NAME=SIZE[:SHARDS], e.g. valid=0.01, test=1000 or train=rest:64"
        )
    name, size, shards = match.groups()
    size = size if size == "rest" else float(size) if "." in size else int(size)
    return name, {"size": size, "shards": int(shards)} if shards else size


def weight_option(text):
    """'SOURCE=W' -> (SOURCE, W): W a number of 0 or more (2, 0.3, 1e-3)."""
    source, equals, weight = text.rpartition("=")
    if not equals or not source or not re.fullmatch(r"(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?", weight.strip(), re.ASCII):
        raise argparse.ArgumentTypeError(f"'{text}' is not SOURCE=WEIGHT with a weight of 0 or more, e.g. wiki.txt=2")
    return source, int(weight) if weight.strip().isdigit() else float(weight)


def dedup_of(args):
    """Config key 'dedup' of --dedup, or of --dedup-field (a column number if
    written as one: '3', not '03') and --dedup-missing."""
    if args.dedup_field is not None:
        field = args.dedup_field
        number = field.isascii() and field.isdigit() and not field.startswith("0")
        missing = {"missing": args.dedup_missing} if args.dedup_missing else {}
        return {"field": int(field) if number else field, **missing}
    return "record" if args.dedup else None


def parser():
    p = argparse.ArgumentParser(
        prog="snakeshuf",
        usage="snakeshuf [OPTION]... IN... -o OUT",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, max_help_position=30, width=80),
    )
    add = p.add_argument
    add("inputs", nargs="*", metavar="IN", help=argparse.SUPPRESS)
    add("-o", "--output", required=True, metavar="OUT", help="the output file, or stem of its shards and splits")
    add("-n", "--head-count", type=at_least_zero, metavar="N", help="output at most N records, as shuf -n")
    add("--fraction", type=fraction, metavar="P", help="output round(P x records), 0 <= P <= 1")
    add("--seed", type=int, default=42, help="0 to 2^64-1, each its own order (default 42)")
    add("--memory", type=mebibytes, default=1024, metavar="SIZE", help="memory per job, e.g. 512M, 4G (default 1G)")
    add("--cores", type=at_least_one, default=os.cpu_count(), metavar="N", help="jobs at once (default: all cores)")
    add("--shards", type=at_least_one, metavar="N", help="cut OUT into N files of equal record counts")
    add("--split", type=split_option, action="append", metavar="NAME=SIZE[:SHARDS]",
        help="a fraction, a count or 'rest' (repeat)")
    add("--weight", type=weight_option, action="append", metavar="IN=W",
        help="IN's records appear W times: 2, 0.3 (repeat)")
    add("--dedup", action="store_true", help="drop duplicates (keeps the heaviest source's)")
    add("--dedup-field", metavar="F", help="drop records repeating JSONL field/TSV column F")
    add("--dedup-missing", choices=["keep", "drop"], metavar="keep|drop", help="records without F (default: error)")
    add("--header-lines", type=int, metavar="N", help="the N-line header every input starts with")
    add("-z", "--zero-terminated", dest="separator", action="store_const", const="nul",
        help="records end with NUL, not newline")
    add("--separator", choices=["newline", "nul"], help=argparse.SUPPRESS)
    add("--paired", nargs="+", action="append", metavar="FILE", help="aligned files shuffled in step (repeat)")
    add("--sample-sheet", metavar="FILE", help="a TSV/CSV whose 'path' column lists IN")
    add("--scratch", metavar="DIR", help="for the run's state and scratch (default: by OUT)")
    add("--profile", metavar="slurm|PATH", help="a Snakemake profile (slurm: profiles/slurm)")
    add("--overwrite", action="store_true", help="replace files at OUT that snakeshuf did not make")
    add("--dry-run", action="store_true", help="print the plan and the jobs, run nothing")
    add("--report", metavar="FILE", help="also write an HTML report of the run")
    add("--unlock", action="store_true", help=argparse.SUPPRESS)
    add("--version", action="version", version=f"snakeshuf {__version__}")
    return p


def state_directory(args):
    """Where a run keeps Snakemake's records, its logs and its scratch files,
    so that it writes nothing into the current directory: one directory per
    output, beside it (or under --scratch; for an object, under the user's
    cache directory), the same for the same command; for standard output, a
    new one each time."""
    if args.output == STDOUT:
        return tempfile.mkdtemp(prefix=".snakeshuf-stdout-", dir=args.scratch and os.path.abspath(args.scratch))
    output = output_file(args)
    place = os.path.abspath(args.scratch) if args.scratch else os.path.dirname(output)
    if objects.is_object(output) and not args.scratch:
        place = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "snakeshuf")
    where = objects.store_and(output) if objects.is_object(output) else output
    tag = hashlib.sha256(where.encode()).hexdigest()[:8]
    return os.path.join(place, f".snakeshuf-{os.path.basename(output)[:STATE_NAME_CHARS]}-{tag}")


def output_file(args):
    """The output's path (an object's URL): for standard output, a file in
    the state directory, copied out after the run (named without an
    extension, which a Parquet output may have)."""
    if args.output == STDOUT:
        return os.path.join(args.state, "stdout")
    return args.output if objects.is_object(args.output) else os.path.abspath(args.output)


def config_of(args):
    """The workflow configuration the options give (unset options keep the
    defaults); Snakemake runs in the state directory, so paths are absolute
    or taken from the current directory (config key 'relative_to')."""
    config = {"output": output_file(args), "relative_to": os.getcwd(), "seed": args.seed, "memory_mb": args.memory}
    optional = {
        "inputs": args.inputs or None, "shards": args.shards, "header_lines": args.header_lines,
        "separator": args.separator, "paired": args.paired, "sample_sheet": args.sample_sheet,
        "splits": named_values(args.split, "--split"), "overwrite": args.overwrite or None,
        "head": args.head_count, "fraction": args.fraction, "weights": named_values(args.weight, "--weight"),
        "dedup": dedup_of(args),
    }
    config.update({key: value for key, value in optional.items() if value is not None})
    return config


def check_report(p, args):
    """The report: a name Snakemake writes a report to, that is not a file the run reads or writes."""
    path = args.report
    if not path.endswith((".html", ".zip")):
        p.error(f"--report {path}: a report is written as .html or .zip; name it so")
    read = [*args.inputs, *(f for group in args.paired or () for f in group), *filter(None, [args.sample_sheet])]
    read = [match for pattern in read for match in glob.glob(pattern) or [pattern]]
    written = [args.output + suffix for suffix in (".summary.json", LOCK)] if args.output else []
    written += output_files(args)
    if os.path.realpath(path) in {os.path.realpath(f) for f in read + written}:
        p.error(f"--report {path}: the run reads or writes that file; choose another name for the report")
    check_writable_directory(p, path)


def output_files(args):
    """Every output file the options name (its shards, splits and columns),
    as the workflow names them; just OUT where the workflow will refuse them."""
    from snakeshuf.outputs.layout import column_names, output_paths, read_layout
    from snakeshuf.planning.config import check_config  # NumPy and Snakemake: only for --report

    if args.output in (None, STDOUT):
        return []
    try:
        config = check_config(config_of(args), os.path.join(workflow_dir(), "config", "schema.yaml"))
        layout = read_layout(config["splits"], config["shards"])
    except (ConfigError, argparse.ArgumentTypeError):
        return [args.output]
    return output_paths(config["output"], layout, column_names(config["paired"][0]) if config["paired"] else None)


def check_writable_directory(p, path):
    """The report is written after the run: its directory is checked before."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        p.error(f"--report {path}: the directory '{directory}' does not exist; create it or choose another path")
    if not os.access(directory, os.W_OK):
        p.error(f"--report {path}: the directory '{directory}' is not writable; choose another path")


def snakemake_arguments(args, workflow, state, configfile):
    """Snakemake's command line for the options given."""
    command = ["--snakefile", os.path.join(workflow, "Snakefile"),
               "--directory", state, "--configfile", configfile, "--cores", str(args.cores)]
    # A workflow profile wins over a --profile key by key: a bundled profile
    # (profiles/slurm) takes the default's place, or its retries would be the default's.
    name = args.profile or "default"
    bundled = os.path.join(workflow, "profiles", name)
    if os.sep not in name and os.path.isdir(bundled):
        command += ["--workflow-profile", bundled]
    else:
        command += ["--workflow-profile", os.path.join(workflow, "profiles", "default"), "--profile", args.profile]
    for flag, given in (("--dry-run", args.dry_run), ("--unlock", args.unlock)):
        if given:
            command.append(flag)
    if args.report:  # the run (or what is missing of it), its figures, then the report
        command += ["run_report", "--report", os.path.abspath(args.report), "--report-after-run"]
    return command


def write_config(config, state):
    """The configuration as a file Snakemake and every job can read, named by
    its content: the same command finds the same file (a temporary name of
    its own: the same command started twice at once writes it twice)."""
    text = yaml.safe_dump(config, sort_keys=False).encode()  # splits keep their order
    path = os.path.join(state, CONFIG_DIR, f"config-{hashlib.sha256(text).hexdigest()[:16]}.yaml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path):
        with tempfile.NamedTemporaryFile(dir=os.path.dirname(path), delete=False) as handle:
            handle.write(text)
        os.replace(handle.name, path)
    return path


def take_output_lock(args):
    """The output's lock, taken before Snakemake starts (the workflow finds it
    held by this process): another run of the same command shares the state
    directory, where Snakemake would say it is locked and suggest --unlock,
    which would harm that run."""
    output = output_file(args)
    lock = destinations.of(output).lock(output + LOCK)
    try:
        holder = lock.acquire()
    except (NotALock, ConfigError, OutputError) as error:
        print(f"snakeshuf: error: {error}", file=sys.stderr)
        sys.exit(1 if isinstance(error, OutputError) else 2)
    except OSError:
        return  # the workflow names what is wrong with the output's place
    if holder:
        print(f"snakeshuf: error: output '{args.output}' is being written by another run ({holder}): "
              "wait for it to finish, or choose another output path", file=sys.stderr)
        sys.exit(1)
    atexit.register(lock.release)
    for number in (signal.SIGINT, signal.SIGTERM):  # until the workflow's own handler (snakeshuf.control.stopping)
        signal.signal(number, lambda number, _: ended_by(number, lock))


def removed_and_ended(state, number):
    """A signal while the result is copied to standard output: its state removed, the signal's status."""
    shutil.rmtree(state, ignore_errors=True)
    os._exit(128 + number)


def ended_by(number, lock):
    """A signal before the workflow is read: no lock file left, the signal's status."""
    lock.release()
    os._exit(128 + number)


def attached(argv):
    """argv with each --weight joined to its value, which may start with '-'
    (`--weight -=2` weights standard input; argparse takes '-=2' for an option)."""
    joined, words = [], iter(argv)
    for word in words:
        joined.append(f"--weight={next(words, '')}" if word == "--weight" else word)
    return joined


def main(argv=None):
    p = parser()
    args = p.parse_args(attached(sys.argv[1:] if argv is None else argv))
    if not (args.inputs or args.paired or args.sample_sheet):
        p.error("give the input files (IN...), --paired groups or a --sample-sheet")
    if args.dry_run and any(pipes.is_pipe(path) for path in args.inputs):
        p.error("--dry-run would read the pipes among IN to their end; dry-run with files")
    if args.head_count is not None and args.fraction is not None:
        p.error("-n/--head-count and --fraction both say how many records to output: give one")
    if args.dedup and args.dedup_field is not None:
        p.error("--dedup and --dedup-field both say what a duplicate is: give one")
    if args.dedup_missing and args.dedup_field is None:
        p.error("--dedup-missing says what to do with records without the --dedup-field: give that field")
    if args.sample_sheet and (args.inputs or args.paired):
        p.error("--sample-sheet lists the inputs: give no IN (or --paired) beside it")
    try:
        check_no_urls(configured_paths(vars(args)))
    except ConfigError as error:
        p.error(str(error))
    if args.report and (args.dry_run or args.unlock):
        p.error("--report needs a run: leave out --dry-run and --unlock")
    if args.report:
        check_report(p, args)
    if args.output == STDOUT:
        check_stdout(p, args)
    if args.output != STDOUT and not (args.dry_run or args.unlock):
        take_output_lock(args)
    try:
        args.state = state = state_directory(args)
    except ConfigError as error:  # an object output's endpoint, which names its state
        p.error(str(error))
    new_state = args.output == STDOUT or not os.path.isdir(state)
    try:
        configfile = write_config(config_of(args), state)
    except argparse.ArgumentTypeError as error:
        p.error(str(error))
    except OSError as error:
        p.error(
            f"cannot write '{error.filename}' ({error.strerror}), where the run keeps its state: "
            "choose an output in a directory you can write, or --scratch DIR"
        )
    arguments = snakemake_arguments(args, workflow_dir(), state, configfile)
    status = run_snakemake(arguments)
    finished = status == 0 and not (args.dry_run or args.unlock)
    if status == 0 and args.output == STDOUT and not args.dry_run:
        for number in (signal.SIGINT, signal.SIGTERM):  # the workflow's handler outlives its run
            signal.signal(number, lambda number, _: removed_and_ended(state, number))
        status = copy_to_stdout(output_file(args))
    # A run to standard output cannot be resumed: its state goes whatever happened.
    if finished or args.output == STDOUT or (new_state and not holds_a_run(state)):
        shutil.rmtree(state, ignore_errors=True)
    elif status and os.path.isdir(os.path.join(state, "logs")):
        print(f"snakeshuf: the run's logs are in {os.path.join(state, 'logs')}", file=sys.stderr)
    return status


def holds_a_run(state):
    """Whether a run left logs or scratch files in the state directory (to
    resume from, or another run's that is going on); the copies of pipes are
    not: a run reading a pipe reads it again (a configuration error found
    after the copy left only those)."""
    if os.path.isdir(os.path.join(state, "logs")):
        return True
    runs = glob.glob(os.path.join(state, "scratch", "*", "*"))
    return any(os.path.basename(path) != PIPED for path in runs)


def check_stdout(p, args):
    """Standard output must be open, and the only place output goes to."""
    try:
        os.fstat(sys.stdout.fileno())
    except (AttributeError, ValueError, OSError):
        p.error("-o -: standard output is closed; give it a file or pipe, or name an output file")
    if args.split or args.shards or args.report or args.paired:
        p.error("-o - writes one stream: leave out --split, --shards, --paired and --report, or name an output file")


def copy_to_stdout(path):
    """Write the output file to standard output; a reader that stops early
    (| head) ends the command quietly, as it ends shuf."""
    try:
        with open(path, "rb") as source:
            shutil.copyfileobj(source, sys.stdout.buffer, COPY_BYTES)
            sys.stdout.buffer.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return STDOUT_CLOSED
    except OSError as error:
        print(f"snakeshuf: error: cannot write the output to standard output ({error.strerror})", file=sys.stderr)
        return 1
    return 0


def run_snakemake(arguments):
    """Snakemake's exit status for its command line `arguments`, run in this
    process (no second interpreter start)."""
    from snakemake.cli import main as snakemake

    sys.argv = ["snakemake", *arguments]
    try:
        snakemake()
    except SystemExit as end:
        return 0 if end.code is None else end.code if isinstance(end.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

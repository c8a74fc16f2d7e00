"""The files a run owns, and the check that keeps every input out of them.

A run writes each output file under a temporary name (<file>.partial), then
the summary (<output>.summary.json, through <output>.summary.json.partial);
it holds <output>.lock while it runs (snakeshuf.control.lock); its intermediates live
in its own scratch subdirectory, its logs and benchmarks under
logs/<run name> and benchmarks/<run name>. Two of these names that are one
file (a split named 'lock' beside an output without an extension), or a file
inside the run's directories, are refused before any job, naming both: the run
would overwrite or delete what it published. An input that is one of these would
be overwritten, deleted or shuffled into itself, so it is refused before any
job, naming both. A glob skips them all but the outputs (what a failed run
leaves behind), so that running the same command again works; an output of an
earlier run that a glob matches is refused, with how to fix the pattern.
"""

import os
from dataclasses import dataclass

from snakeshuf.control.disk import existing_ancestor
from snakeshuf.control.lock import HELD_HERE, LOCK, live_holder, written_by_a_run
from snakeshuf.errors import ConfigError
from snakeshuf.outputs.layout import check_output_name
from snakeshuf.outputs.provenance import SUMMARY, listed_outputs
from snakeshuf.planning.plan import has_braces
from snakeshuf.sources import objects
from snakeshuf.stages.jobs import PARTIAL
from snakeshuf.stages.scratch import PIPED



@dataclass(frozen=True)
class RunFiles:
    output: str  # the configured output name
    outputs: tuple  # every output file
    directories: tuple  # the run's scratch, log, benchmark and report directories

    @property
    def summary(self):
        return self.output + SUMMARY

    @property
    def lock(self):
        return self.output + LOCK

    def written(self):
        """(path, what it is) of every file the run writes."""
        return [
            *((path, f"output '{path}'") for path in self.outputs),
            *((path + PARTIAL, f"the unfinished output '{path}'") for path in self.outputs),
            (self.summary, f"the summary of output '{self.output}'"),
            (self.summary + PARTIAL, f"the unfinished summary of output '{self.output}'"),
            (self.lock, f"the lock of output '{self.output}'"),
        ]

    def bookkeeping(self):
        """{path: what it is} of the files a run writes beside its outputs."""
        return dict(self.written()[len(self.outputs) :])

    def owners(self):
        """An index of what each existing file of the run is (see Owners)."""
        return Owners(self)


class Owners:
    """The run's existing files by inode (so that links and other spellings of
    a path are found too), and its directories by real path."""

    def __init__(self, run):
        owned = [(p, (f"output '{p}' of this run", True)) for p in run.outputs]
        owned += [(p, (what, False)) for p, what in run.bookkeeping().items()]
        self.by_inode = {}
        for path, owner in owned:
            try:
                info = os.stat(path)
            except OSError:
                continue
            self.by_inode[(info.st_dev, info.st_ino)] = owner
        self.directories = [(d, os.path.realpath(d)) for d in run.directories]
        # Copies of piped inputs are in the scratch directory, and inputs.
        self.piped = [os.path.realpath(os.path.join(d, PIPED)) for d in run.directories[:1]]

    def of(self, path, info):
        """(what the file `path` with stat `info` is to the run, whether it is
        an output), or None if it is not the run's."""
        owner = self.by_inode.get((info.st_dev, info.st_ino))
        if owner:
            return owner
        real = os.path.realpath(path)
        if any(os.path.commonpath([real, piped]) == piped for piped in self.piped):
            return None
        for name, directory in self.directories:
            if os.path.commonpath([real, directory]) == directory:
                return f"a file in this run's own directory '{name}'", False
        return None


NAME_MAX = 255  # where the filesystem does not say (Linux filesystems allow 255 bytes)


def longest_name(path):
    return max(len(os.fsencode(part)) for part in path.split(os.sep) if part)


def name_limit(path):
    anchor = existing_ancestor(path)
    if not os.path.isdir(anchor):
        anchor = os.path.dirname(anchor)
    try:
        return os.pathconf(anchor, "PC_NAME_MAX")
    except (OSError, ValueError):
        return NAME_MAX


def check_places(run):
    """Each path the run writes can be created: what exists of it is
    directories, and no output is a directory already."""
    scratch = run.directories[0]
    for path in [*run.outputs, *run.bookkeeping(), *run.directories]:
        if objects.is_object(path):
            continue  # a key is no path: any may be written
        # A directory the run makes may exist already, as a directory.
        anchor = existing_ancestor(path if path in run.directories else os.path.dirname(path))
        if not os.path.isdir(anchor):
            key = "scratch" if path == scratch else "output"
            raise ConfigError(
                f"config key '{key}': '{path}' cannot be created, since '{anchor}' is a file, "
                "not a directory: choose another path"
            )
    for path in run.outputs:
        if os.path.isdir(path):
            raise ConfigError(
                f"config key 'output': '{path}' is a directory; the output is a file: "
                "name a file (e.g. add a file name to the path)"
            )


def written_files(run):
    """{path: what it is to the run} of every file the run writes; an error
    names both things if two of them are one file."""
    named = {}
    for path, what in run.written():
        place = os.path.abspath(path)
        if place in named:
            raise ConfigError(
                f"the run would write '{path}' twice, as {named[place]} and as {what}: "
                "choose other split names or another output name"
            )
        named[place] = what
    return named


def check_clashes(run):
    """No two files the run writes are one, and none is inside one of the
    run's directories (which it removes)."""
    written = written_files(run)
    for directory in run.directories:
        place = os.path.abspath(directory)
        for path, what in written.items():
            if path == place or path.startswith(place + os.sep):
                raise ConfigError(
                    f"{what} would lie in '{directory}', a directory of the run's own that it removes: "
                    "choose another output path"
                )


def check_left_alone(run, record, overwrite):
    """A file at one of the names the run gives its unfinished outputs and
    summary and its lock is overwritten or deleted by the run: refused unless
    a run of this output left it (its scratch directory is there; a lock
    names its holder) and it is not a published file of the set on disk
    (`record`, its summary), or `overwrite` says so. While a live run holds
    the output's lock, its files are its own."""
    if os.path.abspath(run.lock) not in HELD_HERE and live_holder(run.lock):
        return  # another run's files: it says so when it tries to take the lock
    published = listed_outputs(record)
    for path, what in run.bookkeeping().items():
        if overwrite or path == run.summary or not os.path.lexists(path):
            continue  # the summary is the record: an unreadable one makes the output not current
        if os.path.realpath(path) in published:
            whose = "a published file of the output set on disk (its summary lists it)"
        elif path == run.lock:
            if written_by_a_run(path):
                continue
            whose = "not a lock snakeshuf wrote"
        elif os.path.isdir(run.directories[0]):
            continue
        else:
            whose = "not left by a run of this output (it has no scratch directory)"
        raise ConfigError(
            f"'{path}' exists, and the run uses that name for {what}; the file is {whose}: move it "
            "away, choose another output name, or set config key 'overwrite' to true (snakeshuf --overwrite)"
        )


def check_outside_inputs(run, inputs):
    """No object the run writes is one that an input URL or pattern names
    (`inputs`: config key 'inputs', and every input the plan found): the
    next run would read this one's output, summary or lock as input. (Files
    are kept apart by inode: Owners.)"""
    if not objects.is_object(run.output):
        return
    patterns = {pattern for pattern in inputs if objects.is_object(pattern)}
    globs = [(pattern, pattern.split("/")) for pattern in patterns if objects.GLOB_CHARACTERS.search(pattern)]
    for url, what in [*((p, f"output '{p}'") for p in run.outputs), *run.bookkeeping().items()]:
        named = url if url in patterns else next((p for p, parts in globs if objects.matches(url.split("/"), parts)),
                                                 None)
        if named:
            raise ConfigError(
                f"{what} would be '{url}', which input '{named}' (config key 'inputs') names: "
                "the next run would read it as input. Choose an output outside the inputs' prefix "
                "(e.g. s3://bucket/shuffled/out.jsonl), or narrow the pattern"
            )


def check_names(run):
    """Every path the run writes can be written: a file name, no braces, no
    clash, no name too long."""
    check_output_name(run.output)
    for key, path in (("output", run.output), ("scratch", os.path.dirname(run.directories[0]))):
        if has_braces(path):
            raise ConfigError(
                f"config key '{key}': '{path}' contains '{{' or '}}', which Snakemake reads as "
                "wildcards in file names; choose a path without braces"
            )
    check_clashes(run)
    check_places(run)
    written = [path for path in [*run.outputs, *run.bookkeeping(), *run.directories] if not objects.is_object(path)]
    longest = max(written, key=longest_name)  # the directories at least
    limit = name_limit(longest)
    if longest_name(longest) > limit:
        raise ConfigError(
            f"config key 'output': the run would write '{longest}', whose name is "
            f"{longest_name(longest)} bytes long; the filesystem allows {limit}: choose a shorter output name"
        )
    for url in (path for path in [*run.outputs, run.summary, run.lock] if objects.is_object(path)):
        key = url[len(objects.SCHEME) :].partition("/")[2]
        if len(key.encode()) > objects.MAX_KEY_BYTES:
            raise ConfigError(f"config key 'output': the run would write '{url}', whose key is "
                              f"{len(key.encode())} bytes long; S3 allows {objects.MAX_KEY_BYTES}: choose a "
                              "shorter output name")

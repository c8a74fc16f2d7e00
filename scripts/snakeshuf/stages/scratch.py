"""Where one run's intermediate files live: a directory of its own under the
configured scratch directory, named after the output and a hash of its full
path, so that runs of different outputs never share a file.

    plan-<hash>.json          the run spec (snakeshuf.planning.spec)
    runs/<chunk>.run          a split job's run file, and
    runs/<chunk>.index.npy    its index
    runs/buckets.npy          the bucket table (rule tally_buckets, large plans), and
    runs/files.npy            where each output file starts in the order
    runs/selection.npz        the candidates chosen for extra copies (fractional weights),
                              or the distinct records counted (dedup)
    buckets/<bucket>.json     what a bucket job wrote (snakeshuf.stages.buckets)
    piped/<i>/<name>          the copy of the i-th input, a pipe (snakeshuf.sources.pipes)
    objects.json              what the main process learnt of the inputs in object storage,
                              which cluster jobs recall (snakeshuf.sources.objects)
    pieces/<file>-<column>-<bucket>.piece   a bucket's records of one output file
    locks/<job>.lock          held by the running instance of a job (snakeshuf.stages.jobs.claim)

Called with no arguments, the methods give the patterns the rules use
("{chunk}", "{bucket}" are wildcards).
"""

import hashlib
import os
from dataclasses import dataclass

from snakeshuf.sources import objects

PIPED = "piped"
# This much of the output's name, then a hash of its full path.
NAME_CHARS = 64


def run_directory(scratch, output):
    """The subdirectory of `scratch` that holds the intermediates of `output`."""
    where = objects.store_and(output) if objects.is_object(output) else os.path.abspath(output)
    digest = hashlib.sha1(where.encode("utf-8", "surrogateescape")).hexdigest()
    if scratch.startswith("-"):  # job commands would read it as an option
        scratch = os.path.join(os.curdir, scratch)
    return os.path.join(scratch, f"{os.path.basename(output)[:NAME_CHARS]}-{digest[:8]}")


@dataclass(frozen=True)
class Scratch:
    root: str

    def plan(self, digest):
        return os.path.join(self.root, f"plan-{digest}.json")

    def run(self, chunk="{chunk}"):
        return os.path.join(self.root, "runs", f"{chunk}.run")

    def index(self, chunk="{chunk}"):
        return os.path.join(self.root, "runs", f"{chunk}.index.npy")

    @property
    def table(self):
        return os.path.join(self.root, "runs", "buckets.npy")

    @property
    def bounds(self):
        return os.path.join(self.root, "runs", "files.npy")

    @property
    def selection(self):
        return os.path.join(self.root, "runs", "selection.npz")

    def piped(self, index, path):
        """The copy of the index-th configured input, the pipe `path` (snakeshuf.sources.pipes)."""
        return os.path.join(self.root, PIPED, str(index), os.path.basename(path))

    def shown(self, path):
        """How the summary names an input: a pipe's copy by the pipe's own name ('-' for stdin)."""
        inside = os.path.dirname(os.path.dirname(path)) == os.path.join(self.root, PIPED)
        return os.path.basename(path) if inside else path

    @property
    def object_facts(self):
        """What the main process learnt of the run's objects (snakeshuf.sources.objects.remember)."""
        return os.path.join(self.root, "objects.json")

    @property
    def lock_holder(self):
        """Which run holds an object output's lock (snakeshuf.outputs.destinations.record_holder)."""
        return os.path.join(self.root, "lock-holder")

    def stats(self, bucket="{bucket}"):
        return os.path.join(self.root, "buckets", f"{bucket}.json")

    @property
    def pieces(self):
        return os.path.join(self.root, "pieces")

    def job_lock(self, job):
        return os.path.join(self.root, "locks", f"{job}.lock")

    def piece(self, file, column, bucket):
        return os.path.join(self.pieces, f"{file}-{column}-{bucket}.piece")

"""Checks that need the filesystem as it is when the run starts, not while
Snakemake only parses the workflow: run by the main process just before the
first job (the Snakefile's onstart), and again by that first job, rule
write_plan, since no onstart runs where snakeshuf is a module."""

import os

from snakeshuf.control.console import note
from snakeshuf.control.disk import check_writable, shortfalls
from snakeshuf.errors import ConfigError
from snakeshuf.planning.memory import MemoryModel
from snakeshuf.planning.plan import total_data_bytes


def check_places(spec):
    """Raise ConfigError if the scratch or the output directory is not writable."""
    problem = check_writable(os.path.dirname(spec.scratch), spec.target)
    if problem:
        raise ConfigError(problem)


def check(spec, check_disk_space, memory_mb):
    """Raise ConfigError or InputError with what is wrong with the inputs
    (which a split job of `memory_mb` reads) or the disk."""
    for text in spec.records.check_inputs(MemoryModel(memory_mb)):
        note(text)
    if check_disk_space:
        total = total_data_bytes(spec.files)
        problems = shortfalls(total, spec.scratch, spec.target, pieces=not spec.in_place)
        if problems:
            raise ConfigError("\n  ".join(problems))

"""Checks that need the filesystem as it is when the run starts: run by the
main process just before the first job (the Snakefile's onstart), not while
Snakemake only parses the workflow."""

from snakeshuf.disk import check_writable, shortfalls
from snakeshuf.errors import ConfigError
from snakeshuf.records import common_header


def check_places(spec, scratch_root):
    """Raise ConfigError if the scratch or the output directory is not writable."""
    problem = check_writable(scratch_root, spec.output)
    if problem:
        raise ConfigError(problem)


def check(spec, plan, check_disk_space):
    """Raise ConfigError or InputError with what is wrong with the inputs or the disk."""
    if spec.header_lines:
        common_header(spec.files, spec.header_lines, spec.separator)
    if check_disk_space:
        problems = shortfalls(plan.total_bytes, spec.scratch, spec.output, pieces=not spec.in_place)
        if problems:
            raise ConfigError("\n  ".join(problems))

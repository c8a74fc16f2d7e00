"""Inputs that are pipes, as with shuf: standard input ('-'), a FIFO, a
process substitution (<(zcat x)) or a character device such as /dev/null.

A pipe can be read once and cannot be cut into byte ranges for parallel
split jobs, so the main process copies each one, streaming in blocks (never
all in memory), into the run's scratch directory while it plans, and the
run shuffles the copy. A copy is new on every run (its mtime changes), so a
run reading a pipe is never up to date. Other processes that parse the
workflow (cluster jobs) find the copy instead of the pipe, which is not theirs.
"""

import errno
import fcntl
import os
import shutil
import stat
import sys

from snakeshuf.errors import ConfigError
from snakeshuf.stages.jobs import atomic_write

STDIN = "-"
COPY_BYTES = 1 << 20
SPLICE_BYTES = 1 << 22
PIPE_MAX_SIZE = "/proc/sys/fs/pipe-max-size"
WIDEST_PIPE_BYTES = 1 << 22


def is_pipe(path):
    if path == STDIN:
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def opened(path):
    """The pipe as a binary stream; a terminal on standard input is refused."""
    if path != STDIN:
        return open(path, "rb")
    if sys.stdin is None or sys.stdin.isatty():
        raise ConfigError(
            "input '-' is standard input, which is a terminal here: pipe the records in, "
            "e.g. zcat corpus.gz | snakeshuf - -o out.txt"
        )
    return os.fdopen(os.dup(sys.stdin.fileno()), "rb")


def copy(path, to):
    """Copy the pipe `path` into the file `to` (complete or not at all)."""
    try:
        source = opened(path)
    except OSError as error:
        raise ConfigError(f"input '{path}' cannot be read: {error.strerror}") from None
    with source:
        try:
            os.makedirs(os.path.dirname(to), exist_ok=True)
            with atomic_write(to, durable=False) as target:  # a crashed run's copy is never reused
                drain(source, target)
        except OSError as error:
            raise ConfigError(
                f"input '{path}' is a pipe, which the run copies into '{to}' first, and that failed "
                f"({error.strerror}): check the space and permissions of config key 'scratch'"
            ) from None


def drain(source, target):
    """Copy all of `source` into `target`: kernel-side (splice) from a pipe,
    which is 1.1-2.5x faster than through Python's buffers (1 GiB from cat),
    else in blocks."""
    widen(source.fileno())
    try:
        while os.splice(source.fileno(), target.fileno(), SPLICE_BYTES):
            pass
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOSYS):  # not a pipe (a device, a file)
            raise
        shutil.copyfileobj(source, target, COPY_BYTES)


def widen(fd):
    """Give the pipe `fd` the largest buffer an unprivileged process may (1 MiB
    by default): with the default 64 KiB each splice moves 16 pages, and a
    4 GiB copy from cat took 9-17 s instead of 4.4 s. Not a pipe, or one
    the writer made wider: left as is."""
    try:
        with open(PIPE_MAX_SIZE) as limit:
            wanted = min(int(limit.read()), WIDEST_PIPE_BYTES)
        if fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) < wanted:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, wanted)
    except (OSError, ValueError):
        pass


COPIED = {}  # in the main process: each pipe's copy, to the pipe's own name (named_in)


def named_in(message):
    """`message` with each copy of a pipe named as the person gave it ('-',
    /dev/fd/63): the copy lives in a directory that is gone when they read it."""
    for copied, path in COPIED.items():
        message = message.replace(copied, path)
    return message


def resolve(paths, copy_path, main_process):
    """`paths` with each pipe replaced by its copy, `copy_path(i, path)` for the
    i-th path; the main process makes the copies."""
    resolved = []
    for i, path in enumerate(paths):
        if main_process and is_pipe(path):
            copy(path, copy_path(i, path))
            COPIED[copy_path(i, path)] = path
            path = copy_path(i, path)
        elif not main_process and not os.path.isfile(path) and os.path.isfile(copy_path(i, path)):
            path = copy_path(i, path)
        resolved.append(path)
    return resolved

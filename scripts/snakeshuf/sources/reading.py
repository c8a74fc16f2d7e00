"""An input's bytes, wherever they are: a local file (a piped input has been
copied into one by then, snakeshuf.sources.pipes) or an object in object
storage (snakeshuf.sources.objects). Every job and check opens inputs here."""

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from snakeshuf.errors import InputError
from snakeshuf.sources import objects


def open_input(path):
    """A binary file of the input's bytes: read, readinto, seek and tell."""
    return objects.open_input(path) if objects.is_object(path) else open(path, "rb", buffering=0)


def location(path):
    """Where an input is, the same from any directory: a URL as given, a path made real."""
    return path if objects.is_object(path) else os.path.realpath(path)


def for_each(function, inputs):
    """[function(x) for x in inputs] (paths, or plan.InputFiles), the calls
    made at once where any input is an object (each a request or more
    away); an error is the first input's, in order, as one after another."""
    if not any(objects.is_object(getattr(x, "path", x)) for x in inputs):
        return [function(x) for x in inputs]
    with ThreadPoolExecutor(objects.REQUESTS_AT_ONCE) as pool:
        return list(pool.map(function, inputs))


def reads_at_once(path):
    """How many small positional reads of input `path` are worth making at once."""
    return objects.REQUESTS_AT_ONCE if objects.is_object(path) else 1  # a file's take microseconds


def read_at(handle, offset, size):
    """Up to `size` bytes at `offset` of an input opened by open_input,
    without moving its position: threads may share the handle."""
    return handle.read_at(size, offset) if hasattr(handle, "read_at") else os.pread(handle.fileno(), size, offset)


def size_of(handle):
    """The size of an input opened by open_input."""
    return handle.size() if hasattr(handle, "size") else os.fstat(handle.fileno()).st_size


@contextmanager
def reported(path):
    """Within it, a read of input `path` that the object store failed (the
    object deleted, the store gone) is an InputError naming the URL; any
    other OSError is left as it is."""
    try:
        yield
    except OSError as error:
        if not (objects.is_object(path) and objects.from_the_store(error)):
            raise
        raise objects.failure(path, error) from None


def identity_of(info):
    """(size, mtime in ns, version) of a file's stat or an object's
    ObjectInfo: what says an input is still the one planned (an object's
    version is its ETag; a file has none)."""
    if isinstance(info, objects.ObjectInfo):
        return info.size, info.mtime_ns, info.etag
    return info.st_size, info.st_mtime_ns, ""


def check_as_planned(f):
    """Stop unless input `f` (plan.InputFile) is still as planned. A job
    calls it after reading: a file modified or replaced before or while it
    read would otherwise mix old records with new ones, or cut one in two."""
    try:
        info = objects.head(f.path) if objects.is_object(f.path) else os.stat(f.path)
    except FileNotFoundError:
        info = None
    except OSError as error:
        raise InputError(f"input '{f.path}' cannot be read: {error.strerror}") from None
    if info is None:
        raise InputError(f"input '{f.path}' no longer exists (it was there when the run was planned); "
                         "run the same command again to re-plan")
    if identity_of(info) != (f.size, f.mtime_ns, f.version):
        raise InputError(f"input '{f.path}' was changed or replaced while the run read it (its size, mtime or "
                         "ETag is not what the run planned with): run the same command again to re-plan")

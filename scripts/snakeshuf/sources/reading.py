"""An input's bytes, wherever they are: a local file (a piped input has been
copied into one by then, snakeshuf.sources.pipes) or an object in object
storage (snakeshuf.sources.objects). Every job and check opens inputs here."""

import os

from snakeshuf.sources import objects


def open_input(path):
    """A binary file of the input's bytes: read, readinto, seek and tell."""
    return objects.open_input(path) if objects.is_object(path) else open(path, "rb", buffering=0)


def location(path):
    """Where an input is, the same from any directory: a URL as given, a path made real."""
    return path if objects.is_object(path) else os.path.realpath(path)


def size_of(handle):
    """The size of an input opened by open_input."""
    return handle.size() if hasattr(handle, "size") else os.fstat(handle.fileno()).st_size

"""The failures snakeshuf explains to people, each with a message that says
what is wrong, which key or file, and what to do. The main process prints a
ConfigError or InputError before any job runs; a job prints any of them as one
line (jobs.run) and exits 1. Anything else is a bug, and keeps its traceback.
"""


class ConfigError(Exception):
    """A configuration problem found before any job runs."""


class InputError(Exception):
    """Input that cannot be shuffled as planned."""


class RecordTooLarge(InputError):
    """A record longer than a job's memory allows; `length` and `limit` let the
    job say which memory_mb would hold it."""

    def __init__(self, message, length=0, limit=0):
        super().__init__(message)
        self.length, self.limit = length, limit


class WindowTooLarge(InputError):
    """A compressed input whose decoder needs more memory (`needed` bytes of
    window) than a job's budget gives it."""

    def __init__(self, message, needed=0):
        super().__init__(message)
        self.needed = needed


class LayoutError(InputError):
    """The output layout asks for more records than the inputs hold."""


class OutputError(Exception):
    """An output that cannot be written where it was asked for (an object store's refusal)."""


class IntegrityError(Exception):
    """An intermediate file does not match what its writer recorded."""


class JobClash(Exception):
    """Another instance of the same job is running (snakeshuf.stages.jobs.claim)."""


class CorruptStream(Exception):
    """A compressed input ends inside a frame or holds a reserved block."""


class InjectedFault(Exception):
    """A failure the tests asked for (SNAKESHUF_FAIL_BUCKETS)."""

"""Reading the records of a byte range of an input file, in bounded memory.

A record is the bytes up to and including a separator byte. A byte range
[start, end) owns the records that *start* inside it (as Hadoop's input splits
do), so consecutive ranges of one file own every record exactly once. Bytes
are never decoded.
"""

import math
from dataclasses import dataclass

import numpy as np

from snakeshuf.errors import CorruptStream, InputError, RecordTooLarge, WindowTooLarge
from snakeshuf.records import codecs
from snakeshuf.sources.reading import open_input, reported, size_of

SCAN_PIECE = 1 << 20


@dataclass
class Batch:
    """Consecutive records of one input: `data` holds them back to back."""

    data: np.ndarray  # uint8; every record ends with the separator
    ends: np.ndarray  # int64, exclusive end of each record within data
    offset: int  # input byte offset of data[0]

    @property
    def starts(self):
        return np.concatenate(([0], self.ends[:-1]))

    @property
    def positions(self):
        """What keys each record: its byte offset in the input."""
        return self.offset + self.starts


def separator_ends(data, sep, max_records=None):
    """End positions (one past each separator) in `data`, scanned in small pieces
    so that the temporary arrays stay small; stops after `max_records`."""
    found, count = [], 0
    for lo in range(0, len(data), SCAN_PIECE):
        hits = np.flatnonzero(data[lo : lo + SCAN_PIECE] == sep)
        found.append(hits + (lo + 1))
        count += len(hits)
        if max_records is not None and count >= max_records:
            break
    ends = np.concatenate(found) if found else np.empty(0, np.int64)
    return ends[:max_records] if max_records is not None else ends


def record_ends(data, sep, lines_per_record=1):
    """End positions of the records of `data`, each `lines_per_record` separators long."""
    ends = separator_ends(data, sep)
    return ends[lines_per_record - 1 :: lines_per_record] if lines_per_record > 1 else ends


def check_unchanged(handle, path, planned_size):
    size = size_of(handle)
    if size != planned_size:
        raise InputError(
            f"input '{path}' changed size since the run was planned "
            f"({planned_size} -> {size} bytes); run the same command again to re-plan"
        )


def first_record_start(handle, start, end, sep, buf):
    """Offset of the first record that starts in [start, end), or None."""
    if start == 0:
        return 0
    handle.seek(start - 1)
    pos = start - 1
    while pos < end:
        got = handle.readinto(buf)
        if not got:
            return None
        hits = np.flatnonzero(buf[:got] == sep)
        if len(hits):
            first = pos + int(hits[0]) + 1
            return first if first < end else None
        pos += got
    return None


def record_too_large(stream, path, offset, sep, buf):
    """The error for a record that fills `buf`: its length is found by reading
    on from where the stream stands (just past the buffer's bytes)."""
    length = len(buf) - 1
    while got := stream.readinto(buf):
        hits = np.flatnonzero(buf[:got] == sep)
        if len(hits):
            length += int(hits[0]) + 1
            break
        length += got
    return RecordTooLarge(
        f"the record at byte offset {offset} of '{path}' is {length} bytes long", length, len(buf) - 1
    )


class RecordReader:
    """Reads the records of byte ranges of inputs as Batches, through one
    buffer (uint8) reused for every batch: a batch is valid only until the
    next one is requested. The buffer's length minus one is the longest
    record allowed (one byte is kept free to terminate a last record that
    lacks its separator); a batch holds at most `max_records` records."""

    def __init__(self, sep, buf, max_records, max_window=None):
        """`max_window`: the most memory a compressed input's decoder may take (None: any)."""
        self.sep, self.buf, self.max_records, self.max_window = sep, buf, max_records, max_window

    def batches(self, f, start, end):
        """The records of input `f` (path, size, codec; a size of None is not
        checked) that start in [start, end). A compressed input is read from
        `start`, a record boundary, to its end (offsets count decompressed bytes)."""
        with reported(f.path), open_input(f.path) as raw:
            if f.size is not None:
                check_unchanged(raw, f.path, f.size)
            if f.codec is codecs.PLAIN:
                pos = first_record_start(raw, start, end, self.sep, self.buf)
                if pos is not None:
                    raw.seek(pos)
                    yield from self.stream(raw, f.path, pos, end)
                return
            try:
                with codecs.open_stream(raw, f.codec, self.max_window) as stream:
                    skip(stream, start, self.buf)
                    yield from self.stream(stream, f.path, start, math.inf)
            except WindowTooLarge as error:
                raise WindowTooLarge(f"input '{f.path}' ({f.codec}): {error}", error.needed) from None
            except (CorruptStream, *codecs.ERRORS) as error:
                if "Memory usage limit" in str(error):  # a later xz block's dictionary
                    raise WindowTooLarge(
                        f"input '{f.path}' ({f.codec}): a block's decoder needs more than "
                        f"{self.max_window:,} bytes of window", 2 * self.max_window,
                    ) from None
                raise InputError(
                    f"input '{f.path}' is not a valid {f.codec} file ({error or type(error).__name__}); "
                    "it may be truncated or corrupt: fetch or compress it again"
                ) from None

    def stream(self, stream, path, pos, end):
        """Batches of the records starting in [pos, end), read on from `pos`."""
        buf, sep = self.buf, self.sep
        capacity, filled, at_eof = len(buf) - 1, 0, False
        while pos < end:
            if not at_eof and filled < capacity:
                got = stream.readinto(memoryview(buf)[filled:capacity])
                at_eof = got == 0
                filled += got
            ends = separator_ends(buf[:filled], sep, self.max_records)
            if len(ends) == 0:
                if not at_eof:
                    if filled == capacity:
                        raise record_too_large(stream, path, pos, sep, buf)
                    continue
                if filled == 0:
                    return
                buf[filled] = sep  # the last record lacks its separator: add it
                filled += 1
                ends = np.array([filled], np.int64)
            owned = int(np.searchsorted(ends, end - pos, side="left")) + 1
            ends = ends[:owned]
            used = int(ends[-1])
            yield Batch(buf[:used], ends, pos)
            buf[: filled - used] = buf[used:filled].copy()
            filled -= used
            pos += used


def skip(stream, count, buf):
    """Read past the first `count` bytes of a stream that cannot seek."""
    while count > 0:
        got = stream.readinto(memoryview(buf)[: min(count, len(buf))])
        if not got:
            return
        count -= got


HEADER_LIMIT = 1 << 20


@dataclass
class Unchecked:
    """An input read without checking its planned size."""

    path: str
    codec: str
    size: int = None


def read_header(path, codec, lines, sep):
    """The first `lines` records of an input (at most HEADER_LIMIT bytes)."""
    try:
        return first_records(path, codec, lines, sep)
    except RecordTooLarge as error:
        raise header_too_long(path, lines, f"one of its lines alone is {error.length:,} bytes") from None


def first_records(path, codec, lines, sep):
    reader = RecordReader(sep, np.empty(HEADER_LIMIT + 1, np.uint8), lines)
    batches = reader.batches(Unchecked(path, codec), 0, math.inf)
    first = next(batches, None)
    found = 0 if first is None else len(first.ends)
    if found == lines:
        return first.data[: first.ends[-1]].tobytes()
    if found == 0 or next(batches, None) is None:
        raise InputError(
            f"input '{path}' has {found} record(s), fewer than header_lines={lines}: "
            "every input must start with the header"
        )
    raise header_too_long(path, lines, "")


def header_too_long(path, lines, detail):
    return InputError(
        f"the header of '{path}' (its first {lines} line(s), config key 'header_lines') is longer than "
        f"the {HEADER_LIMIT:,} bytes a header may have{': ' + detail if detail else ''}; is header_lines right?"
    )


def common_header(files, lines, sep):
    """The header every input starts with; an error names two inputs that differ."""
    first = files[0]
    header = read_header(first.path, first.codec, lines, sep)
    for f in files[1:]:
        other = read_header(f.path, f.codec, lines, sep)
        if other != header:
            raise InputError(
                f"inputs '{first.path}' and '{f.path}' start with different headers "
                f"(header_lines={lines}): {header[:100]!r} vs {other[:100]!r}; "
                "shuffle files with the same header together"
            )
    return header

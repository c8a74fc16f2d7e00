"""Aligned (paired) inputs: line i of every file of a group is one record, so
that one permutation shuffles them all (machine-translation corpora). The
record's key comes from its line index, not a byte offset."""

import math

import numpy as np

from snakeshuf.errors import InputError
from snakeshuf.records.lines import Batch, RecordReader
from snakeshuf.stages.runfile import as_records, take


class LineQueue:
    """Lines read ahead from one of several aligned files (copies: the
    reader's buffer is reused)."""

    def __init__(self, batches):
        self.batches = batches
        self.data = np.empty(0, np.uint8)
        self.ends = np.empty(0, np.int64)
        self.done = False

    def fill(self):
        """Read one more batch unless the file is finished; returns whether it read."""
        batch = next(self.batches, None)
        if batch is None:
            self.done = True
            return False
        self.ends = np.concatenate((self.ends, batch.ends + len(self.data)))
        self.data = np.concatenate((self.data, batch.data))
        return True

    def take(self, count):
        """The first `count` lines (data, ends), removed from the queue."""
        used = int(self.ends[count - 1]) if count else 0
        data, ends = self.data[:used], self.ends[:count]
        self.data, self.ends = self.data[used:], self.ends[count:] - used
        return data, ends

    def count_rest(self):
        """Lines left, counted as they are read, not kept: an unmatched tail
        may be far larger than memory."""
        count = len(self.ends)
        self.data, self.ends = np.empty(0, np.uint8), np.empty(0, np.int64)
        for batch in self.batches:
            count += len(batch.ends)
        self.done = True
        return count


def interleave(pieces):
    """Record i = line i of every file, joined in file order: (data, ends)."""
    bases = np.cumsum([0] + [len(data) for data, _ in pieces[:-1]])
    joined = np.concatenate([data for data, _ in pieces])
    line_ends = np.concatenate([ends + base for (_, ends), base in zip(pieces, bases)])
    files, lines = len(pieces), len(pieces[0][1])
    order = np.arange(files * lines).reshape(files, lines).T.ravel()
    data = np.frombuffer(take(as_records(joined, line_ends), order), np.uint8)
    lengths = sum(np.diff(ends, prepend=0) for _, ends in pieces)
    return data, np.cumsum(lengths)


def aligned_batches(files, sep, buf_bytes, max_records, max_window=None):
    """Batches of records made of line i of each file in `files` (aligned
    inputs); a batch's `offset` is its first line's index. Files of different
    lengths are an error naming both counts."""
    queues = [
        LineQueue(RecordReader(sep, np.empty(buf_bytes + 1, np.uint8), max_records, max_window).batches(f, 0, math.inf))
        for f in files
    ]
    line = 0
    while True:
        for queue in queues:
            if len(queue.ends) == 0 and not queue.done:
                queue.fill()
        ready = min(len(q.ends) for q in queues)
        if ready == 0:
            break
        data, ends = interleave([q.take(ready) for q in queues])
        yield Batch(data, ends, line)
        line += ready
    counts = [line + q.count_rest() for q in queues]
    if len(set(counts)) > 1:
        short, long = counts.index(min(counts)), counts.index(max(counts))
        raise InputError(
            f"paired inputs '{files[short].path}' ({counts[short]:,} lines) and '{files[long].path}' "
            f"({counts[long]:,} lines) are not aligned: files paired in config key 'paired' must have "
            "the same number of lines"
        )

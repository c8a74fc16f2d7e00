"""Checksums that catch corrupted or truncated intermediate files.

`word_sum` is the sum, modulo 2^64, of a byte stream's little-endian 64-bit
words (the last one zero-padded). Any single changed byte changes it; it runs
at memory speed; and slices of a stream can be summed separately and added,
whatever their sizes, because each slice is summed at its stream position.
"""

import numpy as np

MASK64 = (1 << 64) - 1


class IntegrityError(Exception):
    """An intermediate file does not match what its writer recorded."""


def _loose_bytes(data, position):
    """Sum of bytes summed one by one, each at its place within its 64-bit word."""
    shifts = (np.arange(position, position + len(data), dtype=np.uint64) % np.uint64(8)) * np.uint64(8)
    return int((data.astype(np.uint64) << shifts).sum(dtype=np.uint64))


def word_sum(data, position=0):
    """Checksum of `data`, the bytes at offset `position` of a stream."""
    data = np.frombuffer(data, np.uint8)
    head = min((-position) % 8, len(data))
    body = (len(data) - head) // 8 * 8
    total = _loose_bytes(data[:head], position)
    total += int(data[head : head + body].view("<u8").sum(dtype=np.uint64))
    total += _loose_bytes(data[head + body :], position + head + body)
    return total & MASK64

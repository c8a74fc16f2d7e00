"""Checksums that catch corrupted, truncated or reordered intermediate files.

`checksum` is CRC-32C (Castagnoli), computed by the crc32c package with the
processor's CRC instructions (~15 GB/s measured here, against the ~200 MB/s
per core that a job handles). Unlike a sum of words, it depends on where each
byte is: swapped, moved or misdirected blocks change it. A stream is
checksummed piece by piece, each call continuing from the last.
"""

import crc32c


def checksum(data, previous=0):
    """CRC-32C of the bytes of `data` (any buffer), continuing from the
    checksum `previous` of the bytes before them."""
    return crc32c.crc32c(data, previous)

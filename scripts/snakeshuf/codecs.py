"""Compression, in and out.

Inputs are recognised by their first bytes (not their names) and read as one
stream of records, in bounded memory. Outputs are compressed when their name
ends in .gz or .zst: each bucket job writes its pieces as whole gzip members
or zstd frames, and a file made of such pieces, joined, is a valid file.
"""

import bz2
import gzip
import lzma
import os
import struct
import zlib

import zstandard

from snakeshuf.errors import CorruptStream

MAGIC = {
    "gzip": b"\x1f\x8b",
    "bzip2": b"BZh",
    "xz": b"\xfd7zXZ\x00",
    "zstd": b"\x28\xb5\x2f\xfd",
}
PLAIN = None
READ_SIZE = 1 << 20
ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError)


def detect(path):
    """The codec whose magic bytes start the file, or PLAIN."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    for codec, magic in MAGIC.items():
        if head.startswith(magic):
            return codec
    return PLAIN


def open_stream(raw, codec):
    """A readable binary stream of the decompressed bytes of the open file `raw`."""
    if codec == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if codec == "bzip2":
        return bz2.BZ2File(raw, mode="rb")
    if codec == "xz":
        return lzma.LZMAFile(raw, mode="rb")
    if codec == "zstd":
        check_zstd_frames(raw)
        raw.seek(0)
        return zstandard.ZstdDecompressor().stream_reader(raw, read_size=READ_SIZE, read_across_frames=True)
    raise ValueError(f"unknown codec {codec!r}")


ZSTD_FRAME = 0xFD2FB528
SKIPPABLE_FRAMES = range(0x184D2A50, 0x184D2A60)


def check_zstd_frames(raw):
    """Walk the frame and block headers of a zstd file (RFC 8878, section 3.1):
    zstandard's stream reader ends quietly where a truncated file ends, so
    completeness is checked here, one 3-byte block header per block."""
    size = raw.seek(0, 2)
    pos = 0
    while pos < size:
        magic = read_exactly(raw, pos, 4, size)
        (word,) = struct.unpack("<I", magic)
        if word in SKIPPABLE_FRAMES:
            (length,) = struct.unpack("<I", read_exactly(raw, pos + 4, 4, size))
            pos += 8 + length
        elif word == ZSTD_FRAME:
            pos = skip_zstd_frame(raw, pos + 4, size)
        else:
            raise CorruptStream(f"no zstd frame at byte {pos}")
    if pos > size:
        raise CorruptStream("the file ends inside a zstd frame")


def skip_zstd_frame(raw, pos, size):
    """Position just after the frame whose header starts at `pos`."""
    descriptor = read_exactly(raw, pos, 1, size)[0]
    single_segment = descriptor >> 5 & 1
    content_size_bytes = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]
    dictionary_bytes = (0, 1, 2, 4)[descriptor & 3]
    pos += 1 + (0 if single_segment else 1) + dictionary_bytes + content_size_bytes
    last = False
    while not last:
        header = int.from_bytes(read_exactly(raw, pos, 3, size), "little")
        last, block_type, block_size = header & 1, header >> 1 & 3, header >> 3
        if block_type == 3:
            raise CorruptStream(f"reserved block type at byte {pos}")
        pos += 3 + (1 if block_type == 1 else block_size)
    return pos + (4 if descriptor >> 2 & 1 else 0)


def read_exactly(raw, pos, count, size):
    if pos + count > size:
        raise CorruptStream("the file ends inside a zstd frame")
    raw.seek(pos)
    return raw.read(count)


OUTPUT_SUFFIXES = {".gz": "gzip", ".zst": "zstd"}
GZIP_LEVEL = 6
ZSTD_LEVEL = 3


def output_codec(path):
    """The codec an output file's name asks for, or PLAIN."""
    return OUTPUT_SUFFIXES.get(os.path.splitext(path)[1], PLAIN)


def compress(data, codec):
    """One whole gzip member or zstd frame (or the bytes themselves)."""
    if codec == "gzip":
        return gzip.compress(bytes(data), GZIP_LEVEL, mtime=0)
    if codec == "zstd":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).compress(bytes(data))
    return bytes(data)


def compressing(sink, codec):
    """A writer that compresses into the file object `sink` as one member or
    frame, or None for plain output."""
    if codec == "gzip":
        return gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
    if codec == "zstd":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).stream_writer(sink, closefd=False)
    return None

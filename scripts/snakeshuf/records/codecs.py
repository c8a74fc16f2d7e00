"""Compression, in and out.

Inputs are recognised by their first bytes (not their names) and read as one
stream of records, in bounded memory. A compressed input is read whole, every
member, stream and frame of it, or refused: it is accepted exactly when the
codec's own `-t` accepts it without a warning. Outputs are compressed when their name
ends in .gz or .zst: each bucket job writes its pieces as whole gzip members
or zstd frames, and a file made of such pieces, joined, is a valid file.
"""

import bz2
import gzip
import io
import lzma
import os
import struct
import zlib

import zstandard

from snakeshuf.errors import CorruptStream, InputError, WindowTooLarge
from snakeshuf.sources.reading import open_input, reported

PLAIN = None
PARQUET = "parquet"  # not a compression: a table, whose records are its rows (snakeshuf.records.formats)
ZSTD_MAX_WINDOW = 1 << 31  # the largest zstd accepts as a limit (its format's largest window is 2^31)
XZ_DECODER_BYTES = 1 << 20  # liblzma's decoder beside its dictionary (xz -6: 9 MiB for an 8 MiB one)
READ_SIZE = 1 << 20
ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError)


# Each format's whole signatures, spelled out (a plain text may well start
# with "BZh"; pzstd writes a skippable frame first): a file that is only the
# start of one was cut short.
SIGNATURES = {
    "gzip": [b"\x1f\x8b\x08"],
    "bzip2": [b"BZh%d%s" % (level, block) for level in range(1, 10) for block in (b"1AY&SY", b"\x17rE8P\x90")],
    "xz": [b"\xfd7zXZ\x00"],
    "zstd": [b"\x28\xb5\x2f\xfd", *(bytes([first]) + b"\x2a\x4d\x18" for first in range(0x50, 0x60))],
}
TEXT_PREFIX_BYTES = 4  # a text file may well be "B", "BZh" or "("; "BZh9" or more is not text
# Binary containers that are not lines of text, by their magic bytes at an
# offset, and how to turn each into lines. A text file cannot start with
# these (the tar and zip ones could only be a line of that very text).
PARQUET_MAGIC = b"PAR1"
ENCRYPTED_PARQUET_MAGIC = b"PARE"
CONTAINERS = [
    (0, PARQUET_MAGIC, "a Parquet file", "decompress it first: snakeshuf reads Parquet files (their rows) as they are"),
    (0, b"ARROW1", "an Arrow IPC (Feather v2) file", "export it as JSONL first (pyarrow, DuckDB or Polars)"),
    (0, b"\xff\xff\xff\xff", "an Arrow IPC stream", "export it as JSONL first (pyarrow, DuckDB or Polars)"),
    (0, b"FEA1", "a Feather (v1) file", "export it as JSONL first (pyarrow or pandas)"),
    (0, b"PK\x03\x04", "a zip archive", "unpack it and give the files inside"),
    (0, b"PK\x05\x06", "a zip archive (empty)", "unpack it and give the files inside"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "unpack it and give the files inside"),
    (257, b"ustar", "a tar archive", "unpack it (tar -xf) and give the files inside"),
]
CONTAINER_HEAD_BYTES = 512
# Cheap to decode a few bytes of, at the start of a run; a bzip2 stream
# decodes only whole blocks of up to 900 kB, so a .tar.bz2 is not looked into.
PEEK_CODECS = ("gzip", "xz", "zstd")


def detect(path):
    """The codec whose signature starts the file, or PLAIN; a file that is
    only the start of a signature is refused as cut short, and so is one
    named as compressed that holds no compressed stream (an empty one too:
    the codec's own -t says it is damaged)."""
    with reported(path), open_input(path) as handle:
        first = handle.read(CONTAINER_HEAD_BYTES)
        ends_framed = first.startswith(PARQUET_MAGIC) and ends_with(handle, PARQUET_MAGIC)
    head = first[:10]
    for codec, signatures in SIGNATURES.items():
        if any(head.startswith(signature) for signature in signatures):
            return codec
    if head.startswith(PARQUET_MAGIC) and not is_text_like(first):
        if ends_framed:
            return PARQUET
        raise InputError(f"input '{path}' starts like a Parquet file but does not end like one (PAR1): it was cut "
                         "short; fetch or write it again")
    if head.startswith(ENCRYPTED_PARQUET_MAGIC):
        raise InputError(f"input '{path}' is an encrypted Parquet file: decrypt it first (snakeshuf reads Parquet "
                         "files whose footer is not encrypted)")
    cut_short = cut_short_codec(head)
    if cut_short:
        raise InputError(
            f"input '{path}' holds only {len(head)} bytes, the start of a {cut_short} file's header: "
            f"it is a {cut_short} file cut short; fetch or compress it again"
        )
    if os.path.splitext(path)[1].lower() == ".parquet":
        raise InputError(f"input '{path}' is named as a Parquet file but is {'empty' if not head else 'not one'} "
                         "(a Parquet file starts with PAR1): it was cut short or is another format; fetch or "
                         "write it again, or rename it")
    named = NAMED_CODECS.get(os.path.splitext(path)[1].lower())
    if named:
        raise InputError(
            f"input '{path}' is named as a {named} file but is {'empty' if not head else 'not one'}: "
            f"it was cut short or never compressed; fetch or compress it again, or rename it"
        )
    return PLAIN


NAMED_CODECS = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd"}


def is_text_like(head):
    """Whether a file's first bytes could be lines of text: UTF-8 without NUL
    (a Parquet file's first page header, right after PAR1, is neither)."""
    text = head.decode("utf-8", errors="ignore").encode()  # a character cut at the end is not binary
    return b"\0" not in head and len(head) - len(text) < 4


def ends_with(handle, magic):
    """Whether the open file ends with `magic` (a Parquet file ends with PAR1, as it begins)."""
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - len(magic)))
    return handle.read() == magic


def container_of(head):
    """(what, how to read it) of the binary container that `head` (a file's
    first bytes, decompressed) starts, or None."""
    for offset, magic, what, how in CONTAINERS:
        if head[offset : offset + len(magic)] == magic:
            return what, how
    return None


def check_not_container(f):
    """Refuse an input (plan.InputFile) that is a Parquet, Arrow, zip, tar or
    7-Zip file, compressed or not: its bytes are not lines of text."""
    with reported(f.path), open_input(f.path) as raw:
        head = raw.read(CONTAINER_HEAD_BYTES)
        if f.codec in PEEK_CODECS:
            raw.seek(0)
            try:
                with open_stream(raw, f.codec) as stream:
                    head = stream.read(CONTAINER_HEAD_BYTES)
            except (*ERRORS, CorruptStream):
                return  # refused, with its reason, when it is read
        elif f.codec is not PLAIN:
            return
    found = container_of(head) if not (head.startswith(PARQUET_MAGIC) and f.codec is PLAIN) else None
    if found:
        what, how = found
        inside = f" (inside its {f.codec} compression)" if f.codec else ""
        raise InputError(f"input '{f.path}' is {what}{inside}, not lines of text: {how}")


def cut_short_codec(head):
    """The codec of whose signature the whole of `head` (a file under 10
    bytes) is the start, unless it may be text."""
    if not head or len(head) >= 10 or (len(head) < TEXT_PREFIX_BYTES and is_utf8(head)):
        return None
    for codec, signatures in SIGNATURES.items():
        if any(signature.startswith(head) and len(signature) > len(head) for signature in signatures):
            return codec
    return None


def is_utf8(data):
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def open_stream(raw, codec, max_window=None):
    """A readable binary stream of the decompressed bytes of the open file
    `raw`; a decoder that would need more than `max_window` bytes (an xz
    dictionary, a zstd window) is refused with WindowTooLarge first."""
    if max_window is not None:
        check_window(raw, codec, max_window)
        raw.seek(0)
    if codec == "zstd":
        check_zstd_frames(raw)
        raw.seek(0)
        decoder = zstandard.ZstdDecompressor(max_window_size=min(max_window or 0, ZSTD_MAX_WINDOW))
        return decoder.stream_reader(raw, read_size=READ_SIZE, read_across_frames=True)
    if codec in STREAM_FORMATS:
        return Streams(raw, codec, max_window)
    raise ValueError(f"unknown codec {codec!r}")


def check_window(raw, codec, max_window):
    """Refuse a file whose first frame or block asks for a window larger than
    `max_window` (later ones are held to it by the decoder itself)."""
    head = raw.read(64)
    needed = {"zstd": zstd_window, "xz": xz_dictionary}.get(codec, lambda _: 0)(head)
    if needed > max_window:
        raise WindowTooLarge(f"its decoder needs a window of {needed:,} bytes", needed)


def zstd_window(head):
    """The first frame's window, or its content size if that is smaller (the
    window fills only as far as the content goes)."""
    try:
        frame = zstandard.get_frame_parameters(head)
    except zstandard.ZstdError:
        return 0  # a skippable frame first, or damage: the decoder's own limit and checks decide
    known = frame.content_size if frame.content_size > 0 else frame.window_size
    return min(frame.window_size, known)


def xz_dictionary(head):
    """The LZMA2 dictionary size of the first block (xz format 1.1.0, 3.1),
    0 if it cannot be read here (the decoder's memlimit still holds)."""
    if len(head) < 14 or head[12] == 0:
        return 0
    flags, at = head[13], 14
    for present in (0x40, 0x80):  # compressed size, uncompressed size
        if flags & present:
            at = skip_varint(head, at)
    for _ in range((flags & 3) + 1):
        filter_id, at = read_varint(head, at)
        size, at = read_varint(head, at)
        if filter_id == 0x21 and size == 1 and at < len(head):
            bits = head[at] & 0x3F
            return (2 | (bits & 1)) << (bits // 2 + 11) if bits < 40 else 1 << 32
        at += size
    return 0


def read_varint(data, at):
    value = shift = 0
    while at < len(data):
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            break
    return value, at


def skip_varint(data, at):
    return read_varint(data, at)[1]


class Inflater:
    """zlib's gzip decompressor with the interface of lzma's and bz2's
    (`needs_input`; unread input kept inside), so one loop reads all three."""

    def __init__(self):
        self.inner, self.tail = zlib.decompressobj(wbits=31), b""

    def decompress(self, data, max_length):
        out = self.inner.decompress(self.tail + data, max_length)
        self.tail = self.inner.unconsumed_tail
        return out

    needs_input = property(lambda self: not self.tail)
    eof = property(lambda self: self.inner.eof)
    unused_data = property(lambda self: self.inner.unused_data)


# What may follow a stream: xz's stream padding is zero bytes in fours,
# anywhere between and after streams (xz file format 1.1.0, section 2.2);
# gzip ignores zero bytes at the end of the file; bzip2 allows nothing.
STREAM_FORMATS = {
    "gzip": (Inflater, "end"),
    "bzip2": (bz2.BZ2Decompressor, None),
    "xz": (lambda memlimit=None: lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=memlimit), "fours"),
}


class Streams(io.RawIOBase):
    """The decompressed bytes of every stream of a gzip, bzip2 or xz file in
    turn. Python's own readers take bytes they cannot read after the first
    stream for trailing garbage and end quietly; here they are an error."""

    def __init__(self, raw, codec, max_window=None):
        self.raw = raw
        new, self.padding = STREAM_FORMATS[codec]
        limited = codec == "xz" and max_window  # liblzma counts its whole decoder against the limit
        self.new_decompressor = (lambda: new(max_window + XZ_DECODER_BYTES)) if limited else new
        self.decompressor, self.data, self.at_eof = self.new_decompressor(), b"", False

    def readable(self):
        return True

    def readinto(self, buffer):
        while True:
            if self.decompressor.eof and not self.next_stream():
                return 0
            if self.decompressor.needs_input and not self.data:
                self.fill()
                if not self.data:
                    raise CorruptStream("the file ends inside a compressed stream")
            out = self.decompressor.decompress(self.data, min(len(buffer), READ_SIZE))
            self.data = b""
            if out:
                buffer[: len(out)] = out
                return len(out)

    def fill(self):
        if not self.at_eof:
            self.data = self.raw.read(READ_SIZE)
            self.at_eof = not self.data

    def next_stream(self):
        """Start the next stream after the one just ended; False at the end of the file."""
        self.data = self.decompressor.unused_data
        zeros = self.skip_zeros()
        if not self.data:
            if zeros and self.padding is None or self.padding == "fours" and zeros % 4:
                raise CorruptStream(f"{zeros} zero bytes after the last stream")
            return False
        if zeros and self.padding != "fours" or zeros % 4:
            raise CorruptStream(f"{zeros} zero bytes between streams")
        self.decompressor = self.new_decompressor()
        return True

    def skip_zeros(self):
        """Drop the zero bytes that follow a stream; how many there were."""
        count = 0
        while True:
            if not self.data:
                self.fill()
                if not self.data:
                    return count
            rest = self.data.lstrip(b"\0")
            count += len(self.data) - len(rest)
            self.data = rest
            if rest:
                return count


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
# A compressed output file is a header member, then a gzip member or zstd
# frame for every MEMBER_RECORDS records of the one global order (cut also
# where files begin), so its bytes do not depend on which job compressed what.
MEMBER_RECORDS = 1 << 14
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
        # No file name in the member header: the same bytes whichever file is written.
        return gzip.GzipFile(filename="", fileobj=sink, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
    if codec == "zstd":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).stream_writer(sink, closefd=False)
    return None

"""Compressed inputs are read whole or refused, as the codec's own `-t` judges
them: every member, stream and frame, and only the padding the format allows
(hostile pass, item 1: Python's readers took a damaged second stream for
trailing garbage and published half the records)."""

import bz2
import gzip
import lzma
import random
import subprocess

import pytest
import zstandard

from snakeshuf.errors import InputError
from snakeshuf.records import codecs

COMPRESS = {
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": zstandard.ZstdCompressor(write_checksum=True).compress,
}
STREAMS = 3


def stream_contents():
    rng = random.Random(4)
    lines = [b"%d %x\n" % (i, rng.getrandbits(40)) for i in range(STREAMS * 20000)]
    return [b"".join(lines[s * 20000 : (s + 1) * 20000]) for s in range(STREAMS)]


def flip(data, pos):
    damaged = bytearray(data)
    damaged[pos] ^= 0x55
    return bytes(damaged)


def cases(codec):
    """Files of STREAMS streams, whole and damaged, by name."""
    streams = [COMPRESS[codec](content) for content in stream_contents()]
    whole = b"".join(streams)
    starts = [sum(map(len, streams[:i])) for i in range(STREAMS)]
    files = {
        "one stream": streams[0],
        "many streams": whole,
        "many small streams": b"".join(COMPRESS[codec](b"%d\n" % i) for i in range(50)),
        "truncated": whole[: len(whole) * 2 // 3],
        "last byte missing": whole[:-1],
        "first byte of stream 2 zeroed": whole[: starts[1]] + b"\0" + whole[starts[1] + 1 :],
        "last byte of stream 1 flipped": flip(whole, starts[1] - 1),
        "trailing text": whole + b"junk\n",
        "trailing magic only": whole + COMPRESS[codec](b"x")[:4],
        "8 zero bytes after": whole + bytes(8),
        "3 zero bytes after": whole + bytes(3),
        "4 zero bytes between streams": streams[0] + bytes(4) + streams[1],
    }
    for i, (start, stream) in enumerate(zip(starts, streams)):
        files[f"byte flipped in the middle of stream {i + 1}"] = flip(whole, start + len(stream) // 2)
    return files


def tool_verdict(codec, path):
    """What the codec's own command says: the file's bytes, or None if it
    refuses the file or warns about it."""
    quiet = ["-q"] if codec == "zstd" else []  # zstd reports every file it tests; -q keeps its warnings
    test = subprocess.run([codec, *quiet, "-t", str(path)], capture_output=True)
    if test.returncode or test.stderr:
        return None
    return subprocess.run([codec, "-dc", str(path)], capture_output=True, check=True).stdout


def our_verdict(codec, path):
    try:
        with open(path, "rb", buffering=0) as raw, codecs.open_stream(raw, codec) as stream:
            return stream.read()
    except (codecs.CorruptStream, *codecs.ERRORS):
        return None


@pytest.mark.parametrize("codec", COMPRESS)
def test_compressed_files_are_accepted_exactly_when_the_codecs_own_test_accepts_them(tmp_path, codec):
    verdicts = {}
    for name, data in cases(codec).items():
        path = tmp_path / name.replace(" ", "-")
        path.write_bytes(data)
        assert codecs.detect(path) == codec, name
        expected = tool_verdict(codec, path)
        assert our_verdict(codec, path) == expected, name
        verdicts[name] = expected is not None
    # The matrix holds both kinds: readable files are read in full, damaged ones refused.
    assert verdicts["many streams"] and verdicts["many small streams"]
    assert not verdicts["truncated"] and not verdicts["first byte of stream 2 zeroed"]
    assert not verdicts["trailing text"]


def test_xz_stream_padding_is_read_and_bad_padding_refused(tmp_path):
    content = b"".join(b"%d\n" % i for i in range(1000))
    for zeros, valid in [(8, True), (4, True), (3, False), (6, False)]:
        path = tmp_path / f"padded{zeros}.xz"
        path.write_bytes(lzma.compress(content) + bytes(zeros))
        assert our_verdict("xz", path) == (content if valid else None), zeros


@pytest.mark.parametrize(
    "head, codec",
    [
        (b"BZh is how this line starts\n", codecs.PLAIN),
        (b"BZh9 and then some text\n", codecs.PLAIN),
        (bz2.compress(b"x\n"), "bzip2"),
        (bz2.compress(b""), "bzip2"),
        (b"\x1f\x8b but not deflate\n", codecs.PLAIN),
        (gzip.compress(b"x\n"), "gzip"),
        # pzstd writes a skippable frame before each frame (found by a review: read as text, exit 0)
        (b"\x50\x2a\x4d\x18" + b"\x04\0\0\0abcd" + zstandard.ZstdCompressor().compress(b"x\n"), "zstd"),
    ],
)
def test_formats_are_recognised_by_their_whole_signature(tmp_path, head, codec):
    """Hostile pass, item 13: a text starting with 'BZh' was refused as bzip2."""
    path = tmp_path / "input"
    path.write_bytes(head)
    assert codecs.detect(path) == codec


SUFFIXES = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz", "zstd": ".zst"}


@pytest.mark.parametrize("codec", SUFFIXES)
@pytest.mark.parametrize("content", [b"", b"\x1f", b"(", b"not compressed\n"], ids=["empty", "1f", "(", "text"])
def test_a_file_named_as_compressed_that_holds_no_stream_is_refused(tmp_path, codec, content):
    """Fresh hostile pass: an empty '.gz' was read as an empty input, and a
    '.gz' cut to one byte or never compressed was published as text, exit 0;
    the codec's own -t refuses each."""
    path = tmp_path / ("input.txt" + SUFFIXES[codec])
    path.write_bytes(content)
    with pytest.raises(InputError, match=f"is named as a {codec} file but is|start of a"):
        codecs.detect(path)


COMPRESS = {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress,
            "zstd": zstandard.ZstdCompressor().compress}


@pytest.mark.parametrize("codec", COMPRESS)
def test_a_file_cut_short_inside_its_header_is_refused_not_read_as_text(tmp_path, codec):
    """Found by a hostile pass: 'BZh91AY&' (a bzip2 file cut at 8 bytes) and
    '\\x1f\\x8b' were published as one record of text, exit 0. A short text
    that is the start of a signature ('B', 'BZh', '(') stays text."""
    path = tmp_path / "input"
    whole = COMPRESS[codec](b"".join(b"%d\n" % i for i in range(1000)))
    refused = 0
    for size in range(1, len(codecs.SIGNATURES[codec][0])):  # the signature's length: then -t's own checks
        path.write_bytes(whole[:size])
        if codecs.cut_short_codec(whole[:size]):
            with pytest.raises(InputError, match=f"start of a {codec} file's header"):
                codecs.detect(path)
            refused += 1
        else:
            assert len(whole[:size]) < codecs.TEXT_PREFIX_BYTES and codecs.detect(path) is codecs.PLAIN
    assert refused >= {"gzip": 1, "bzip2": 6, "xz": 5, "zstd": 2}[codec]
    for text in (b"B", b"BZh", b"(", b"P*M"):
        path.write_bytes(text)
        assert codecs.detect(path) is codecs.PLAIN


def test_a_zstd_file_starting_with_a_skippable_frame_is_read_whole(tmp_path):
    content = b"".join(b"%d\n" % i for i in range(1000))
    path = tmp_path / "p.zst"
    path.write_bytes(b"\x50\x2a\x4d\x18" + b"\x04\0\0\0abcd" + COMPRESS["zstd"](content))
    assert codecs.detect(path) == "zstd"
    assert our_verdict("zstd", path) == tool_verdict("zstd", path) == content


def test_a_zstd_input_decodes_at_any_memory(tmp_path):
    """Found by a review: from memory_mb=4225 half the usable memory is past
    zstd's largest window limit (2^31), and every zstd input was refused as corrupt."""
    from snakeshuf.planning.memory import MemoryModel

    path = tmp_path / "in.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b"x\n" * 1000))
    with open(path, "rb") as raw, codecs.open_stream(raw, "zstd", MemoryModel(8192).window_bytes) as stream:
        assert stream.read() == b"x\n" * 1000

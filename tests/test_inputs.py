"""Real corpora in: compressed files (recognised by their bytes), NUL-separated
records, sample sheets and thousands of files."""

import bz2
import gzip
import lzma
from collections import Counter

import pytest
import zstandard

from conftest import corpus_file, records_of, run_workflow


def zstd_two_frames(data):
    """A zstd file of two frames, as parallel compressors write them."""
    cut = data.index(b"\n", len(data) // 2) + 1
    compressor = zstandard.ZstdCompressor(write_checksum=True)
    return compressor.compress(data[:cut]) + compressor.compress(data[cut:])


# Names that do not say what the files are: the codec is read from their bytes.
CODECS = {
    "gzip": ("part.a", gzip.compress),
    "bzip2": ("part.b", bz2.compress),
    "xz": ("part.c", lzma.compress),
    "zstd": ("part.d", zstd_two_frames),
}


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A corpus cut into five pieces; the last has no final newline."""
    d = tmp_path_factory.mktemp("parts")
    data = open(corpus_file(d / "corpus.txt", 3 << 20, seed=9), "rb").read()
    cuts = [0, *(data.index(b"\n", len(data) * i // 5) + 1 for i in range(1, 5)), len(data) - 1]
    return [data[a:b] for a, b in zip(cuts, cuts[1:])]


def write_inputs(workdir, parts, compress):
    """parts[0] stays plain; the others are written as `compress` says."""
    (workdir / "in").mkdir(parents=True)
    paths = []
    for i, (part, codec) in enumerate(zip(parts, [None, *compress])):
        name, compressor = CODECS[codec] if codec else ("plain.txt", bytes)
        path = workdir / "in" / f"{i}-{name}"
        path.write_bytes(compressor(part))
        paths.append(f"in/{path.name}")
    return paths


def shuffled(workdir, inputs, **config):
    run_workflow(workdir, {"inputs": inputs, "output": "out.txt", "memory_mb": 160, "chunk_mb": 1, **config})
    return (workdir / "out.txt").read_bytes()


def test_compressed_inputs_give_the_same_bytes_as_the_plain_ones(tmp_path, parts):
    plain = shuffled(tmp_path / "plain", write_inputs(tmp_path / "plain", parts, [None] * 4))
    packed = shuffled(tmp_path / "packed", write_inputs(tmp_path / "packed", parts, list(CODECS)))
    assert packed == plain
    assert Counter(records_of(tmp_path / "packed" / "out.txt")) == Counter(
        records_of(tmp_path / "plain" / "out.txt")
    )
    assert plain != b"".join(parts) + b"\n"


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_damaged_compressed_input_is_named_and_nothing_is_published(tmp_path, parts, codec, damage):
    name, compressor = CODECS[codec]
    data = bytearray(compressor(parts[1]))
    if damage == "truncated":
        data = data[: len(data) * 2 // 3]
    else:
        data[len(data) // 2] ^= 0x55
    (tmp_path / name).write_bytes(bytes(data))
    result = run_workflow(
        tmp_path, {"inputs": [name], "output": "out.txt", "memory_mb": 160}, "--retries", "0", check=False
    )
    assert result.returncode != 0
    assert f"input '{name}' is not a valid {codec} file" in result.stderr
    assert not (tmp_path / "out.txt").exists()


@pytest.mark.parametrize("codec", ["bzip2", "xz"])
def test_damaged_second_stream_fails_the_run_instead_of_dropping_its_records(tmp_path, parts, codec):
    """Hostile pass, item 1: Python's readers took a damaged second stream for
    trailing garbage, and the run published the first stream's records, exit 0."""
    name, compressor = CODECS[codec]
    first = compressor(parts[1])
    (tmp_path / name).write_bytes(first + b"\0" + compressor(parts[2])[1:])
    result = run_workflow(
        tmp_path, {"inputs": [name], "output": "out.txt", "memory_mb": 160}, "--retries", "0", check=False
    )
    assert result.returncode != 0
    assert f"input '{name}' is not a valid {codec} file" in result.stderr
    assert not (tmp_path / "out.txt").exists()


def test_nul_separated_records_keep_their_newlines(tmp_path):
    records = [b"line %d\nof record %d\x00" % (i, i) for i in range(5000)]
    (tmp_path / "z.bin").write_bytes(b"".join(records))
    out = shuffled(tmp_path, ["z.bin"], separator="nul")
    assert Counter(records_of(tmp_path / "out.txt", b"\x00")) == Counter(records)
    assert out != b"".join(records)


def write_sheet(path, rows, sep="\t"):
    path.write_text(sep.join(["source", "path"]) + "\n" + "".join(f"web{sep}{row}\n" for row in rows))


def test_csv_sample_sheet_lists_files_in_its_order(tmp_path):
    for name in ("b.txt", "a.txt"):
        (tmp_path / name).write_bytes(b"".join(b"%s %d\n" % (name.encode(), i) for i in range(100)))
    paths = [str(tmp_path / "b.txt"), str(tmp_path / "a.txt")]
    write_sheet(tmp_path / "files.csv", paths, sep=",")
    from_sheet = shuffled(tmp_path / "sheet", [], sample_sheet=str(tmp_path / "files.csv"))
    assert from_sheet == shuffled(tmp_path / "listed", paths)
    assert from_sheet != shuffled(tmp_path / "reversed", paths[::-1])


def test_header_is_written_once_and_leaves_the_order_of_the_records_alone(tmp_path):
    header = b"id\ttext\n"
    bodies = [b"".join(b"%d\t%s %d\n" % (i, name, i) for i in range(4000)) for name in (b"a", b"b")]
    (tmp_path / "a.tsv").write_bytes(header + bodies[0])
    (tmp_path / "b.tsv.gz").write_bytes(gzip.compress(header + bodies[1]))
    inputs = ["../a.tsv", "../b.tsv.gz"]
    with_header = shuffled(tmp_path / "header", inputs, header_lines=1)
    as_records = shuffled(tmp_path / "records", inputs)
    assert with_header.startswith(header) and with_header.count(header) == 1
    # The header lines are left out; every other record keeps its place in the order.
    assert with_header[len(header):] == as_records.replace(header, b"")
    body_records = [record for body in bodies for record in body.splitlines(True)]
    assert Counter(records_of(tmp_path / "header" / "out.txt")) == Counter([header, *body_records])


def container_files(directory):
    """{name: what the error calls it} of binary containers that are not lines of text."""
    import gzip
    import io
    import tarfile
    import zipfile

    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    table = pa.table({"id": [1, 2, 3], "text": ["a\nb", "c", "d"]})
    parquet = io.BytesIO()
    pq.write_table(table, parquet)
    (directory / "t.parquet.gz").write_bytes(gzip.compress(parquet.getvalue()))  # a Parquet file is read as it is
    feather.write_feather(table, directory / "t.feather")
    with pa.OSFile(str(directory / "t.arrows"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    (directory / "lines.txt").write_text("one\ntwo\n")
    with tarfile.open(directory / "t.tar.gz", "w:gz") as tar:
        tar.add(directory / "lines.txt", "lines.txt")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lines.txt", "one\ntwo\n")
    (directory / "t.zip").write_bytes(buffer.getvalue())
    return {"t.parquet.gz": "a Parquet file (inside its gzip compression)", "t.feather": "an Arrow IPC (Feather v2) file",
            "t.arrows": "an Arrow IPC stream", "t.tar.gz": "a tar archive (inside its gzip compression)",
            "t.zip": "a zip archive"}


def test_a_binary_container_is_refused_before_any_job_not_shuffled_as_lines(tmp_path):
    """Issue 30: `snakeshuf data/*.parquet -o out.parquet` exited 0 and
    published lines cut out of the Parquet file's bytes."""
    for name, what in container_files(tmp_path).items():
        result = run_workflow(tmp_path / name.replace(".", "-"), {"inputs": [str(tmp_path / name)], "output": "out.txt",
                                                                   "memory_mb": 160}, check=False)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert f"t/{name}' is {what}, not lines of text" in result.stderr.replace(str(tmp_path), "t"), result.stderr[-2000:]
        assert not (tmp_path / name.replace(".", "-") / "out.txt").exists()
        assert not list((tmp_path / name.replace(".", "-")).glob("logs/*/split_chunk")), "a split job ran"

#!/usr/bin/env python3
"""Shuffling the rows of a Parquet corpus (issue 30): snakeshuf against the
tools people reach for, each run once per call so that a timer can take the
whole process (wall time and peak memory):

  corpus    writes the corpus: files of ~256 MiB of rows (a text column from
            make_corpus.py, an id, a score and a language), zstd, row groups
            of 100,000 rows; --size counts the rows' text
  floor     no shuffle: pyarrow reads every batch and writes it (zstd), what
            the disk and the codecs allow
  duckdb    COPY (SELECT * ... ORDER BY random()) with setseed and memory_limit
  polars    read all, DataFrame.sample(fraction=1, shuffle=True), write
  datasets  Hugging Face datasets: from_parquet, shuffle, flatten_indices, to_parquet

snakeshuf itself is its command: `snakeshuf DIR/corpus/*.parquet -o DIR/out/s.parquet --memory 512M`.
The peers are bench extras (bench/requirements-parquet.txt), never run dependencies.

  python bench/parquet_peers.py corpus --size 4G --dir /tmp/pq
  python bench/parquet_peers.py duckdb --memory 512M --dir /tmp/pq
"""

import argparse
import glob
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_corpus import generate, parse_size  # noqa: E402

FILE_TEXT_BYTES = 256 << 20
ROW_GROUP_ROWS = 100_000
LANGUAGES = ["en", "de", "fr", "es", "zh"]


def make_corpus(work, size):
    """Files of FILE_TEXT_BYTES of text rows each, until `size` bytes of text."""
    corpus = work / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    corpus.mkdir(parents=True)
    first = 0
    for index in range(-(-size // FILE_TEXT_BYTES)):
        text = work / "text.tmp"
        with open(text, "wb") as out:
            generate(out, min(FILE_TEXT_BYTES, size - index * FILE_TEXT_BYTES), seed=index + 1, fmt="text")
        lines = text.read_bytes().decode().split("\n")[:-1]
        rng = np.random.default_rng(index)
        table = pa.table({
            "text": lines,
            "id": np.arange(first, first + len(lines)),
            "score": rng.random(len(lines)),
            "lang": pa.array(rng.choice(LANGUAGES, len(lines))),
        })
        pq.write_table(table, corpus / f"part-{index:05d}.parquet", row_group_size=ROW_GROUP_ROWS, compression="zstd")
        first += len(lines)
        text.unlink()


def inputs(work):
    return sorted(glob.glob(str(work / "corpus" / "*.parquet")))


def output(work, name):
    out = work / "out"
    out.mkdir(exist_ok=True)
    path = out / name
    if path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return str(path)


def floor(work, memory):
    """Every batch read and written again, in order."""
    files = inputs(work)
    writer = pq.ParquetWriter(output(work, "floor.parquet"), pq.read_schema(files[0]), compression="zstd")
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP_ROWS):
            writer.write_batch(batch)
    writer.close()


def duckdb_shuffle(work, memory):
    import duckdb

    connection = duckdb.connect()
    connection.execute(f"SET memory_limit = '{memory}'")
    connection.execute(f"SET temp_directory = '{work / 'duckdb-spill'}'")
    connection.execute("SELECT setseed(0.42)")
    files = ", ".join(f"'{p}'" for p in inputs(work))
    connection.execute(f"COPY (SELECT * FROM read_parquet([{files}]) ORDER BY random()) "
                       f"TO '{output(work, 'duckdb.parquet')}' (FORMAT parquet, COMPRESSION zstd)")


def polars_shuffle(work, memory):
    import polars

    frame = polars.read_parquet(inputs(work))
    frame.sample(fraction=1.0, shuffle=True, seed=42).write_parquet(output(work, "polars.parquet"), compression="zstd")


def datasets_shuffle(work, memory):
    import datasets

    cache = work / "hf-cache"
    shutil.rmtree(cache, ignore_errors=True)
    table = datasets.Dataset.from_parquet(inputs(work), cache_dir=str(cache))
    table.shuffle(seed=42).flatten_indices(cache_file_name=str(cache / "flat.arrow")).to_parquet(
        output(work, "datasets.parquet"))
    shutil.rmtree(cache)


PEERS = {"floor": floor, "duckdb": duckdb_shuffle, "polars": polars_shuffle, "datasets": datasets_shuffle}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["corpus", *PEERS])
    parser.add_argument("--dir", required=True, help="where the corpus and the outputs go")
    parser.add_argument("--size", type=parse_size, default=parse_size("4G"), help="corpus: bytes of text")
    parser.add_argument("--memory", default="512MB", help="the budget of the tools that have one")
    args = parser.parse_args()
    work = Path(args.dir)
    if args.what == "corpus":
        make_corpus(work, args.size)
    else:
        PEERS[args.what](work, args.memory.replace("M", "MB").replace("MBB", "MB"))


if __name__ == "__main__":
    main()

"""The bucket table: per bucket, what every split job put in it, and where its
records go in the output. In a large plan one job (rule tally_buckets) reads
every run index once and writes it, and each bucket job reads the table
instead of every index (at 10 TB, ~40 GB of index rows per bucket job
otherwise; the table is 40 bytes a bucket). In a small one each bucket job
and gather make it themselves (snakeshuf.planning.plan.NO_TALLY_JOB_INDEX_BYTES).
"""

import numpy as np

from snakeshuf.errors import IntegrityError
from snakeshuf.mixing import dedup, selection
from snakeshuf.outputs.layout import file_bounds, kept_records
from snakeshuf.stages import runindex

COLUMNS = ("records", "bytes", "key_sum", "offset", "first_record")
RECORDS, BYTES, KEY_SUM, OFFSET, FIRST_RECORD = range(len(COLUMNS))
# 3.5 MB of rows at a time: within the smallest budget's margin.
ROWS_PER_STEP = 1 << 16


def add_index(table, index, parts):
    """Add an index's rows of published copies to the per-bucket counts (a
    bucket is `parts` key ranges), a block of rows at a time (an index is
    memory-mapped: a block's pages are all it keeps resident). Candidates
    for extra copies count as chosen (add_chosen)."""
    with np.errstate(over="ignore"):
        for lo in range(0, len(index), ROWS_PER_STEP):
            rows = np.array(index[lo : lo + ROWS_PER_STEP])
            rows = rows[rows[:, runindex.CANDIDATES_OF] == 0]
            add_rows(table, rows[:, runindex.KEY_RANGE] // np.uint64(parts),
                     rows[:, [runindex.RECORDS, runindex.NBYTES, runindex.KEY_SUM]])


def add_rows(table, buckets, counts):
    """Add (records, bytes, key_sum) rows `counts` to the buckets `buckets`."""
    with np.errstate(over="ignore"):
        for column, values in zip((RECORDS, BYTES, KEY_SUM), counts.T):
            np.add.at(table[:, column], buckets.astype(np.intp), values)


def place(table, header_bytes):
    """Fill in where each bucket's bytes and records start in the output (after the header)."""
    for column, start, base in ((BYTES, OFFSET, header_bytes), (RECORDS, FIRST_RECORD, 0)):
        table[1:, start] = np.cumsum(table[:-1, column])
        table[0, start] = 0
        table[:, start] += np.uint64(base)


def tally(index_paths, buckets, parts=1, header_bytes=0, selection=None):
    """The bucket table of the indexes at `index_paths`, with the candidates
    a selection.Selection chose (if any)."""
    table = np.zeros((buckets, len(COLUMNS)), np.uint64)
    for path in index_paths:
        index = runindex.load_index(path)
        if len(index) and int(index[-1, runindex.KEY_RANGE]) >= buckets * parts:
            raise IntegrityError(
                f"index '{path}' names key range {index[-1, runindex.KEY_RANGE]} of {buckets * parts}"
            )
        add_index(table, index, parts)
        del index
    if selection is not None:
        add_rows(table, np.arange(buckets * parts) // parts, selection.ranges)
    place(table, header_bytes)
    return table


def from_indexes(spec, memory=None):
    """The bucket table of the spec's run indexes, where each output file
    starts in the order, and what is chosen of what the split jobs wrote:
    of candidates (a selection.Selection), of duplicates (a dedup.Distinct:
    the table counts nothing else), or None. `memory`: the job's MemoryModel
    (only a run that deduplicates needs it)."""
    indexes = [spec.paths.index(chunk) for chunk in range(len(spec.chunks))]
    if spec.dedup:
        chosen = dedup.count_distinct(spec, memory)
        indexes = []
    else:
        chosen = selection.choose(spec) if spec.selects else None
    table = tally(indexes, spec.buckets, spec.parts, spec.header_bytes, chosen)
    return table, file_bounds(spec.layout, kept_records(spec.take, totals(table)["records"])), chosen


def add_arguments(parser):
    """A bucket job's and gather's options for the files of rule tally_buckets."""
    parser.add_argument("--table", help="the bucket table (rule tally_buckets); none: made from the indexes")
    parser.add_argument("--bounds", help="where each output file starts in the order (with --table)")
    parser.add_argument("--selection", help="the candidates chosen for extra copies (with --table, if any)")


def load_or_make(spec, args):
    """The table, bounds and selection that rule tally_buckets wrote
    (args.table, args.bounds, args.selection), or, in a plan without that
    job, the same from the indexes."""
    if args.table is None:
        return from_indexes(spec)
    chosen = load_chosen(spec, args.selection) if args.selection else None
    return load(args.table, "bucket table"), load(args.bounds, "file bounds"), chosen


def load_chosen(spec, path):
    try:
        return (dedup.Distinct if spec.dedup else selection.Selection).load(path)
    except (OSError, ValueError, KeyError) as error:
        raise IntegrityError(f"selection '{path}' cannot be read: {error}") from None


def totals(table):
    """Records, bytes and key checksum of everything the split jobs wrote."""
    with np.errstate(over="ignore"):
        key_sum = int(table[:, KEY_SUM].sum(dtype=np.uint64))
    return {"records": int(table[:, RECORDS].sum()), "bytes": int(table[:, BYTES].sum()), "key_sum": key_sum}


def load(path, what):
    try:
        return np.load(path)
    except (OSError, ValueError) as error:
        raise IntegrityError(f"{what} '{path}' cannot be read: {error}") from None


def bucket_row(table, bucket):
    """One bucket's row, and the size of the whole output (header and every bucket)."""
    row = {name: int(value) for name, value in zip(COLUMNS, table[bucket])}
    row["output_bytes"] = int(table[-1, OFFSET] + table[-1, BYTES])
    return row

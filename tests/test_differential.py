"""Differential tests: random corpora and configurations through the real
workflow, every output file compared byte for byte with the reference model.

Each example runs the workflow twice at once, on the same inputs and layout
but with different memory, chunking, cores and memory unit: both must publish
exactly what tests/reference.py computes, or both must publish nothing.

CI runs SNAKESHUF_EXAMPLES examples (default 40, i.e. 80 workflow runs) from
a fixed seed. A long campaign draws new ones:

    SNAKESHUF_EXAMPLES=5000 SNAKESHUF_RANDOM=1 .venv-test/bin/pytest tests/test_differential.py

A failure it finds is kept below as a named @example.
"""

import os

from hypothesis import HealthCheck, Phase, event, example, given, settings

from differential import check_scenario
from scenarios import FileSpec, Run, Scenario, scenarios
from tables import NARROW_SCHEMA_SEEDS

EXAMPLES = int(os.environ.get("SNAKESHUF_EXAMPLES", 40))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("SNAKESHUF_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
    # SNAKESHUF_SHRINK=0 reports a failure as found, without minimising it
    # (each step of shrinking runs the workflow twice).
    phases=[p for p in Phase if p is not Phase.shrink or os.environ.get("SNAKESHUF_SHRINK") != "0"],
)
@given(scenarios())
# Found by this test, kept as named regressions:
@example(  # a multi-pass bucket cut into shards: the last slice of a pass overcounted its records
    Scenario(
        files=(FileSpec(3000, "tiny", seed=1), FileSpec(3000, "short", seed=2)),
        runs=(Run(memory_mb=160, unit=4096), Run(memory_mb=170, unit=2048, chunks=2, cores=1)),
        output="out/c.jsonl.zst", splits=(("valid", 0.01, 1), ("test", 100, 1), ("train", "rest", 3)),
    )
)
@example(  # an output in object storage, its buckets in 3 passes, cut into shards and splits (issue 31)
    Scenario(
        files=(FileSpec(40000, "tiny", seed=1), FileSpec(3000, "short", seed=2)),
        runs=(Run(memory_mb=160, unit=1024), Run(memory_mb=170, unit=1024, chunks=2, cores=1)),
        output="out/c.jsonl.zst", splits=(("valid", 0.01, 1), ("test", 100, 1), ("train", "rest", 3)),
        object_output=True, earlier_run=True,
    )
)
@example(  # glob characters in listed file names ('003 [bracket].txt') were expanded as patterns
    Scenario(files=tuple(FileSpec(20, "short", seed=i) for i in range(8)), names="odd", source="list")
)
@example(  # all inputs empty: an input function failed with IndexError (no split jobs at all)
    Scenario(files=(FileSpec(0), FileSpec(0)), output="out/e.txt.zst", shards=3)
)
@example(  # a gzip file of tiny records among many: refused at kilobyte scale (campaign seed 1002)
    Scenario(
        files=tuple(FileSpec(600, "short", seed=i) for i in range(30))
        + (FileSpec(1048, "tiny", seed=12915, crlf=True, codec="gzip"),),
        runs=(Run(memory_mb=167, unit=1024), Run(memory_mb=245, unit=1024, chunks=4)),
    )
)
@example(  # fractions adding up to 1.5 beside a 'rest' split: refused at once, whatever the corpus (campaign seed 1010)
    Scenario(
        files=(FileSpec(123, "short", seed=1763, final_separator=False, codec="xz"),),
        runs=(Run(memory_mb=173, unit=1024, chunks=4, cores=1), Run(memory_mb=206, unit=8192, chunks=1, cores=1)),
        seed=18314, header_lines=1, output="out/noext",
        splits=(("train", 1.0, 2), ("valid", "rest", 2), ("test", 0.5, 3)), verify="changed",
    )
)
@example(  # a paired line of 4,001 bytes over the first attempt's 3,072: the retry at twice the memory takes it (campaign seed 1026)
    Scenario(
        files=(FileSpec(0, "short", seed=1249061, final_separator=False, crlf=True, codec="xz"),
               FileSpec(488, "mixed", seed=1178, crlf=True), FileSpec(84, "short", seed=31539358, crlf=True, codec="xz")),
        runs=(Run(memory_mb=164, unit=1024, chunks=2, cores=1), Run(memory_mb=203, unit=2048, chunks=1, cores=1)),
        seed=1, separator="nul", paired_width=3, output="out/corpus.jsonl.zst", splits=(("train", 1.0, 2),), names="odd",
    )
)
@example(  # splits larger than the corpus, and a gzip input past the compressed-input limit: refused for the latter (campaign seed 1029)
    Scenario(
        files=(FileSpec(45, "mixed", seed=4498, final_separator=False, crlf=True, codec="gzip"),
               FileSpec(499, "tiny", seed=4006357, final_separator=False, crlf=True),
               FileSpec(0, "tiny", seed=58, codec="gzip"), FileSpec(6, "mixed", seed=214, final_separator=False, codec="zstd"),
               FileSpec(0, "short", seed=1189420, codec="bzip2"), FileSpec(39, "mixed", seed=21044, crlf=True, codec="bzip2"),
               FileSpec(34, "mixed", seed=618, crlf=True, codec="zstd"),
               FileSpec(6, "mixed", seed=716, final_separator=False, codec="gzip")),
        runs=(Run(memory_mb=170, unit=1024, chunks=3, cores=1), Run(memory_mb=163, unit=1024, chunks=2)),
        seed=0, separator="nul", output="shuffled.txt.gz", source="sheet", verify="always",
        splits=(("train", "rest", 2), ("valid", 56, 1), ("test", 1.0, 3)),
    )
)
@example(  # misaligned pairs and fractions adding up to 2: the configuration is refused first (campaign seed 1036)
    Scenario(
        files=(FileSpec(271, "mixed", seed=833662),),
        runs=(Run(memory_mb=161, unit=4096, chunks=4, cores=1), Run(memory_mb=320, unit=2048, chunks=4)),
        seed=1, paired_width=2, misaligned=True, output="shuffled.txt.gz", verify="changed",
        splits=(("train", 1.0, 1), ("valid", "rest", 1), ("test", 1.0, 1)),
    )
)
@example(  # a split named 'lock' was published, then deleted with the run's lock (hostile pass, item 3)
    Scenario(files=(FileSpec(100, "short", seed=3),), output="out/noext", splits=(("lock", 0.5, 1), ("train", "rest", 1)))
)
@example(  # an earlier run of another seed on the same output, from another directory, was taken as current (issue 27)
    Scenario(files=(FileSpec(500, "short", seed=5), FileSpec(300, "mixed", seed=6)), shards=2, earlier_run=True)
)
@example(  # head (issue 28): a compressed, sharded split layout over multi-pass buckets, most buckets after the head
    Scenario(
        files=(FileSpec(3000, "tiny", seed=1), FileSpec(3000, "short", seed=2)),
        runs=(Run(memory_mb=160, unit=4096), Run(memory_mb=170, unit=2048, chunks=2, cores=1)),
        output="out/c.jsonl.zst", splits=(("valid", 0.1, 1), ("train", "rest", 2)), take=("head", 100),
    )
)
@example(  # fraction (issue 28): one plain output, which without it the bucket jobs write in place
    Scenario(files=(FileSpec(700, "short", seed=4), FileSpec(300, "mixed", seed=5)), take=("fraction", 0.57))
)
@example(  # one split of everything is one plain file written in place: publishing renamed '<file>.partial', not the in-place target (this session)
    Scenario(files=(FileSpec(300, "short", seed=2),), splits=(("train", 1.0, 1),), earlier_run=True)
)
@example(  # weights (issue 29): fractions, 0 and more than 1 over multi-pass buckets, cut into compressed splits
    Scenario(
        files=(FileSpec(3000, "tiny", seed=1), FileSpec(3000, "short", seed=2), FileSpec(500, "mixed", seed=3)),
        runs=(Run(memory_mb=160, unit=4096), Run(memory_mb=170, unit=2048, chunks=2, cores=1)),
        output="out/c.jsonl.zst", splits=(("valid", 0.1, 1), ("train", "rest", 2)), weights=(2.7, 0.3, 0),
    )
)
@example(  # weights from a sample sheet's columns, three sources over five files, and a head
    Scenario(files=tuple(FileSpec(200, "short", seed=i) for i in range(5)), source="sheet", weights=(1.5, 0.5, 2),
             take=("head", 300))
)
@example(  # weights of aligned groups
    Scenario(files=(FileSpec(300, "short", seed=1), FileSpec(200, "mixed", seed=2)), paired_width=2, weights=(0.5, 3))
)
@example(  # weights with a header, NUL separators, a gzip input and a fraction
    Scenario(files=(FileSpec(400, "short", seed=4), FileSpec(300, "short", seed=5, codec="gzip")), header_lines=1,
             separator="nul", take=("fraction", 0.5), weights=(1.5,), shards=3)
)
@example(  # dedup (issue 29): duplicate-heavy corpora, a source of weight 0, cut into compressed splits
    Scenario(
        files=(FileSpec(4000, "empty", seed=1), FileSpec(3000, "tiny", seed=2), FileSpec(500, "short", seed=3)),
        runs=(Run(memory_mb=160, unit=1024), Run(memory_mb=170, unit=2048, chunks=3, cores=1)),
        output="out/c.jsonl.zst", splits=(("valid", 0.1, 1), ("train", "rest", 2)), dedup="record", weights=(1, 0, 1),
    )
)
@example(  # dedup with a head, NUL separators, a gzip input and buckets in passes
    Scenario(files=(FileSpec(3000, "tiny", seed=5, codec="gzip"), FileSpec(2000, "tiny", seed=6)), dedup="record",
             take=("head", 50), separator="nul")
)
@example(  # dedup of aligned rows
    Scenario(files=(FileSpec(2000, "tiny", seed=1), FileSpec(200, "tiny", seed=2)), paired_width=2, dedup="record")
)
@example(  # dedup with weights: a light source before a heavier one, fractions, over multi-pass buckets, cut into splits
    Scenario(
        files=(FileSpec(3000, "tiny", seed=1), FileSpec(3000, "tiny", seed=2), FileSpec(500, "short", seed=3)),
        runs=(Run(memory_mb=160, unit=1024), Run(memory_mb=170, unit=2048, chunks=3, cores=1)),
        output="out/c.jsonl.zst", splits=(("valid", 0.1, 1), ("train", "rest", 2)), dedup="record",
        weights=(0.5, 2.5, 1.3),
    )
)
@example(  # dedup with weights of aligned rows, and a fraction of the order
    Scenario(files=(FileSpec(2000, "tiny", seed=1), FileSpec(200, "tiny", seed=2)), paired_width=2, dedup="record",
             weights=(0.7, 3), take=("fraction", 0.5))
)
@example(  # Parquet rows: an empty table (its row group's columns have no page offsets) and one read by a column's value
    Scenario(files=(FileSpec(0), FileSpec(60, seed=3), FileSpec(5, seed=4)), table=1, output="out/shuffled.parquet",
             dedup="column:keep", weights=(1, 2.5), shards=2, row_group_rows=7)
)
@example(  # Parquet rows: nested lists of structs and maps, a head of the order, a sample sheet
    Scenario(files=(FileSpec(700, seed=1), FileSpec(60, seed=2)), table=25169, output="o u t/[x] 'y'.parquet",
             take=("head", 100), source="sheet", splits=(("valid", 0.1, 1), ("train", "rest", 2)))
)
@example(  # inputs in object storage (issue 31): an object named like a glob ('002 [bracket].txt') was taken for one
    Scenario(files=(FileSpec(50, seed=1), FileSpec(30, seed=2), FileSpec(10, seed=3)), names="odd", objects=True)
)
@example(  # objects listed in a sample sheet, with weights, dedup and a head; a zstd object
    Scenario(files=(FileSpec(80, seed=1), FileSpec(40, seed=2, codec="zstd")), source="sheet", weights=(2, 0.5),
             dedup="record", take=("head", 20), objects=True)
)
def test_every_output_file_equals_the_reference(scenario):
    for fact in check_scenario(scenario):
        event(fact)  # shown with --hypothesis-show-statistics


def test_parquet_rows_in_buckets_of_several_passes_give_the_reference():
    """Thousands of one-boolean rows overflow a key range's share of memory at
    a memory unit of kilobytes: each bucket takes its rows in passes, with
    weights and dedup by the column (two values and nulls) cut into splits."""
    scenario = Scenario(
        files=(FileSpec(6000, seed=1), FileSpec(6000, seed=2)), table=NARROW_SCHEMA_SEEDS[0],
        runs=(Run(memory_mb=160, unit=4096), Run(memory_mb=160, unit=2048, chunks=2, cores=1)),
        output="out/shuffled.parquet", weights=(1.5, 0.5), dedup="column:keep", row_group_rows=7,
        splits=(("valid", 0.1, 1), ("train", "rest", 2)),
    )
    passes = [fact for fact in check_scenario(scenario) if fact.startswith("most passes")]
    assert passes and all(fact[-1] in "23" for fact in passes), passes


def test_the_bucket_table_from_a_tally_job_and_from_the_bucket_jobs_give_the_reference():
    """A large plan has a tally job (here at a memory unit of 1 KiB), a small
    one none: its bucket jobs and gather make the bucket table themselves.
    Tiny records make both take several passes per key range."""
    scenario = Scenario(
        files=(FileSpec(30000, "tiny", seed=5), FileSpec(600, "mixed", seed=6)),
        runs=(Run(memory_mb=160, unit=1024, chunks=1), Run(memory_mb=170, unit=2048, chunks=2)),
        output="out/shards.txt", shards=3,
    )
    facts = check_scenario(scenario)
    assert "tally job: yes" in facts and "tally job: no" in facts, facts
    assert facts.count("most passes in a bucket: 3") == 2, facts

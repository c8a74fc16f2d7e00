"""Nothing wrong is ever published: the cases where a run once exited 0 with a
wrong output, or destroyed an input, each kept as a test."""

import pytest

from scenarios import FileSpec, Run, Scenario
from differential import check_scenario

# Sentence-level records (~60 bytes) and tiny ones at the smallest budget:
# every bucket takes several passes.
SHORT_RECORDS = (FileSpec(3000, "short", seed=1), FileSpec(3000, "tiny", seed=2), FileSpec(2000, "short", seed=3))
MULTI_PASS_RUNS = (Run(memory_mb=160, unit=4096), Run(memory_mb=161, unit=2048, chunks=2, cores=1))

MULTI_PASS_LAYOUTS = {
    "zstd splits": dict(output="out/c.jsonl.zst", splits=(("valid", 0.01, 1), ("test", 1000, 1), ("train", "rest", 8))),
    "gzip splits": dict(output="out/c.jsonl.gz", splits=(("valid", 0.01, 1), ("test", 1000, 1), ("train", "rest", 8))),
    "shards with a header": dict(output="out/c.tsv", shards=4, header_lines=1),
}


@pytest.mark.parametrize("layout", MULTI_PASS_LAYOUTS)
def test_layouts_cut_buckets_that_take_several_passes_where_the_reference_does(layout):
    check_scenario(Scenario(files=SHORT_RECORDS, runs=MULTI_PASS_RUNS, **MULTI_PASS_LAYOUTS[layout]))

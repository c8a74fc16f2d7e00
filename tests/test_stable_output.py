"""The same inputs and seed give the same bytes as when these digests were
recorded (commit 2cdf4f6, before the run-spec refactoring): an internal change
(a refactoring, a faster job) must not change any output file. A deliberate
change of the order would be a new version of the output, and these digests
would change with it, on purpose and said so in the commit."""

import gzip
import hashlib
import os

import pytest

from conftest import decompressed, run_workflow
from make_corpus import generate

INPUTS = "73906deeed880456"  # the sha256 prefix of the inputs below, joined
PLAIN, HEADER, PAIRED = ["a.txt", "b.txt.gz"], ["t.tsv"], [["p.de", "p.en.gz"]]
CASES = {
    "one file": ({"inputs": PLAIN, "output": "o.txt"}, {"o.txt": "580d615b4f388933"}),
    "zstd shards": (
        {"inputs": PLAIN, "output": "o.jsonl.zst", "shards": 3},
        {
            "o.00000-of-00003.jsonl.zst": "161678eb03480f33",
            "o.00001-of-00003.jsonl.zst": "1bff57b04de17b6f",
            "o.00002-of-00003.jsonl.zst": "1ffc8281b4b0f378",
        },
    ),
    "splits and a header": (
        {
            "inputs": HEADER, "output": "o.tsv.gz", "header_lines": 1,
            "splits": {"valid": 100, "train": {"size": "rest", "shards": 2}},
        },
        {
            "o.train.00000-of-00002.tsv.gz": "03547fd8e133c71b",
            "o.train.00001-of-00002.tsv.gz": "04c672654528b8fe",
            "o.valid.tsv.gz": "7fb995438db513e4",
        },
    ),
    "paired": (
        {"paired": PAIRED, "output": "o.txt", "shards": 2},
        {
            "o.00000-of-00002.de.txt": "539ebdf3cdd92f55",
            "o.00000-of-00002.en.txt": "a62677f0296fdd48",
            "o.00001-of-00002.de.txt": "e8361858932835d3",
            "o.00001-of-00002.en.txt": "110dc53f20aeb4cc",
        },
    ),
    # Recorded when weights and dedup came (issue 29).
    "weights": ({"inputs": PLAIN, "output": "o.txt", "weights": {"a.txt": 1.5, "b.txt.gz": 0.3}}, {"o.txt": "f60d7bfccb77b32c"}),
    "dedup": (
        {"inputs": HEADER, "output": "o.tsv", "header_lines": 1, "dedup": {"field": 2}, "shards": 2},
        {"o.00000-of-00002.tsv": "b17c8229bb07fa7d", "o.00001-of-00002.tsv": "83fca64cd57e3b00"},
    ),
}


def digest(data):
    return hashlib.sha256(data).hexdigest()[:16]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("stable")
    with open(d / "a.txt", "wb") as out:
        generate(out, 3 << 20, seed=5, fmt="text")
    with open(d / "b.txt", "wb") as out:
        generate(out, 1 << 20, seed=6, fmt="jsonl")
    (d / "b.txt.gz").write_bytes(gzip.compress((d / "b.txt").read_bytes(), mtime=0))
    os.remove(d / "b.txt")
    lines = (d / "a.txt").read_bytes().splitlines(True)[:20000]
    (d / "p.de").write_bytes(b"".join(lines))
    (d / "p.en.gz").write_bytes(gzip.compress(b"".join(line[::-1].strip() + b"\n" for line in lines), mtime=0))
    (d / "t.tsv").write_bytes(b"id\ttext\n" + b"".join(b"%d\t%s" % (i, line) for i, line in enumerate(lines)))
    return d


def test_the_inputs_are_the_ones_the_digests_were_recorded_for(inputs):
    joined = b"".join((inputs / name).read_bytes() for name in ("a.txt", "b.txt.gz", "p.de", "p.en.gz", "t.tsv"))
    assert digest(joined) == INPUTS


@pytest.mark.parametrize("case", CASES)
def test_outputs_keep_their_recorded_bytes(tmp_path, inputs, case):
    layout, recorded = CASES[case]
    config = {**layout, "seed": 11, "memory_mb": 160}
    if "paired" in config:
        config["paired"] = [[str(inputs / p) for p in group] for group in config["paired"]]
    else:
        config["inputs"] = [str(inputs / p) for p in config["inputs"]]
        config["weights"] = {str(inputs / p): w for p, w in config.get("weights", {}).items()}
    run_workflow(tmp_path, config, env={**os.environ, "SNAKESHUF_MIB_BYTES": "65536"})
    produced = {p.name: digest(decompressed(p)) for p in sorted(tmp_path.glob("o.*")) if "summary" not in p.name}
    assert produced == recorded, produced

"""Source weights (config key 'weights', issue 29) beyond the differential
tests: a weight of a million, how weights are read, and provenance."""


import pytest

from conftest import job_reports, run_workflow
from test_memory import assert_within_budget


def test_a_large_weight_on_one_record_is_a_few_spills_within_memory(tmp_path):
    """Hostile pass on issue 29: every copy was a spill of its own, so a
    weight of 1,000,000 on a one-line file wrote a million spills (an 88 MB
    index), ran for more than ten minutes and took the bucket job to 245 MB
    at a 160 MB budget."""
    (tmp_path / "one.txt").write_text("one\n")
    run_workflow(tmp_path, {"inputs": ["one.txt"], "output": "o.txt", "memory_mb": 160, "weights": {"one.txt": 200_000}})
    assert (tmp_path / "o.txt").read_text() == "one\n" * 200_000
    split = [r for r in job_reports(tmp_path) if r["stage"] == "split"]
    assert sum(r["spills"] for r in split) <= 4
    assert_within_budget(tmp_path, {"split", "shuffle", "gather"})


@pytest.mark.parametrize("weights, message", [
    ({"a.txt": 1_000_001}, "weights.a.txt"),
    ({"a.txt": -1}, "weights.a.txt"),
    ({"a.txt": "two"}, "weights.a.txt"),
    ({"b.txt": 2}, "config key 'weights' names 'b.txt', which is no source of this run"),
])
def test_a_weight_that_cannot_be_is_refused_naming_the_key(tmp_path, weights, message):
    (tmp_path / "a.txt").write_text("x\n")
    result = run_workflow(tmp_path, {"inputs": ["a.txt"], "output": "o.txt", "weights": weights}, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message in result.stderr and not job_reports(tmp_path)


def test_the_same_weight_written_two_ways_makes_the_same_output_and_it_is_reused(tmp_path):
    """Hostile pass: a weight of 3 and of 3.0 gave the same bytes, but the
    second run rebuilt it as 'made by another run'."""
    (tmp_path / "a.txt").write_text("".join(f"{i}\n" for i in range(50)))
    config = {"inputs": ["a.txt"], "output": "o.txt", "memory_mb": 160, "weights": {"a.txt": 3}}
    run_workflow(tmp_path, config)
    again = run_workflow(tmp_path, {**config, "weights": {"a.txt": 3.0}})
    assert "is up to date" in again.stderr, again.stderr[-2000:]


def test_a_rebuild_for_other_weights_or_dedup_says_so():
    """Hostile pass: dropping --dedup or a weight rebuilt the output as 'made
    by another run' (a setting only the old record had went unnamed)."""
    from snakeshuf.outputs.provenance import difference

    base = {"format": 2, "seed": 1, "inputs": [["/a", 1, 1]]}
    assert difference({**base, "dedup": {"field": "text"}}, base) == (
        "it was made with dedup {'field': 'text'}; this run asks for none")
    assert difference(base, {**base, "weights": ["2"]}) == "it was made with weights none; this run asks for ['2']"

"""Is the output a uniformly random permutation? Chi-square tests on the real
workflow's output, which three known-wrong shufflers must fail.

Each check is a chi-square test of independence. The threshold ALPHA = 1e-4
and the sizes (about a million records, 10 bins) are chosen so that the wrong
shufflers give p-values below 1e-50 while a uniform shuffle passes with
probability 1 - 1e-4 per check; the seeds are fixed, so the suite is
repeatable.
"""

import numpy as np
import pytest
from scipy.stats import chi2_contingency, chisquare

from conftest import run_workflow
from snakeshuf.planning import keys as keylib

ALPHA = 1e-4
BINS = 10
RECORDS = 1_000_000
WIDTH = 40  # bytes per line: 40 MB of input gives several buckets at 160 MB


# --- the checks -----------------------------------------------------------

def contingency_pvalue(rows, cols, classes):
    table = np.zeros((classes, classes))
    np.add.at(table, (rows, cols), 1)
    return chi2_contingency(table).pvalue


def position_vs_origin(origins):
    """Does where a record ends up depend on where it started?"""
    n = len(origins)
    return contingency_pvalue(origins * BINS // n, np.arange(n) * BINS // n, BINS)


def neighbour_origins(origins):
    """Do neighbours in the output come from related places in the input?"""
    blocks = origins * BINS // len(origins)
    return contingency_pvalue(blocks[:-1], blocks[1:], BINS)


def neighbour_values(values, classes):
    """Are equal lines kept together?"""
    return contingency_pvalue(values[:-1], values[1:], classes)


# --- three wrong shufflers, as permutations of input positions ------------

def shuffle_within_chunks(n, rng, chunks=BINS):
    return np.concatenate([rng.permutation(part) for part in np.array_split(np.arange(n), chunks)])


def round_robin_chunks(n, rng, chunks=BINS):
    """Shuffle chunks locally, then deal one record from each chunk in turn."""
    parts = [rng.permutation(part) for part in np.array_split(np.arange(n), chunks)]
    width = max(len(p) for p in parts)
    grid = np.full((width, chunks), -1)
    for c, part in enumerate(parts):
        grid[: len(part), c] = part
    dealt = grid.ravel()
    return dealt[dealt >= 0]


def sort_random_groups(values, rng):
    """`sort -R`: order by a random hash of the line, so equal lines stay together."""
    salt = rng.permutation(values.max() + 1)
    return np.argsort(salt[values], kind="stable")


# --- the real workflow ------------------------------------------------------

@pytest.fixture(scope="module")
def unique_lines(tmp_path_factory):
    """RECORDS distinct lines; a line's first 9 digits are its input position."""
    d = tmp_path_factory.mktemp("unique")
    numbers = np.char.zfill(np.arange(RECORDS).astype(str), 9).astype(bytes)
    lines = b"".join(n + b" " + b"." * (WIDTH - 11) + b"\n" for n in numbers)
    half = len(lines) // 2 // WIDTH * WIDTH
    (d / "a.txt").write_bytes(lines[:half])
    (d / "b.txt").write_bytes(lines[half:])
    return [str(d / "a.txt"), str(d / "b.txt")]


@pytest.fixture(scope="module")
def workflow_origins(tmp_path_factory, unique_lines):
    d = tmp_path_factory.mktemp("run-unique")
    config = {"inputs": unique_lines, "output": "out.txt", "memory_mb": 160, "chunk_mb": 4, "seed": 11}
    run_workflow(d, config)
    data = np.frombuffer((d / "out.txt").read_bytes(), np.uint8).reshape(-1, WIDTH)
    digits = data[:, :9].astype(np.int64) - ord("0")
    return digits @ (10 ** np.arange(8, -1, -1))


HEAD = RECORDS // 5


@pytest.fixture(scope="module")
def workflow_head_origins(tmp_path_factory, unique_lines):
    """The first HEAD records of the order (config key 'head', as shuf -n)."""
    d = tmp_path_factory.mktemp("run-head")
    config = {"inputs": unique_lines, "output": "out.txt", "memory_mb": 160, "chunk_mb": 4, "seed": 12, "head": HEAD}
    run_workflow(d, config)
    data = np.frombuffer((d / "out.txt").read_bytes(), np.uint8).reshape(-1, WIDTH)
    digits = data[:, :9].astype(np.int64) - ord("0")
    return digits @ (10 ** np.arange(8, -1, -1))


def chosen_vs_origin(origins, total):
    """Does whether a record is chosen depend on where it started? (each bin of origins holds an equal share)"""
    return chisquare(np.bincount(origins * BINS // total, minlength=BINS)).pvalue


def duplicate_values():
    return np.arange(200_000) % 50


@pytest.fixture(scope="module")
def workflow_values(tmp_path_factory):
    d = tmp_path_factory.mktemp("run-duplicates")
    (d / "dup.txt").write_bytes(b"".join(b"value %02d\n" % v for v in duplicate_values()))
    run_workflow(d, {"inputs": ["dup.txt"], "output": "out.txt", "seed": 5})
    return np.array([int(line[6:]) for line in (d / "out.txt").read_bytes().splitlines()])


def test_workflow_output_is_a_permutation_of_positions(workflow_origins):
    assert np.array_equal(np.sort(workflow_origins), np.arange(RECORDS))


def test_workflow_position_is_independent_of_origin(workflow_origins):
    assert position_vs_origin(workflow_origins) > ALPHA


def test_workflow_neighbours_are_independent(workflow_origins):
    assert neighbour_origins(workflow_origins) > ALPHA


def test_workflow_does_not_group_equal_lines(workflow_values):
    assert np.array_equal(np.sort(workflow_values), np.sort(duplicate_values()))
    assert neighbour_values(workflow_values, 50) > ALPHA


def test_a_head_is_a_uniform_subset_in_random_order(workflow_head_origins):
    origins = workflow_head_origins
    assert len(origins) == HEAD and len(np.unique(origins)) == HEAD and origins.max() < RECORDS
    assert chosen_vs_origin(origins, RECORDS) > ALPHA
    blocks = origins * BINS // RECORDS
    assert contingency_pvalue(blocks, np.arange(HEAD) * BINS // HEAD, BINS) > ALPHA, "position depends on origin"
    assert contingency_pvalue(blocks[:-1], blocks[1:], BINS) > ALPHA, "neighbours depend on each other"


def test_a_head_of_a_chunk_wise_shuffle_is_caught():
    origins = shuffle_within_chunks(RECORDS, np.random.default_rng(4))[:HEAD]
    assert chosen_vs_origin(origins, RECORDS) < ALPHA


def test_shuffling_within_chunks_is_caught():
    origins = shuffle_within_chunks(RECORDS, np.random.default_rng(1))
    assert position_vs_origin(origins) < ALPHA


def test_round_robin_of_shuffled_chunks_is_caught():
    origins = round_robin_chunks(RECORDS, np.random.default_rng(2))
    assert position_vs_origin(origins) > ALPHA, "position by position it looks uniform"
    assert neighbour_origins(origins) < ALPHA


def test_sort_r_grouping_is_caught():
    values = duplicate_values()
    grouped = values[sort_random_groups(values, np.random.default_rng(3))]
    assert neighbour_values(grouped, 50) < ALPHA


# --- every permutation equally likely (the key function itself) -----------

def test_all_permutations_of_five_records_are_equally_likely():
    """Across 60,000 seeds, each of the 120 orders of 5 records appears ~500 times."""
    offsets = np.array([0, 17, 40, 41, 99])
    seen = np.zeros(120, np.int64)
    codes = {}
    for seed in range(60_000):
        order = tuple(np.argsort(keylib.record_keys(seed, 0, offsets), kind="stable"))
        seen[codes.setdefault(order, len(codes))] += 1
    assert len(codes) == 120
    assert chisquare(seen).pvalue > ALPHA


# --- weights (issue 29) -------------------------------------------------------

WEIGHTS = {"a": 1.5, "b": 0.4}  # the first half of the records, the second half
SHARDS = 10


@pytest.fixture(scope="module")
def workflow_weighted(tmp_path_factory, unique_lines):
    """The weighted run's output file by file: the origins of the records of each shard."""
    d = tmp_path_factory.mktemp("run-weights")
    a, b = unique_lines
    config = {"inputs": unique_lines, "output": "out.txt", "memory_mb": 160, "chunk_mb": 4, "seed": 13,
              "weights": {a: WEIGHTS["a"], b: WEIGHTS["b"]}, "shards": SHARDS}
    run_workflow(d, config)
    shards = []
    for shard in range(SHARDS):
        data = np.frombuffer((d / f"out.{shard:05d}-of-{SHARDS:05d}.txt").read_bytes(), np.uint8).reshape(-1, WIDTH)
        shards.append((data[:, :9].astype(np.int64) - ord("0")) @ (10 ** np.arange(8, -1, -1)))
    return shards


def copy_gaps(origins):
    """|position of one copy - position of the other| / records, for each record that appears twice."""
    order = np.argsort(origins, kind="stable")
    by_origin = origins[order]
    twice = np.flatnonzero(by_origin[1:] == by_origin[:-1])
    return np.abs(order[twice + 1] - order[twice]) / len(origins)


def gap_pvalue(gaps):
    """Two independent uniform positions are |X - Y| apart with density 2(1 - d)."""
    edges = np.linspace(0, 1, BINS + 1)
    expected = (1 - edges[:-1]) ** 2 - (1 - edges[1:]) ** 2
    observed = np.histogram(gaps, edges)[0]
    return chisquare(observed, expected * len(gaps)).pvalue


def test_weights_give_exact_counts_and_a_uniform_extra_subset(workflow_weighted):
    origins = np.concatenate(workflow_weighted)
    half = RECORDS // 2
    counts = np.bincount(origins, minlength=RECORDS)
    a, b = counts[:half], counts[half:]
    assert set(np.unique(a)) == {1, 2} and int((a == 2).sum()) == half // 2, "weight 1.5: each once, exactly half twice"
    assert set(np.unique(b)) == {0, 1} and int(b.sum()) == round(0.4 * half), "weight 0.4: exactly 40 % once"
    assert chosen_vs_origin(np.flatnonzero(a == 2), half) > ALPHA, "the extra copies depend on where records were"
    assert chosen_vs_origin(np.flatnonzero(b == 1), half) > ALPHA, "the kept records depend on where they were"


def test_weighted_copies_are_placed_independently(workflow_weighted):
    gaps = copy_gaps(np.concatenate(workflow_weighted))
    assert len(gaps) == RECORDS // 4
    assert gap_pvalue(gaps) > ALPHA


def test_copies_placed_near_each_other_are_caught():
    """A wrong method: the second copy a random short distance after the first."""
    rng = np.random.default_rng(6)
    n = RECORDS // 4
    first = rng.random(n)
    positions = np.concatenate((first, first + rng.random(n) * 0.2))
    origins = np.concatenate((np.arange(n), np.arange(n)))[np.argsort(positions)]
    assert gap_pvalue(copy_gaps(origins)) < ALPHA


def test_each_sources_share_of_every_shard_is_as_a_uniform_cut_gives(workflow_weighted):
    """A uniform cut deals each source's records into shards by the (multivariate)
    hypergeometric distribution; its variance is below the multinomial's that
    chisquare assumes, so a uniform order passes, and a source gathered in
    some shards fails."""
    half = RECORDS // 2
    from_a = np.array([int((shard < half).sum()) for shard in workflow_weighted])
    sizes = np.array([len(shard) for shard in workflow_weighted])
    assert chisquare(from_a, sizes * from_a.sum() / sizes.sum()).pvalue > ALPHA
    gathered = np.sort(np.concatenate(workflow_weighted))  # sources one after the other
    cut = np.array_split(gathered, SHARDS)
    from_a_gathered = np.array([int((shard < half).sum()) for shard in cut])
    assert chisquare(from_a_gathered, sizes * from_a.sum() / sizes.sum()).pvalue < ALPHA


# --- dedup (issue 29) ---------------------------------------------------------

DISTINCT = 150_000
MULTIPLICITY = np.array([1, 3, 10])  # value v appears MULTIPLICITY[v % 3] times


def multiplicity_class(values):
    return values % len(MULTIPLICITY)


def order_vs_multiplicity(values):
    """Does where a distinct record ends up depend on how many copies it had?"""
    n = len(values)
    return contingency_pvalue(multiplicity_class(values), np.arange(n) * len(MULTIPLICITY) // n, len(MULTIPLICITY))


DEDUP_WEIGHT = 1.5  # weights apply to the distinct records: each once, exactly half of them twice


@pytest.fixture(scope="module")
def workflow_deduplicated(tmp_path_factory):
    d = tmp_path_factory.mktemp("run-dedup")
    values = np.repeat(np.arange(DISTINCT), MULTIPLICITY[np.arange(DISTINCT) % 3])
    values = values[np.random.default_rng(7).permutation(len(values))]
    (d / "dups.txt").write_bytes(b"".join(b"v%09d\n" % v for v in values))
    run_workflow(d, {"inputs": ["dups.txt"], "output": "out.txt", "memory_mb": 160, "chunk_mb": 4, "seed": 14,
                     "dedup": "record", "weights": {"dups.txt": DEDUP_WEIGHT}})
    return np.array([int(line[1:]) for line in (d / "out.txt").read_bytes().splitlines()])


def test_dedup_then_weights_give_exact_counts_in_a_uniform_order(workflow_deduplicated):
    values = workflow_deduplicated
    counts = np.bincount(values, minlength=DISTINCT)
    assert set(np.unique(counts)) == {1, 2} and int((counts == 2).sum()) == DISTINCT // 2
    assert chosen_vs_origin(np.flatnonzero(counts == 2), DISTINCT) > ALPHA, "the extra copies depend on the value"
    twice = np.flatnonzero(counts == 2)
    assert chisquare(np.bincount(multiplicity_class(twice), minlength=3),
                     np.bincount(multiplicity_class(np.arange(DISTINCT)), minlength=3) / 2).pvalue > ALPHA, \
        "whether a record gets its extra copy depends on how many duplicates it had"
    assert order_vs_multiplicity(values) > ALPHA
    n = len(values)
    assert contingency_pvalue(values * BINS // DISTINCT, np.arange(n) * BINS // n, BINS) > ALPHA
    assert neighbour_origins(values * len(values) // DISTINCT) > ALPHA
    gaps = copy_gaps(values)
    assert len(gaps) == DISTINCT // 2 and gap_pvalue(gaps) > ALPHA, "a record's two copies are placed together"


def test_dedup_that_keeps_the_earliest_copy_is_caught():
    """A wrong method: each distinct record placed at the smallest of its
    copies' random keys, so that records with many copies come first."""
    rng = np.random.default_rng(8)
    values = np.arange(DISTINCT)
    copies = MULTIPLICITY[values % 3]
    earliest = np.array([rng.random(m).min() for m in copies])
    assert order_vs_multiplicity(values[np.argsort(earliest)]) < ALPHA

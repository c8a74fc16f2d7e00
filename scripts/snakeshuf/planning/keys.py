"""Random sort keys: a pure function of (seed, input file index, record offset).

Every record gets a 64-bit key from a counter-based generator: SplitMix64's
finaliser applied to a Weyl sequence over the record's byte offset (or line
index), in a stream chosen by the seed and the input file. Because a key never
depends on which job computed it, the output order cannot depend on chunking,
bucket count, memory budget, cores, executor, retries or resumption.

Key ranges are contiguous and nest (range j of n * parts lies in range
j // parts of n), so sorting every key range by key and concatenating them in
order sorts all records by key: a bucket is `parts` consecutive key ranges.
"""

import numpy as np

MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S32 = (np.uint64(s) for s in (30, 27, 31, 32))


def mix64(z):
    """SplitMix64's finaliser, element-wise on uint64 (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def stream_base(seed, file_index):
    """The generator state that starts input file `file_index`'s key stream."""
    seed_word = np.uint64(seed)  # config/schema.yaml keeps seeds within 0 .. 2^64 - 1
    with np.errstate(over="ignore"):
        return mix64(mix64(seed_word) + np.uint64(file_index + 1) * GOLDEN_GAMMA)


def record_keys(seed, file_index, positions):
    """Keys of the records of one input file that start at `positions`."""
    positions = np.asarray(positions, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return mix64(stream_base(seed, file_index) + (positions + np.uint64(1)) * GOLDEN_GAMMA)


def range_of(keys, ranges):
    """Which of `ranges` key ranges each key falls in: monotone in the key.

    Range j holds the keys whose top 32 bits h satisfy floor(h * ranges / 2^32) == j,
    so floor(range_of(k, n * parts) / parts) == range_of(k, n).
    """
    with np.errstate(over="ignore"):
        return ((keys >> _S32) * np.uint64(ranges)) >> _S32


def sub_range_of(keys, ranges, passes):
    """Which of `passes` equal sub-ranges of its key range each key falls in (monotone)."""
    with np.errstate(over="ignore"):
        inside = ((keys >> _S32) * np.uint64(ranges)) & np.uint64(0xFFFFFFFF)
        return (inside * np.uint64(passes)) >> _S32


def key_checksum(keys):
    """Order-independent fingerprint of a set of records' identities (sum of mixed keys)."""
    with np.errstate(over="ignore"):
        return int(mix64(keys).sum(dtype=np.uint64))


def order_by_key(keys):
    """The stable sorting order of `keys` (equal keys keep their input order).

    NumPy sorts values faster than it argsorts them (SIMD; ~25 % at 600,000
    keys), so the keys are sorted as packed words (sort_packed); the rare
    records whose keys agree in their packed words are then put in the order
    of their whole keys."""
    order, high_parts = sort_packed(keys)
    put_ties_in_key_order(order, high_parts, keys)
    return order


def sort_packed(keys):
    """(order, high parts): each key's bits that vary within `keys`, moved to
    the top of a word whose low bits hold the key's position, sorted; the
    order those positions give, and the packed words without them. The bits
    all keys share (those of their key range) are shifted out: kept, they
    would make ties common in a large key range."""
    if not len(keys):
        return np.empty(0, np.int64), np.empty(0, np.uint64)
    low = keys.min()
    varying_bits = max(1, int(keys.max() - low).bit_length())
    position_mask = np.uint64((1 << max(1, (len(keys) - 1).bit_length())) - 1)
    packed = keys - low
    packed <<= np.uint64(64 - varying_bits)
    packed &= ~position_mask
    packed |= np.arange(len(keys), dtype=np.uint64)
    packed.sort()
    order = (packed & position_mask).view(np.int64)
    packed &= ~position_mask
    return order, packed


def put_ties_in_key_order(order, high_parts, keys):
    """Reorder by their whole keys the records of each run of equal values in
    sorted `high_parts` (in input order in `order`). Returns at once when
    there is none: even the empty arrays of the repair cost a bucket job 6 MB
    of RSS (the allocator's heap, measured at 4 GiB)."""
    equal_to_next = np.flatnonzero(high_parts[1:] == high_parts[:-1])
    if not len(equal_to_next):
        return
    tied = np.union1d(equal_to_next, equal_to_next + 1)
    run_of = np.cumsum(~np.isin(tied - 1, equal_to_next))
    tied_order = order[tied]
    order[tied] = tied_order[np.lexsort((keys[tied_order], run_of))]

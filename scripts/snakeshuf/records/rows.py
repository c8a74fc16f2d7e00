"""Table rows as records: each row of an Arrow record batch as one canonical
string of bytes, and back.

Parquet rows travel through the split, shuffle and gather stages as these
strings, so every stage that orders, counts, checksums or deduplicates
records does the same for rows without knowing about columns. Written here
because Arrow has no row format in Python; every step is a vectorised Arrow
or NumPy operation over a batch, never a loop over rows.

The encoding depends only on the values (not on how a file stored them:
row groups, pages, compression, dictionaries, slack behind nulls), so equal
rows are equal bytes. A row is its columns' values one after the other; a
value is 0x00 for null, else 0x01 and then, little-endian:
- a fixed-width value (integers, floats, dates, times, decimals, fixed-size
  binary): its bytes; a boolean: one byte, 0 or 1;
- a string or binary: its length (u32) and its bytes;
- a list (also large and fixed-size lists, and a map: a list of key-value
  structs): its length n (u32), the byte length of each of its n values
  (u32 each), then the values;
- a struct: the byte length of each field's value (u32 each), then the values.
The lengths up front let a whole batch be decoded column by column at once.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from snakeshuf.errors import InputError

U32 = np.dtype("<u4")
NULL, VALID = 0, 1
LENGTH_BYTES = U32.itemsize
NO_SEPARATOR = pa.scalar(b"", pa.large_binary())


# --- strings of bytes, many at once, as Arrow large_binary arrays ---------------------

def offsets_of(strings):
    """The int64 offsets (len + 1) of a large_binary array, its slice applied."""
    raw = np.frombuffer(strings.buffers()[1], np.int64)
    return raw[strings.offset : strings.offset + len(strings) + 1]


def bytes_of(strings):
    buffer = strings.buffers()[2]
    return np.frombuffer(buffer, np.uint8) if buffer is not None else np.empty(0, np.uint8)


def strings_at(offsets, data):
    """The large_binary array of the strings data[offsets[i] : offsets[i + 1]]."""
    offsets = np.ascontiguousarray(offsets, np.int64)
    return pa.Array.from_buffers(pa.large_binary(), len(offsets) - 1,
                                 [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))])


def fixed_strings(matrix, present=None):
    """Row i of the uint8 matrix as string i; empty where `present` is False."""
    matrix = np.ascontiguousarray(matrix, np.uint8)
    if present is None:
        return strings_at(np.arange(len(matrix) + 1, dtype=np.int64) * matrix.shape[1], matrix.ravel())
    widths = np.where(present, matrix.shape[1], 0)
    return strings_at(np.concatenate(([0], np.cumsum(widths))), matrix[present].ravel())


def fixed_part(matrix, present=None):
    """A part whose string i is row i of the uint8 matrix (empty where `present`
    is False): the matrix itself while every row is as wide, so that joined()
    puts neighbouring fixed parts side by side without an offset per value
    (a list of 2,000 int32 tokens per row took 12x its bytes to encode)."""
    if present is None or present.all():
        return np.ascontiguousarray(matrix, np.uint8)
    return fixed_strings(matrix, present)


def joined(parts):
    """String i of the result: string i of each of `parts` (equally long; Arrow
    arrays or fixed_part matrices), one after the other, as an Arrow array."""
    part = joined_part(parts)
    return fixed_strings(part) if isinstance(part, np.ndarray) else part


def joined_part(parts):
    """As joined(), but a matrix where every part is one."""
    runs = []  # lists of neighbouring matrices, and arrays
    for part in parts:
        if isinstance(part, np.ndarray) and runs and isinstance(runs[-1], list):
            runs[-1].append(part)
        else:
            runs.append([part] if isinstance(part, np.ndarray) else part)
    if len(runs) == 1 and isinstance(runs[0], list):
        return np.hstack(runs[0])
    merged = [fixed_strings(np.hstack(run)) if isinstance(run, list) else run for run in runs]
    if len(merged) == 1:
        return merged[0]
    return pc.binary_join_element_wise(*merged, NO_SEPARATOR)


def spans(offsets, data, first_item):
    """For lists whose items are strings data[offsets[j] : offsets[j + 1]]: each
    list's items joined, list i holding items first_item[i] .. first_item[i + 1] - 1."""
    return strings_at(offsets[first_item], data)


def u32_matrix(values):
    """Each row of `values` (a number or a row of numbers each) as little-endian u32 bytes."""
    values = np.asarray(values)
    if len(values) and values.max() > np.iinfo(U32).max:
        raise InputError(f"a value of {values.max():,} bytes or items is longer than a row's encoding allows (4 GiB)")
    words = values.astype(U32)
    words = words[:, None] if words.ndim == 1 else words
    return words.view(np.uint8).reshape(len(values), words.shape[1] * LENGTH_BYTES)


# --- encoding --------------------------------------------------------------------------

def encode(batch):
    """(data, ends): the rows of `batch` one after the other in `data` (uint8),
    row i ending at ends[i] (int64)."""
    if not batch.num_columns:
        raise InputError("a table with no columns has no rows to shuffle")
    rows = joined([part for column in batch.columns for part in value_parts(column)])
    offsets = offsets_of(rows)
    return bytes_of(rows)[offsets[0] : offsets[-1]], offsets[1:] - offsets[0]


def encoded_values(array):
    """Each value of `array` encoded (the module docstring), as a large_binary array."""
    return joined(value_parts(array))


def value_parts(array):
    """Arrays of strings whose i-th strings, joined, are value i encoded: the
    parts are joined once, for a whole row, not once per level."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    while plain_type(array.type) != array.type:  # a dictionary's values, an extension type's storage
        array = array.dictionary_decode() if pa.types.is_dictionary(array.type) else array.storage
    present = np.asarray(array.is_valid())
    flags = fixed_part(present.astype(np.uint8)[:, None])
    if pa.types.is_null(array.type):
        return [flags]
    return [flags, *payload_parts(array, present)]


def payload_parts(array, present):
    kind = array.type
    if pa.types.is_boolean(kind):
        return [fixed_part(np.asarray(array.fill_null(False)).astype(np.uint8)[:, None], present)]
    if is_binary_like(kind):
        strings = array.cast(pa.large_binary())
        offsets = offsets_of(strings)
        lengths = np.where(present, np.diff(offsets), 0)
        values = strings_at(np.concatenate(([0], np.cumsum(lengths))), gathered(bytes_of(strings), offsets, present))
        return [fixed_part(u32_matrix(lengths), present), values]
    if pa.types.is_map(kind):
        return payload_parts(array.cast(as_list_type(kind)), present)
    if pa.types.is_fixed_size_list(kind):
        return payload_parts(array.cast(pa.list_(kind.value_field)), present)
    if is_list(kind):
        return list_parts(array, present)
    if pa.types.is_struct(kind):
        return struct_parts(array, present)
    return [fixed_payloads(array, present)]


def gathered(data, offsets, present):
    """The bytes of the present strings of (offsets, data), back to back."""
    if present.all():
        return data[offsets[0] : offsets[-1]]
    kept = strings_at(offsets, data).filter(pa.array(present))
    return bytes_of(kept)[offsets_of(kept)[0] : offsets_of(kept)[-1]]


def fixed_payloads(array, present):
    width = array.type.bit_width // 8  # other types are refused before any job (check_supported)
    raw = np.frombuffer(array.buffers()[1], np.uint8)[array.offset * width : (array.offset + len(array)) * width]
    return fixed_part(raw.reshape(len(array), width), present)


def list_parts(array, present):
    counts = np.asarray(array.value_lengths().fill_null(0), np.int64)
    first_item = np.concatenate(([0], np.cumsum(counts)))
    items = joined_part(value_parts(array.flatten()))
    if isinstance(items, np.ndarray):  # items as wide as each other: no offsets per item
        item_lengths = np.full(len(items), items.shape[1], U32)
        item_spans = strings_at(first_item * items.shape[1], items.ravel())
    else:
        item_offsets = offsets_of(items)
        item_lengths = np.diff(item_offsets)
        item_spans = spans(item_offsets, bytes_of(items), first_item)
    length_spans = strings_at(first_item * LENGTH_BYTES, u32_matrix(item_lengths).ravel())
    return [fixed_part(u32_matrix(counts), present), length_spans, item_spans]


def struct_parts(array, present):
    fields = [encoded_values(child) for child in array.flatten()]
    if not fields:
        return []
    lengths = np.stack([np.diff(offsets_of(f)) for f in fields], axis=1)
    values = joined(fields)
    return [fixed_part(u32_matrix(lengths), present), pc.if_else(pa.array(present), values, pa.scalar(b"", pa.large_binary()))]


class Unsupported(ValueError):
    """A column type rows cannot be encoded from."""


def plain_type(kind):
    """The type whose values a dictionary or an extension type holds."""
    while pa.types.is_dictionary(kind) or isinstance(kind, pa.BaseExtensionType):
        kind = kind.value_type if pa.types.is_dictionary(kind) else kind.storage_type
    return kind


def check_supported(schema):
    """Raise Unsupported naming the first column of a type rows are not encoded from."""
    for field in schema:
        found = unsupported_in(field.type)
        if found is not None:
            raise Unsupported(f"column '{field.name}' is {field.type}" +
                              (f" (holding {found})" if found != field.type else "") +
                              ", a type snakeshuf cannot shuffle yet")


def unsupported_in(kind):
    """The first type inside `kind` that rows are not encoded from, or None."""
    kind = plain_type(kind)
    if pa.types.is_struct(kind):
        return next((t for t in (unsupported_in(f.type) for f in kind) if t is not None), None)
    if pa.types.is_map(kind):
        return unsupported_in(kind.key_type) or unsupported_in(kind.item_type)
    if is_list(kind) or pa.types.is_fixed_size_list(kind):
        return unsupported_in(kind.value_type)
    if pa.types.is_null(kind) or pa.types.is_boolean(kind) or is_binary_like(kind):
        return None
    try:
        return None if kind.bit_width % 8 == 0 else kind
    except ValueError:
        return kind


def is_list(kind):
    """A variable-length list (a fixed-size list and a map are encoded as one)."""
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


def is_binary_like(kind):
    return any(test(kind) for test in (pa.types.is_binary, pa.types.is_string, pa.types.is_large_binary,
                                       pa.types.is_large_string, pa.types.is_binary_view, pa.types.is_string_view))


def as_list_type(map_type):
    entry = pa.struct([map_type.key_field, map_type.item_field])
    return pa.list_(pa.field("entries", entry, nullable=False))


# --- decoding --------------------------------------------------------------------------

class DamagedRow(ValueError):
    """Bytes that are not rows of the schema (a damaged piece of scratch)."""


def decode(schema, data, ends):
    """The record batch of `schema` whose rows, encoded, are `data` (uint8), row i ending at ends[i]."""
    ends = np.asarray(ends, np.int64)
    cursor = np.concatenate(([0], ends))[:-1].astype(np.int64)
    columns = []
    for field in schema:
        column, cursor = decoded_values(field.type, data, cursor)
        columns.append(column)
    if not np.array_equal(cursor, ends):
        raise DamagedRow("rows do not end where their lengths say")
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def read_u32(data, at):
    """The u32 at each position of `at`."""
    if np.any(at + LENGTH_BYTES > len(data)):
        raise DamagedRow("a length runs past the end of the rows")
    return data[at[:, None] + np.arange(LENGTH_BYTES)].copy().view(U32).ravel().astype(np.int64)


def read_u32_where(data, at, present):
    """read_u32 where `present`, 0 elsewhere."""
    found = np.zeros(len(at), np.int64)
    found[present] = read_u32(data, at[present])
    return found


def decoded_values(kind, data, starts):
    """(array of `kind`, where each value ends) from values encoded at `starts`."""
    if len(starts) and starts.max() >= len(data):
        raise DamagedRow("a value starts past the end of the rows")
    if pa.types.is_dictionary(kind):  # encoded as its values (a dictionary is how a file stored them)
        values, ends = decoded_values(kind.value_type, data, starts)
        return values.dictionary_encode().cast(kind), ends
    if isinstance(kind, pa.BaseExtensionType):
        storage, ends = decoded_values(kind.storage_type, data, starts)
        return pa.ExtensionArray.from_storage(kind, storage), ends
    present = data[starts] == VALID
    if not np.all(present | (data[starts] == NULL)):
        raise DamagedRow("a value's null flag is neither 0 nor 1")
    at = starts + 1
    if pa.types.is_null(kind):
        return pa.nulls(len(starts)), at
    array, payload_ends = decoded_payloads(kind, data, at, present)
    return array, np.where(present, payload_ends, at)


def validity(present):
    return None if present.all() else pa.py_buffer(np.packbits(present, bitorder="little"))


def decoded_payloads(kind, data, at, present):
    if pa.types.is_boolean(kind):
        if np.any(at[present] >= len(data)):
            raise DamagedRow("a value runs past the end of the rows")
        truth = np.zeros(len(at), bool)
        truth[present] = data[at[present]] == 1
        return pa.array(truth, mask=~present), at + 1
    if is_binary_like(kind):
        return decoded_strings(kind, data, at, present)
    if pa.types.is_map(kind):
        lists, ends = decoded_payloads(as_list_type(kind), data, at, present)
        entries = lists.flatten()
        return pa.MapArray.from_arrays(lists.offsets, entries.field(0), entries.field(1), type=kind,
                                       mask=pa.array(~present) if not present.all() else None), ends
    if pa.types.is_fixed_size_list(kind):
        return decoded_fixed_size_lists(kind, data, at, present)
    if is_list(kind):
        return decoded_lists(kind, data, at, present)
    if pa.types.is_struct(kind):
        return decoded_structs(kind, data, at, present)
    width = kind.bit_width // 8
    if np.any(at[present] + width > len(data)):
        raise DamagedRow("a value runs past the end of the rows")
    picked = np.zeros((len(at), width), np.uint8)
    picked[present] = data[at[present][:, None] + np.arange(width)]
    return pa.Array.from_buffers(kind, len(at), [validity(present), pa.py_buffer(picked)]), at + width


def decoded_strings(kind, data, at, present):
    lengths = read_u32_where(data, at, present)
    starts = at + LENGTH_BYTES * present
    ends = starts + lengths
    if len(at) and ends.max() > len(data):
        raise DamagedRow("a string runs past the end of the rows")
    values = picked_strings(data, starts, ends)
    # Strings as they were read: a file may hold invalid UTF-8, which Arrow reads without checking.
    wide = pa.large_string() if pa.types.is_string(kind) or pa.types.is_large_string(kind) or \
        pa.types.is_string_view(kind) else pa.large_binary()
    with_nulls = pa.Array.from_buffers(wide, len(at), [validity(present), *values.buffers()[1:]])
    return with_nulls.cast(kind), ends


def picked_strings(data, starts, ends):
    """The strings data[starts[i] : ends[i]] (in increasing, non-overlapping
    order) as one contiguous large_binary array: every other string of the
    array that also holds the gaps between them."""
    if not len(starts):
        return pa.array([], pa.large_binary())
    bounds = np.stack([starts, ends], axis=1).ravel()
    with_gaps = strings_at(bounds, data)
    return with_gaps.take(pa.array(np.arange(0, len(bounds) - 1, 2)))


def decoded_lists(kind, data, at, present):
    counts = read_u32_where(data, at, present)
    owner = np.repeat(np.arange(len(at)), counts)
    first_item = np.concatenate(([0], np.cumsum(counts)))
    place = np.arange(first_item[-1]) - first_item[owner]
    length_at = at[owner] + LENGTH_BYTES * (1 + place)
    lengths = read_u32(data, length_at) if len(owner) else np.empty(0, np.int64)
    values_start = at + LENGTH_BYTES * (1 + counts)
    running = np.concatenate(([0], np.cumsum(lengths)))
    item_starts = values_start[owner] + running[:-1] - running[first_item[owner]]
    items, item_ends = decoded_values(kind.value_type, data, item_starts)
    if not np.array_equal(item_ends, item_starts + lengths):
        raise DamagedRow("a list's items do not end where their lengths say")
    offsets = pa.array(first_item, pa.int64() if pa.types.is_large_list(kind) else pa.int32())
    lists = type(pa.array([], kind)).from_arrays(offsets, items, type=kind,
                                                   mask=pa.array(~present) if not present.all() else None)
    return lists, values_start + running[first_item[1:]] - running[first_item[:-1]]


def decoded_fixed_size_lists(kind, data, at, present):
    """As lists, then each null list given list_size null items (Arrow's cast
    of a null, empty list to a fixed-size one asks for petabytes)."""
    lists, ends = decoded_payloads(pa.list_(kind.value_field), data, at, present)
    size = kind.list_size
    first = np.asarray(lists.offsets)[:-1]
    items = (first[:, None] + np.arange(size)[None, :]).ravel()
    placed = pa.array(items, mask=np.repeat(~present, size))
    return pa.FixedSizeListArray.from_arrays(lists.flatten().take(placed), type=kind,
                                             mask=pa.array(~present) if not present.all() else None), ends


def decoded_structs(kind, data, at, present):
    fields = list(kind)
    rows = np.flatnonzero(present)
    lengths = (np.stack([read_u32(data, at[rows] + LENGTH_BYTES * i) for i in range(len(fields))], axis=1)
               if fields and len(rows) else np.zeros((len(rows), len(fields)), np.int64))
    cursor = at[rows] + LENGTH_BYTES * len(fields)
    place = pa.array(np.cumsum(present) - 1, mask=~present)
    children = []
    for i, field in enumerate(fields):
        child, ends = decoded_values(field.type, data, cursor)
        if not np.array_equal(ends, cursor + lengths[:, i]):
            raise DamagedRow("a struct's fields do not end where their lengths say")
        children.append(child.take(place))
        cursor = ends
    ends = np.array(at)
    ends[rows] = cursor
    return pa.StructArray.from_arrays(children, fields=fields, mask=pa.array(~present)), ends


# --- one value of one row ---------------------------------------------------------------

def value_end(kind, record, at):
    """Where the value of `kind` encoded at record[at] ends (one row, read in Python)."""
    kind = plain_type(kind)
    if record[at] == NULL or pa.types.is_null(kind):
        return at + 1
    at += 1
    if pa.types.is_boolean(kind):
        return at + 1
    if is_binary_like(kind):
        return at + LENGTH_BYTES + int.from_bytes(record[at : at + LENGTH_BYTES], "little")
    if pa.types.is_struct(kind) or is_list(kind) or pa.types.is_fixed_size_list(kind) or pa.types.is_map(kind):
        count = kind.num_fields if pa.types.is_struct(kind) else int.from_bytes(record[at : at + LENGTH_BYTES], "little")
        lengths_at = at if pa.types.is_struct(kind) else at + LENGTH_BYTES
        lengths = np.frombuffer(record, U32, count, lengths_at)
        return lengths_at + LENGTH_BYTES * count + int(lengths.sum())
    return at + kind.bit_width // 8


def field_value(schema, column, record):
    """The encoded value of column `column` (an index) of an encoded row, or None where it is null."""
    at = 0
    for field in list(schema)[:column]:
        at = value_end(field.type, record, at)
    if record[at] == NULL:
        return None
    return record[at : value_end(schema[column].type, record, at)]

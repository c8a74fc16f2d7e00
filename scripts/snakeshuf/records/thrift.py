"""The Thrift compact protocol, in which Parquet writes its page headers and
its footer. pyarrow reads and writes both but gives neither's bytes or
fields: split jobs read page headers here to size their reads, and gather
rewrites footers to join row groups that were encoded apart into one file.

A struct decodes to a dict {field id: (type, value)} in the order read, and
encodes back to the same bytes: the encoder makes the choices Thrift's own
writer makes (a field id as a delta when it is 1 to 15 above the last, a
collection's size in its header byte when under 15). A boolean field's value
is its type (TRUE or FALSE); a boolean in a collection, a byte and a double
are kept as read. A struct to encode may also be given as its bytes.
"""

STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(13)
INTEGERS = (I16, I32, I64)
BOOLEANS = (TRUE, FALSE)  # in a collection, a byte each
MAX_DEPTH = 64  # of nested structs and collections: damaged bytes could nest without end


class Reader:
    """Decodes values from bytes that `more(n)` (if given) extends by at least
    n bytes as they run out, up to `limit` bytes in all (ValueError beyond:
    a damaged length must not read a whole file)."""

    def __init__(self, data=b"", more=None, limit=None):
        self.data, self.pos, self.more, self.limit = bytearray(data), 0, more, limit
        self.depth = 0

    def take(self, n):
        if n < 0 or self.limit is not None and self.pos + n > self.limit:
            raise ValueError("a Thrift struct runs past the bytes it may have")
        while self.pos + n > len(self.data):
            extra = self.more(self.pos + n - len(self.data)) if self.more else b""
            if not extra:
                raise EOFError("a Thrift struct runs past the end of its bytes")
            self.data += extra
        self.pos += n
        return bytes(self.data[self.pos - n : self.pos])

    def byte(self):
        return self.take(1)[0]

    def varint(self):
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self):
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind):
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise ValueError(f"Thrift values nested more than {MAX_DEPTH} deep")
            return self.plain_value(kind)
        finally:
            self.depth -= 1

    def plain_value(self, kind):
        if kind in INTEGERS:
            return self.zigzag()
        if kind == BYTE:
            return self.byte()
        if kind == DOUBLE:
            return self.take(8)
        if kind == BINARY:
            return self.take(self.varint())
        if kind in (LIST, SET):
            head = self.byte()
            size = head >> 4 if head >> 4 != 15 else self.varint()
            item = head & 0x0F
            return item, [self.item(item) for _ in range(size)]
        if kind == MAP:
            size = self.varint()
            types = self.byte() if size else 0
            return types >> 4, types & 0x0F, [(self.item(types >> 4), self.item(types & 0x0F)) for _ in range(size)]
        if kind == STRUCT:
            return self.struct()
        raise ValueError(f"not a Thrift compact type: {kind}")

    def item(self, kind):
        """A collection's element."""
        return self.byte() if kind in BOOLEANS else self.value(kind)

    def struct(self):
        fields, field = {}, 0
        while True:
            head = self.byte()
            kind = head & 0x0F
            if kind == STOP:
                return fields
            field = field + (head >> 4) if head >> 4 else self.zigzag()
            fields[field] = (kind, None if kind in (TRUE, FALSE) else self.value(kind))


def encoded(struct):
    """The bytes of a struct as Reader.struct gives it."""
    out = bytearray()
    write_struct(out, struct)
    return bytes(out)


def write_struct(out, struct):
    last = 0
    for field, (kind, value) in struct.items():
        if 0 < field - last <= 15:
            out.append((field - last) << 4 | kind)
        else:
            out.append(kind)
            write_varint(out, zigzag(field))
        if kind not in (TRUE, FALSE):
            write_value(out, kind, value)
        last = field
    out.append(STOP)


def write_value(out, kind, value):
    if kind in INTEGERS:
        write_varint(out, zigzag(value))
    elif kind == BYTE:
        out.append(value)
    elif kind == DOUBLE:
        out += value
    elif kind == BINARY:
        write_varint(out, len(value))
        out += value
    elif kind in (LIST, SET):
        item, items = value
        if len(items) < 15:
            out.append(len(items) << 4 | item)
        else:
            out.append(0xF0 | item)
            write_varint(out, len(items))
        for v in items:
            write_item(out, item, v)
    elif kind == MAP:
        key, item, pairs = value
        write_varint(out, len(pairs))
        if pairs:
            out.append(key << 4 | item)
        for k, v in pairs:
            write_item(out, key, k)
            write_item(out, item, v)
    elif isinstance(value, bytes):  # a struct encoded already
        out += value
    else:
        write_struct(out, value)


def write_item(out, kind, value):
    """A collection's element."""
    out.append(value) if kind in BOOLEANS else write_value(out, kind, value)


def zigzag(n):
    return (n << 1) ^ (n >> 63)


def write_varint(out, n):
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)

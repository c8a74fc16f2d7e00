"""Joining a text output file from its pieces (snakeshuf.stages.sinks), in bucket
order: plain pieces are copied kernel-side, and a compressed file's members
are copied whole or, where one spans two buckets, compressed here."""

import errno
import os

from snakeshuf.records import codecs

COPY_BYTES = 4 << 20


def copy_into(out, source, start, end):
    """Append bytes [start, end) of the open file `source` to the open file
    `out`, kernel-side where possible."""
    out.flush()
    done = 0
    try:
        while start + done < end:
            copied = os.copy_file_range(source.fileno(), out.fileno(), end - start - done, start + done)
            if not copied:
                break
            done += copied
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        out.seek(0, os.SEEK_END)
        feed(out, source, start + done, end)


def feed(writer, source, start, end):
    """Write bytes [start, end) of the open file `source` into `writer`."""
    source.seek(start)
    while start < end:
        data = source.read(min(COPY_BYTES, end - start))
        writer.write(data)
        start += len(data)


class MemberJoiner:
    """Joins a compressed output file's pieces: whole members are copied, the
    raw parts of a member that spans buckets are compressed into it here."""

    def __init__(self, out, codec):
        self.out, self.codec, self.member = out, codec, None

    def add(self, piece):
        with open(piece.path, "rb") as source:
            if piece.raw_head:
                self.member = self.member or codecs.compressing(self.out, self.codec)
                feed(self.member, source, 0, piece.raw_head)
            if piece.head_ends_member:
                self.close()
            copy_into(self.out, source, piece.raw_head, piece.file_bytes - piece.raw_tail)
            if piece.raw_tail:
                self.member = codecs.compressing(self.out, self.codec)
                feed(self.member, source, piece.file_bytes - piece.raw_tail, piece.file_bytes)

    def close(self):
        if self.member is not None:
            self.member.close()
            self.member = None


def join_text(path, header, pieces, codec):
    """Write the text output file `path`: the header, then the pieces' records."""
    with open(path, "wb") as out:
        out.write(codecs.compress(header, codec))
        joiner = MemberJoiner(out, codec)
        for piece in pieces:
            joiner.add(piece)
        joiner.close()
        out.flush()
        os.fsync(out.fileno())

"""Where an output set is published: files on a local (or mounted)
filesystem, or objects in an S3 bucket. One of the two is chosen once from
the configured output (of()); gather, publishing and the judgement of the
set on disk ask it, never the filesystem or the store themselves.

Either way gather writes each output as a local file first (staged()):
beside its final name for a file, which is then renamed into place; in the
run's scratch directory for an object, which is then uploaded in parts
(Upload: the store makes the object only from the complete upload, and an
upload that fails is aborted: no partial object ever has the final key).
The summary is written beside the outputs in both cases. Why not Snakemake's
S3 storage plugin: it would upload a job's outputs one by one under their
final keys and judge them by mtime, where the run's own record must decide.

What a summary records of a published file, and how it is recognised later:
its size and inode, and a token in an extended attribute; of an object, its
size and ETag, and the token in its metadata (Found).
"""

import email.utils
import json
import os
import secrets
import socket
import stat
import sys
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

from snakeshuf.control.lock import HELD_HERE, HOLDER, LOCK, NotALock, OutputLock
from snakeshuf.errors import ConfigError, OutputError
from snakeshuf.sources import objects
from snakeshuf.sources.reading import location
from snakeshuf.stages.jobs import PARTIAL, save_json
from snakeshuf.stages.scratch import NAME_CHARS

MADE_BY = "user.snakeshuf.made-by"  # the extended attribute on every published file: its output set
# An object's metadata (S3 sends it as HTTP headers: ASCII only, hence the quoted URL).
OUTPUT_SET, TOKEN = "snakeshuf-output", "snakeshuf-token"
SUMMARY = ".summary.json"  # beside the configured output
STAGED = "publishing"  # in the run's scratch directory: the outputs to upload
PART_BYTES = 64 << 20  # an upload's part: S3 allows 10,000 parts of 5 MiB to 5 GiB
MAX_PARTS = 10_000
UPLOADS_AT_ONCE = 4  # parts in flight per upload, each read from the file as it is sent
LEASE_SECONDS = 60  # a lock object not renewed for this long (by the store's clock) is a dead run's
RENEW_SECONDS = 15
CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict")  # a conditional write that lost


@dataclass(frozen=True)
class Found:
    """A file or object at an output's name, as a summary records one."""

    size: int
    regular: bool  # a regular file or an object: only those are ever replaced
    identity: tuple  # ("inode", n) or ("etag", text): what changes when it is written again
    signature: tuple = None  # (output set, token) it was published with, None if unsigned

    def entry(self):
        """What a summary records of it (with its token, where it has one)."""
        token = self.signature[1] if self.signature and self.signature[1] else None
        return {"bytes": self.size, self.identity[0]: self.identity[1], **({"token": token} if token else {})}

    def replaced_since(self, entry):
        """Whether it is not the one `entry` records (its size aside: an
        entry from before tokens has none, from before inodes no inode)."""
        name, value = self.identity
        if entry.get(name, value) != value:
            return True
        return "token" in entry and (self.signature is None or self.signature[1] != entry["token"])


def of(output):
    """The destination of the output set configured as `output`."""
    return OBJECTS if objects.is_object(output) else FILES


class Files:
    """Output files on a filesystem."""

    def found(self, path):
        try:
            info = os.lstat(path)
        except OSError:
            return None
        return Found(info.st_size, stat.S_ISREG(info.st_mode), ("inode", info.st_ino), file_signature(path))

    def staged(self, spec, index):
        return spec.outputs[index] + PARTIAL

    def sign(self, staged, output):
        """Sign a file about to be published with its output set and a token
        of its own (None on a filesystem without extended attributes: there
        the summary's record alone decides)."""
        token = secrets.token_hex(8)
        try:
            os.setxattr(staged, MADE_BY, f"{location(output)}\0{token}".encode())
        except OSError:
            return None
        return token

    def deliver(self, spec, tokens):
        """What the summary records of each output, still staged (the inode
        and attributes go with the file when it is renamed)."""
        return [self.found(self.staged(spec, i)).entry() for i in range(len(spec.outputs))]

    def move_into_place(self, spec):
        for i, path in enumerate(spec.outputs):
            os.replace(self.staged(spec, i), path)

    def remove(self, path):
        os.remove(path)

    def read_record(self, path):
        try:
            with open(path) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def write_record(self, path, record):
        save_json(path, record)

    def for_snakemake(self, paths):
        """The outputs as Snakemake can ask for them (as files)."""
        return list(paths)

    def lock(self, path):
        return OutputLock(path)

    def looks_published(self, spec):
        """Whether the outputs seem published, at no cost (for progress lines)."""
        return all(os.path.exists(path) for path in spec.outputs)


class Objects:
    """Output objects in an S3 bucket (snakeshuf.sources.objects: the client, the endpoint)."""

    def found(self, url):
        head = ask(url, "head_object", if_missing=None)
        if head is None:
            return None
        meta = head.get("Metadata") or {}
        signed = (urllib.parse.unquote(meta[OUTPUT_SET]), meta.get(TOKEN)) if OUTPUT_SET in meta else None
        return Found(head["ContentLength"], True, ("etag", head.get("ETag", "").strip('"')), signed)

    def staged(self, spec, index):
        name = os.path.basename(spec.outputs[index])[:NAME_CHARS]  # a key's segment may be longer than a file name
        return os.path.join(spec.scratch, STAGED, f"{index:05d}-{name}")

    def sign(self, staged, output):
        return secrets.token_hex(8)  # set as the object's metadata when it is uploaded

    def __init__(self):
        self.sending = {}  # output: its Uploads, from deliver (gather then writes the summary) to move_into_place

    def deliver(self, spec, tokens):
        """Send every part of every staged output, signed with its token;
        what the summary records of each, but its ETag: as with files, the
        summary is written before the objects are made (move_into_place),
        so that new objects never stand under an old summary."""
        check_still_held(spec)
        abort_unfinished(spec.outputs)
        meta = [{OUTPUT_SET: urllib.parse.quote(spec.output), TOKEN: token} for token in tokens]
        sent = [Upload(self.staged(spec, i), url, meta[i]) for i, url in enumerate(spec.outputs)]
        try:
            for upload in sent:
                upload.send_parts()
        except BaseException:
            abort_all(sent)
            raise
        self.sending[spec.output] = sent
        return [{"bytes": u.size, "token": m[TOKEN]} for u, m in zip(sent, meta)]

    def move_into_place(self, spec):
        """Make every object at once (the moment a reader could see some
        new and others old: each is one request, and a failure among them
        leaves the rest old, which the summary's tokens tell), then record
        their ETags in the summary and remove the staged files."""
        sent = self.sending.pop(spec.output)
        try:
            check_still_held(spec)
            with ThreadPoolExecutor(objects.REQUESTS_AT_ONCE) as pool:
                etags = list(pool.map(Upload.finish, sent))
        except BaseException:
            abort_all(sent)
            raise
        summary = spec.output + SUMMARY
        record = self.read_record(summary)
        for upload, etag in zip(sent, etags):
            record["outputs"][upload.url]["etag"] = etag
        self.write_record(summary, record)
        for i in range(len(spec.outputs)):
            os.remove(self.staged(spec, i))

    def remove(self, url):
        ask(url, "delete_object")

    def read_record(self, url):
        got = ask(url, "get_object", if_missing=None)
        try:
            return json.loads(got["Body"].read()) if got else None
        except ValueError:
            return None

    def write_record(self, url, record):
        ask(url, "put_object", Body=json.dumps(record, indent=1).encode(), ContentType="application/json")

    def for_snakemake(self, paths):
        return []  # Snakemake would take a URL for a local file name

    def lock(self, url):
        return ObjectLock(url)

    def looks_published(self, spec):
        return not os.path.isdir(spec.scratch)  # removed once gather has published (no request)


class ObjectLock:
    """The lock of an output in object storage, with OutputLock's methods:
    an object at <output>.lock naming its holder, written only where there
    is none (a conditional PUT) and renewed by its holder every
    RENEW_SECONDS. One not renewed for LEASE_SECONDS, or whose holder was a
    process of this host that no longer runs, is a dead run's (a process id
    is never judged from another host): it is taken over by a PUT
    conditional on its ETag, so that of two runs taking it over one wins."""

    def __init__(self, url):
        self.path = url
        self.etag = None
        self.token = secrets.token_hex(8)  # this run's, in the lock object: gather checks it (check_still_held)
        self.stopped = threading.Event()
        self.renewing = threading.Thread(target=self._renew, daemon=True)

    @property
    def held(self):
        return self.etag is not None or HELD_HERE.get(self.path) not in (None, self)

    def acquire(self):
        """Take the lock; return None, or who holds it."""
        if self.held:
            return None
        while not self._put(IfNoneMatch="*"):
            current = self._current()
            if current is None:
                continue  # released in between
            text, etag, age = current
            if not text.startswith(HOLDER.split("{")[0]):
                raise NotALock(self.path)
            if not holder_is_dead(text, age):
                return f"{text.splitlines()[0]}, renewed {age:.0f} s ago"
            if self._put(IfMatch=etag):
                break
        self.check_conditions_hold()
        HELD_HERE[self.path] = self
        self.renewing.start()
        return None

    def check_conditions_hold(self):
        """Refuse a store that ignores conditional writes (a second write
        where one exists succeeds): there the lock would stop no second run."""
        if self._put(IfNoneMatch="*"):
            self.release()
            raise ConfigError(f"config key 'output': the store ({objects.endpoint_url() or 'AWS'}) ignores "
                              "conditional writes (If-None-Match), which the lock of an output in object storage "
                              "needs to keep two runs from writing it at once: write to a store that honours them "
                              "(AWS S3, recent MinIO), or to a file")

    def release(self):
        """Remove the lock object if it is still this run's."""
        if self.etag is None:
            return
        self.stopped.set()
        if self.renewing.is_alive():
            self.renewing.join()  # a renewal in flight changes the ETag compared below
        try:
            current = self._current()
            if current and current[1] == self.etag:
                OBJECTS.remove(self.path)
        except (ConfigError, OutputError) as error:
            print(f"snakeshuf: warning: the lock was left ({error}); the next run takes it over at once "
                  f"on this host, elsewhere once it is {LEASE_SECONDS} s old", file=sys.stderr, flush=True)
        self.etag = None
        HELD_HERE.pop(self.path, None)

    def _renew(self):
        while not self.stopped.wait(RENEW_SECONDS):
            try:
                if not self._put(IfMatch=self.etag):
                    print(f"snakeshuf: warning: another run took over the lock '{self.path}'; this run's gather "
                          "will publish nothing", file=sys.stderr, flush=True)
                    return
            except (ConfigError, OutputError):
                pass  # the store did not answer: try again, within the lease

    def _put(self, **condition):
        """Write the lock object under `condition`; whether it was written."""
        bucket, key = objects.bucket_and_key(self.path, "output")
        holder = {**identity(), "run": self.token}
        body = "\n".join([HOLDER.format(pid=os.getpid(), host=socket.gethostname()), json.dumps(holder)])
        try:
            self.etag = objects.client().put_object(Bucket=bucket, Key=key, Body=body.encode(), **condition)["ETag"]
            return True
        except objects.request_errors() as error:
            if error_code(error) in CONFLICT:
                return False
            raise output_failure(self.path, error) from None

    def _current(self):
        """(text, ETag, seconds since written, by the store's clock) of the lock object, or None."""
        got = ask(self.path, "get_object", if_missing=None)
        if got is None:
            return None
        date = got["ResponseMetadata"].get("HTTPHeaders", {}).get("date")
        now = email.utils.parsedate_to_datetime(date) if date else datetime.now(timezone.utc)
        text = got["Body"].read(4096).decode(errors="replace")
        return text, got["ETag"], (now - got["LastModified"]).total_seconds()


def holder_of(text):
    """What a lock object says of its holder ({} if it is not one snakeshuf wrote whole)."""
    try:
        holder = json.loads(text.splitlines()[1])
    except (IndexError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def record_holder(lock_path, into):
    """Write the token of the lock object this process holds at `lock_path`
    into the file `into` (in the run's scratch), for gather to check before
    it publishes; a file's lock needs none (the kernel frees it only when
    its holder dies)."""
    lock = HELD_HERE.get(lock_path)
    if isinstance(lock, ObjectLock):
        save_json(into, lock.token)


def check_still_held(spec):
    """Stop unless the run that gather is part of still holds the output's
    lock: one that lost it (stopped for longer than the lease, as a
    suspended laptop or job is) must not publish over the run that took it."""
    try:
        with open(spec.paths.lock_holder) as handle:
            token = json.load(handle)
    except (OSError, ValueError):
        token = None  # the main process records it before the first job: this gather is no run's
    current = ObjectLock(spec.output + LOCK)._current()
    if current is None or holder_of(current[0]).get("run") != token:
        who = f"to another run ({current[0].splitlines()[0]})" if current else "(its lock object is gone)"
        raise OutputError(f"output '{spec.output}': this run lost the output's lock {who}, so it publishes "
                          "nothing: a run stopped past the lease, or a store that was unreachable for "
                          f"{LEASE_SECONDS} s, loses it. Run the same command again once no other run writes it")


def identity():
    """This process, as a lock object names it: a process id means something
    only on its host, until it restarts, and in its PID namespace (a
    container may share the host's name and boot)."""
    return {"host": socket.gethostname(), "boot": read_id("/proc/sys/kernel/random/boot_id"),
            "pids": read_id("/proc/self/ns/pid"), "pid": os.getpid()}


def read_id(path):
    """The identifier at `path` (a file, or a namespace's link), None where there is none."""
    try:
        if os.path.islink(path):
            return os.readlink(path)
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def holder_is_dead(text, age):
    """Whether the lock object `text`, written `age` seconds ago, is a dead run's."""
    if age > LEASE_SECONDS:
        return True
    holder, mine = holder_of(text), identity()
    try:
        if all(holder.get(key) == mine[key] and mine[key] for key in ("host", "boot", "pids")):
            os.kill(int(holder["pid"]), 0)
    except (ValueError, KeyError, TypeError):
        return False
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # a process of another user's
    return False


def file_signature(path):
    """A file's signature as (output set, token); None where it has none.
    Signatures from before tokens have no token, and from before sets were
    signed, a fingerprint in place of the set."""
    try:
        value = os.getxattr(path, MADE_BY, follow_symlinks=False).decode(errors="replace")
    except OSError:
        return None
    owner, _, token = value.partition("\0")
    return owner, token or None


class Upload:
    """A staged file on its way to becoming the object `url`: sent as a
    multipart upload's parts (each read from the file as it is sent; S3
    allows the last, here maybe the only, part to be of any size), which the
    store joins into the object only at finish()."""

    def __init__(self, path, url, metadata):
        self.path, self.url, self.metadata = path, url, metadata
        self.size = os.path.getsize(path)
        self.part = max(PART_BYTES, -(-self.size // MAX_PARTS))
        self.upload_id, self.parts = None, []

    def send_parts(self):
        self.upload_id = ask(self.url, "create_multipart_upload", Metadata=self.metadata)["UploadId"]
        starts = range(0, max(self.size, 1), self.part)  # an empty file is one empty part
        with ThreadPoolExecutor(UPLOADS_AT_ONCE) as pool:
            etags = list(pool.map(self.send_part, starts))
        self.parts = [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, 1)]

    def send_part(self, start):
        from s3transfer.utils import ReadFileChunk  # boto3's: a window of a file, read as it is sent

        with ReadFileChunk.from_filename(self.path, start, self.part) as body:
            return ask(self.url, "upload_part", UploadId=self.upload_id, PartNumber=start // self.part + 1,
                       Body=body)["ETag"]

    def finish(self):
        """Make the object; its ETag."""
        done = ask(self.url, "complete_multipart_upload", UploadId=self.upload_id,
                   MultipartUpload={"Parts": self.parts})
        self.upload_id = None
        return done["ETag"].strip('"')

    def abort(self):
        """Give up the upload, if one was started (best effort: the next run aborts what is left)."""
        if self.upload_id is not None:
            try:
                ask(self.url, "abort_multipart_upload", UploadId=self.upload_id)
            except OutputError:
                pass


def abort_all(uploads):
    for upload in uploads:
        upload.abort()


def abort_unfinished(urls):
    """Abort the uploads of these objects that a killed gather left behind
    (their parts are kept, and billed, until then); the output's lock keeps
    any other run from uploading them now. Best effort: a policy may not
    allow listing uploads, and a bucket lifecycle rule removes them too."""
    bucket = objects.bucket_and_key(urls[0], "output")[0]
    keys = {objects.bucket_and_key(url, "output")[1] for url in urls}
    client = objects.client()
    try:
        pages = client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket,
                                                                         Prefix=os.path.commonprefix(list(keys)))
        for upload in (u for page in pages for u in page.get("Uploads", ()) if u["Key"] in keys):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    except objects.request_errors():
        pass


RAISE = object()  # ask(): no default for a missing object


def ask(url, operation, if_missing=RAISE, **params):
    """boto3's `operation` on the output object `url` (its summary or
    lock), with `params`; `if_missing` where there is no such object (a
    missing bucket is an error all the same); a failure as output_failure."""
    bucket, key = objects.bucket_and_key(url, "output")
    try:
        return getattr(objects.client(), operation)(Bucket=bucket, Key=key, **params)
    except objects.request_errors() as error:
        if if_missing is not RAISE and objects.not_found(error) and error_code(error) != "NoSuchBucket":
            return if_missing
        raise output_failure(url, error) from None


def error_code(error):
    """The store's code for a failed request ('NoSuchBucket', 'PreconditionFailed'), None if it gave none."""
    return (getattr(error, "response", None) or {}).get("Error", {}).get("Code")


def output_failure(url, error):
    """An OutputError for a request about `url` (an output, its summary or
    its lock) that failed; a ConfigError if its bucket does not exist."""
    bucket = url[len(objects.SCHEME) :].partition("/")[0]
    if error_code(error) == "NoSuchBucket":
        return ConfigError(f"config key 'output': {objects.no_bucket(bucket)}; create it first, or name another "
                           "bucket")
    text = str(error).split("Details:")[0].strip()
    return OutputError(f"config key 'output': object storage failed a request for '{url}': {text}; check the "
                       f"URL, the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE) and the endpoint "
                       f"({objects.endpoint_source()})")


FILES, OBJECTS = Files(), Objects()

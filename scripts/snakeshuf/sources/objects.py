"""Inputs in object storage: s3://bucket/key, listed, globbed or in a sheet.

The jobs read objects themselves, through pyarrow's S3 filesystem (already a
dependency): a split job reads its byte range with range requests, so no
disk ever holds the corpus; Snakemake's S3 storage plugin would download
each job's whole files first, and a split job of a large file reads only a
part of it. The plan lists and looks up objects with boto3, which gives
each object's ETag (an object written again within a second keeps its
size and mtime, never its ETag) and errors that tell a missing bucket from
a missing key. Credentials come from where the AWS SDK looks (environment
variables, profile files, instance roles) and never pass through snakeshuf;
an S3-compatible store's endpoint from AWS_ENDPOINT_URL (or
AWS_ENDPOINT_URL_S3), which pyarrow does not read itself.
"""

import fnmatch
import functools
import json
import os
import re
import threading
import urllib.parse
from dataclasses import astuple, dataclass

from snakeshuf.errors import ConfigError, InputError

SCHEME = "s3://"
# Amazon's rules for bucket names (also what S3-compatible stores accept).
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
GLOB_CHARACTERS = re.compile(r"[*?[]")
MAX_KEY_BYTES = 1024  # S3's longest key
CHOSEN_ENDPOINT = "SNAKESHUF_S3_ENDPOINT"  # what use_endpoint set, in this process and its jobs
REQUEST_ERRORS = (OSError, ValueError)  # pyarrow's ArrowInvalid is a ValueError
CONNECT_SECONDS = 10  # a store that does not answer is an error in seconds (60 s a try by default)
# Requests in flight at once (snakeshuf.sources.reading.for_each): each is a
# round trip to the store, whose latency dominates small reads and lookups.
REQUESTS_AT_ONCE = 16
NOT_FOUND = ("404", "NoSuchKey", "NoSuchBucket")  # boto3's codes for no such object or bucket
GONE = ("NO_SUCH_KEY", "RESOURCE_NOT_FOUND")  # pyarrow's words for an object deleted under a reader
CREATING = threading.Lock()  # the first calls come from many threads at once; a client is made once


@dataclass(frozen=True)
class ObjectInfo:
    """What the plan takes from an object, as from a local file's stat."""

    size: int
    mtime_ns: int  # whole seconds: a listing gives milliseconds, a HEAD request seconds
    etag: str  # changes whenever the object is written again, even within the same second


# What this process has learnt of objects, by (kind, URL or pattern): an
# ObjectInfo ("stat"), a glob's matches ("glob"), a codec ("codec"). A
# cluster job recalls what the main process learnt (remember, recall): every
# job parses the workflow and plans, and would otherwise ask the store again,
# a HEAD request or more per object per job; it also plans what the main
# process planned, whatever changed since (the split jobs check that).
FACTS = {}


def is_object(path):
    return isinstance(path, str) and path.startswith(SCHEME)


def bucket_and_key(url, key_name="inputs"):
    """(bucket, key) of an s3:// URL with a valid bucket name and a key of
    plain segments (a ConfigError names the config key and the URL): S3
    takes '.', '..' and empty segments literally, pyarrow refuses or resolves them."""
    bucket, _, key = url[len(SCHEME) :].partition("/")
    if not BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise ConfigError(f"config key '{key_name}': '{url}' names the bucket '{bucket}', which is not a valid "
                          "bucket name (3 to 63 lowercase letters, digits, dots and hyphens)")
    if key_name == "output" and (not key or key.endswith("/")):
        raise ConfigError(f"config key 'output': '{url}' names no object: add its name, e.g. "
                          f"'{url.rstrip('/')}/shuffled.jsonl'")
    if not plain_key(key):
        what = "which S3 would take literally: name it plainly" if key_name == "output" else \
            "which snakeshuf cannot read as it is named: copy the object to a plain key"
        raise ConfigError(f"config key '{key_name}': '{url}' has an empty, '.' or '..' segment in its key, {what}")
    return bucket, key


def readable(url, pattern):
    """`url`, a match of glob `pattern`, unless its key cannot be read as named (a ConfigError)."""
    if not plain_key(url[len(SCHEME) :].partition("/")[2]):
        raise ConfigError(f"input pattern '{pattern}' (config key 'inputs') matches '{url}', whose key has an "
                          "empty, '.' or '..' segment, which snakeshuf cannot read as it is named: copy the object "
                          "to a plain key, or narrow the pattern")
    return url


def plain_key(key):
    return all(segment not in ("", ".", "..") for segment in key.split("/"))


def use_endpoint(url):
    """Read objects from the store at `url` (config key 's3_endpoint'), in
    this process and the jobs it starts (through AWS_ENDPOINT_URL_S3, which
    they inherit): one store per Snakemake process, so a second workflow
    module asking for another is refused."""
    check_endpoint(url, "config key 's3_endpoint'")
    chosen = os.environ.get(CHOSEN_ENDPOINT)
    if chosen and chosen != url:
        raise ConfigError(f"config key 's3_endpoint' is '{url}', but another module of this workflow reads from "
                          f"'{chosen}': one Snakemake process reads from one store; run the two separately")
    os.environ[CHOSEN_ENDPOINT] = os.environ["AWS_ENDPOINT_URL_S3"] = url
    forget_clients()


def filesystem():
    """pyarrow's S3 filesystem, for reading objects' bytes."""
    with CREATING:
        return made_filesystem()


def client():
    """boto3's S3 client, for what pyarrow does not give: listings and HEAD
    requests with each object's ETag, and errors that say which went wrong."""
    with CREATING:
        return made_client()


@functools.cache
def made_filesystem():
    from pyarrow import fs

    endpoint = endpoint_url()
    options = {}
    if endpoint:
        scheme, _, host = endpoint.rpartition("://")
        options = {"endpoint_override": host.rstrip("/"), "scheme": scheme or "https"}
    return fs.S3FileSystem(**options, **({"region": region()} if region() else {}))


@functools.cache
def made_client():
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError
    except ImportError:
        raise ConfigError("s3:// URLs need boto3, a dependency of snakeshuf that this environment lacks: "
                          "reinstall snakeshuf (pip install snakeshuf), or pip install boto3") from None

    endpoint = endpoint_url()
    style = {"s3": {"addressing_style": "path"}} if endpoint else {}  # as pyarrow addresses a custom endpoint
    config = Config(connect_timeout=CONNECT_SECONDS, max_pool_connections=REQUESTS_AT_ONCE, **style)
    try:
        # A session of its own: boto3's default one is not safe to share between threads.
        return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=region(), config=config)
    except (ValueError, BotoCoreError) as error:
        raise ConfigError(f"the AWS settings of this environment do not parse ({error}): check the AWS_* "
                          "variables and the AWS config file (AWS_CONFIG_FILE, else ~/.aws/config)") from None


def forget_clients():
    """Make the clients anew (the endpoint changed)."""
    made_filesystem.cache_clear()
    made_client.cache_clear()


def endpoint_url():
    url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if url:
        check_endpoint(url, endpoint_source())
    return url


def store_and(url):
    """`url` with the store it is in: one URL names other objects on another endpoint."""
    return f"{endpoint_url() or 'AWS'} {url}"


def endpoint_source():
    """Where the endpoint comes from, for a message."""
    if os.environ.get(CHOSEN_ENDPOINT):
        return "config key 's3_endpoint'"
    return "AWS_ENDPOINT_URL_S3" if os.environ.get("AWS_ENDPOINT_URL_S3") else "AWS_ENDPOINT_URL"


def check_endpoint(url, where):
    """A ConfigError naming `where` unless `url` is http(s)://host[:port];
    one with a user name or password is refused without being shown."""
    if "@" in url:
        raise ConfigError(f"{where} has a user name or password in its URL, which snakeshuf would have to print: "
                          "give credentials through AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile")
    try:
        parsed = urllib.parse.urlsplit(url)
        ok = (parsed.port is None or parsed.port > 0) and parsed.scheme in ("http", "https") and parsed.hostname
        ok = ok and parsed.path in ("", "/") and not parsed.query and not parsed.fragment
    except ValueError:
        ok = False
    if not ok:
        shown = f"'{url}', which" if "?" not in url and "#" not in url else "a URL with a query or fragment, which"
        raise ConfigError(f"{where} is {shown} is not an endpoint URL: give one such as "
                          "http://127.0.0.1:9000 or https://s3.example.com")


def region():
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def failure(url, error):
    """An InputError for a request about `url` that failed (the libraries'
    messages name the operation and the store's error, never a credential)."""
    text = str(error).split("Details:")[0].strip().rstrip(";")
    if isinstance(error, FileNotFoundError) or any(code in text for code in GONE):
        return InputError(f"input '{url}' no longer exists in object storage (it was there when the run was "
                          "planned); run the same command again to re-plan")
    return InputError(f"input '{url}' cannot be read from object storage: {text}; check the URL, the "
                      f"credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE) and the endpoint ({endpoint_source()})")



def from_the_store(error):
    """Whether pyarrow's OSError is a request to the store that failed (all
    of those say so), not bytes that could not be read as what they claim."""
    return isinstance(error, OSError) and "AWS Error" in str(error)


def request_errors():
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # no client was made (made_client says why)
        return ()
    return BotoCoreError, ClientError


def not_found(error):
    from botocore.exceptions import ClientError

    return isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in NOT_FOUND


def fact(kind, key, learn):
    """The fact `kind` about `key`, learnt once (`learn()`) per run."""
    if (kind, key) not in FACTS:
        FACTS[kind, key] = learn()
    return FACTS[kind, key]


def remember(path):
    """Save what this process learnt of objects into `path` (none: nothing is written)."""
    if FACTS:
        from snakeshuf.stages.jobs import save_json

        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_json(path, [[kind, key, astuple(value) if isinstance(value, ObjectInfo) else value]
                         for (kind, key), value in FACTS.items()])


def recall(path):
    """Take what the main process saved into `path` as learnt (missing or unreadable: learn anew)."""
    try:
        with open(path) as handle:
            saved = json.load(handle)
        FACTS.update({(kind, key): ObjectInfo(*value) if kind == "stat" and value else value
                      for kind, key, value in saved})
    except (OSError, ValueError, TypeError):
        pass


def head(url):
    """ObjectInfo of the object at `url` from the store itself, or None if there is none."""
    bucket, key = bucket_and_key(url)
    try:
        found = client().head_object(Bucket=bucket, Key=key)
    except request_errors() as error:
        if not_found(error):
            return None
        raise failure(url, error) from None
    return info_of(found, found["ContentLength"])


def info_of(found, size):
    """ObjectInfo from a HEAD's answer or a listing's entry (a store may leave out the ETag or the mtime)."""
    when = found.get("LastModified")
    return ObjectInfo(size, int(when.timestamp()) * 1_000_000_000 if when else 0, found.get("ETag", "").strip('"'))


def stat(url, source="config key 'inputs'"):
    """ObjectInfo of the object at `url` (listed by a glob, or asked for); a
    ConfigError if there is none (`source`: where it was named)."""
    info = looked_up(url)
    if info is None:
        raise ConfigError(why_missing(url, source))
    return info


def looked_up(url):
    """ObjectInfo of the object at `url`, or None: asked of the store once per run."""
    return fact("stat", url, lambda: head(url))


def no_bucket(bucket):
    return f"the store has no bucket '{bucket}' (endpoint: {endpoint_url() or 'AWS'})"


def why_missing(url, source):
    """The message for a URL with no object: no bucket, a prefix, or no such key."""
    bucket, key = bucket_and_key(url)
    try:
        listed = client().list_objects_v2(Bucket=bucket, Prefix=key + "/", MaxKeys=1)
    except request_errors() as error:
        if not_found(error):
            return f"input '{url}' does not exist ({source}): {no_bucket(bucket)}"
        raise failure(url, error) from None
    if listed.get("KeyCount"):
        return (f"input '{url}' ({source}) is a prefix, not an object; list its objects or use a glob such as "
                f"'{url.rstrip('/')}/*.jsonl'")
    return f"input '{url}' does not exist ({source}): bucket '{bucket}' has no object '{key}'"


def matching(pattern):
    """The URLs of the objects a glob URL matches, sorted: the object named
    so if there is one (such as 'a [1].txt'), else those expand() finds."""
    return fact("glob", pattern, lambda: [pattern] if looked_up(pattern) else expand(pattern))


def expand(pattern):
    """The URLs of the objects that a glob URL matches, sorted ('*' and '?'
    within one path segment, '**' across any number of them)."""
    bucket, key = bucket_and_key(pattern)
    fixed = key[: GLOB_CHARACTERS.search(key).start()].rpartition("/")[0] if GLOB_CHARACTERS.search(key) else key
    rest = key[len(fixed) :].lstrip("/")
    deeper = "/" in rest or "**" in rest  # a wildcard above the last segment, or '**': list every level
    listing = {"Bucket": bucket, "Prefix": f"{fixed}/" if fixed else "", **({} if deeper else {"Delimiter": "/"})}
    wanted, found = f"{bucket}/{key}".split("/"), []
    try:
        for page in client().get_paginator("list_objects_v2").paginate(**listing):
            for item in page.get("Contents", ()):
                folder = item["Key"].endswith("/")  # a marker that tools write for a "folder", no data
                if not folder and matches(f"{bucket}/{item['Key']}".split("/"), wanted):
                    found.append(readable(f"{SCHEME}{bucket}/{item['Key']}", pattern))
                    FACTS["stat", found[-1]] = info_of(item, item["Size"])
    except request_errors() as error:
        if not_found(error):
            raise ConfigError(f"input pattern '{pattern}' (config key 'inputs'): {no_bucket(bucket)}") from None
        raise failure(pattern, error) from None
    return sorted(found)


def matches(segments, pattern):
    """Whether path segments match pattern segments as glob.glob matches
    files: fnmatch each, '**' any number of segments, and a hidden segment
    only a pattern segment that starts with '.' too."""
    if not pattern:
        return not segments
    if pattern[0] == "**":
        return any(matches(segments[i:], pattern[1:]) for i in range(len(segments) + 1)
                   if not any(map(hidden, segments[:i])))
    return (bool(segments) and segment_matches(segments[0], pattern[0]) and matches(segments[1:], pattern[1:]))


def segment_matches(segment, pattern):
    return fnmatch.fnmatchcase(segment, pattern) and (not hidden(segment) or pattern.startswith("."))


def hidden(segment):
    """A name that starts with '.'; not '.' and '..', which on disk are no
    names at all and in a key are segments that readable() refuses."""
    return segment.startswith(".") and segment not in (".", "..")


def open_input(url):
    """The object at `url` as a seekable binary file (pyarrow's, read with range requests)."""
    bucket, key = bucket_and_key(url)
    try:
        return filesystem().open_input_file(f"{bucket}/{key}")
    except REQUEST_ERRORS as error:
        raise failure(url, error) from None

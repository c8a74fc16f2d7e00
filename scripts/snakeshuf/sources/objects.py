"""Inputs in object storage: s3://bucket/key, listed, globbed or in a sheet.

The jobs read objects themselves, through pyarrow's S3 filesystem (already a
dependency): a split job reads its byte range with range requests, so no
disk ever holds the corpus; Snakemake's S3 storage plugin would download
each job's whole files first, and a split job of a large file reads only a
part of it. Credentials come from where the AWS SDK looks (environment
variables, profile files, instance roles) and never pass through snakeshuf;
an S3-compatible store's endpoint from AWS_ENDPOINT_URL (or
AWS_ENDPOINT_URL_S3), which pyarrow does not read itself.
"""

import fnmatch
import functools
import os
import re
from dataclasses import dataclass

from snakeshuf.errors import ConfigError, InputError

SCHEME = "s3://"
# Amazon's rules for bucket names (also what S3-compatible stores accept).
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
GLOB_CHARACTERS = re.compile(r"[*?[]")
CHOSEN_ENDPOINT = "SNAKESHUF_S3_ENDPOINT"  # what use_endpoint set, in this process and its jobs
REQUEST_ERRORS = (OSError, ValueError)  # pyarrow's ArrowInvalid is a ValueError


@dataclass(frozen=True)
class ObjectInfo:
    """What the plan takes from an object, as from a local file's stat."""

    size: int
    mtime_ns: int


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
    if not plain_key(key):
        raise ConfigError(f"config key '{key_name}': '{url}' has an empty, '.' or '..' segment in its key, which "
                          "snakeshuf cannot read as it is named: copy the object to a plain key")
    return bucket, key


def plain_key(key):
    return all(segment not in ("", ".", "..") for segment in key.split("/"))


def use_endpoint(url):
    """Read objects from the store at `url` (config key 's3_endpoint'), in
    this process and the jobs it starts (through AWS_ENDPOINT_URL_S3, which
    they inherit): one store per Snakemake process, so a second workflow
    module asking for another is refused."""
    chosen = os.environ.get(CHOSEN_ENDPOINT)
    if chosen and chosen != url:
        raise ConfigError(f"config key 's3_endpoint' is '{url}', but another module of this workflow reads from "
                          f"'{chosen}': one Snakemake process reads from one store; run the two separately")
    os.environ[CHOSEN_ENDPOINT] = os.environ["AWS_ENDPOINT_URL_S3"] = url
    filesystem.cache_clear()


@functools.cache
def filesystem():
    from pyarrow import fs

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options = {}
    if endpoint:
        scheme, _, host = endpoint.rpartition("://")
        options = {"endpoint_override": host.rstrip("/"), "scheme": scheme or "https"}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return fs.S3FileSystem(**options, **({"region": region} if region else {}))


def failure(url, error):
    """An InputError for a request about `url` that failed (pyarrow's message
    names the bucket, the key and the store's error, never a credential)."""
    text = str(error).split("Details:")[0].strip().rstrip(";")
    return InputError(f"input '{url}' cannot be read from object storage: {text}; check the URL, the "
                      "credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE) and the endpoint (AWS_ENDPOINT_URL)")


def stat(url, source="config key 'inputs'"):
    """ObjectInfo of the object at `url`; a ConfigError if there is none (`source`: where it was named)."""
    from pyarrow import fs

    bucket, key = bucket_and_key(url)
    try:
        info = filesystem().get_file_info(f"{bucket}/{key}")
    except REQUEST_ERRORS as error:
        raise failure(url, error) from None
    if info.type == fs.FileType.NotFound:
        raise ConfigError(f"input '{url}' does not exist ({source}): no such bucket or object at the endpoint")
    if info.type != fs.FileType.File:
        raise ConfigError(f"input '{url}' ({source}) is a prefix, not an object; list its objects or use a glob "
                          f"such as '{url.rstrip('/')}/*.jsonl'")
    return ObjectInfo(info.size, info.mtime_ns or 0)


def exists(url):
    """Whether an object is at `url` (a name such as 'a [1].txt' is looked up before it is taken for a glob)."""
    from pyarrow import fs

    bucket, key = bucket_and_key(url)
    try:
        return filesystem().get_file_info(f"{bucket}/{key}").type == fs.FileType.File
    except REQUEST_ERRORS as error:
        raise failure(url, error) from None


def expand(pattern):
    """The URLs of the objects that a glob URL matches, sorted ('*' and '?'
    within one path segment, '**' across any number of them)."""
    from pyarrow import fs

    bucket, key = bucket_and_key(pattern)
    fixed = key[: GLOB_CHARACTERS.search(key).start()].rpartition("/")[0] if GLOB_CHARACTERS.search(key) else key
    deeper = "/" in key[len(fixed) :].lstrip("/")  # a wildcard above the last segment: list every level
    selector = fs.FileSelector(f"{bucket}/{fixed}".rstrip("/"), recursive=deeper, allow_not_found=True)
    try:
        listed = filesystem().get_file_info(selector)
    except REQUEST_ERRORS as error:
        raise failure(pattern, error) from None
    wanted = f"{bucket}/{key}".split("/")
    return sorted(SCHEME + i.path for i in listed if i.type == fs.FileType.File and plain_key(i.path)
                  and matches(i.path.split("/"), wanted))


def matches(segments, pattern):
    """Whether path segments match pattern segments as glob.glob matches
    files: fnmatch each, '**' any number of segments, and a segment that
    starts with '.' (hidden) only a pattern segment that does too."""
    if not pattern:
        return not segments
    if pattern[0] == "**":
        return any(matches(segments[i:], pattern[1:]) for i in range(len(segments) + 1)
                   if not any(s.startswith(".") for s in segments[:i]))
    return (bool(segments) and segment_matches(segments[0], pattern[0]) and matches(segments[1:], pattern[1:]))


def segment_matches(segment, pattern):
    return fnmatch.fnmatchcase(segment, pattern) and (not segment.startswith(".") or pattern.startswith("."))


def open_input(url):
    """The object at `url` as a seekable binary file (pyarrow's, read with range requests)."""
    bucket, key = bucket_and_key(url)
    try:
        return filesystem().open_input_file(f"{bucket}/{key}")
    except FileNotFoundError:
        raise InputError(f"input '{url}' no longer exists in object storage (it was there when the run was "
                         "planned); run the same command again to re-plan") from None
    except REQUEST_ERRORS as error:
        raise failure(url, error) from None

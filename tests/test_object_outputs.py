"""Outputs in object storage (issue 31): an output at s3://bucket/key is the
bytes a local run publishes, in every layout; it appears under its final key
only when complete, with its summary beside it; a run judges the objects
there as it judges files (its own and current, its own and changed, or
someone's); one run at a time writes an output set, and a killed run's lock
does not stop the next. The differential tests (Scenario.object_output)
compare such outputs with the reference model across the config space."""

import json
import os
import signal
import subprocess
import time
from types import SimpleNamespace

import boto3
import pytest
from botocore.config import Config

from conftest import corpus_file, run_workflow, snakemake_command, snakeshuf
from objectstore import SECRET, ObjectStore
from test_objects import logged, run_from_store


def s3(store):
    """A boto3 client of the test store (path-style, as snakeshuf addresses a custom endpoint)."""
    return boto3.session.Session().client(
        "s3", endpoint_url=store.env["AWS_ENDPOINT_URL"], aws_access_key_id="snakeshuf-test",
        aws_secret_access_key=SECRET, region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))


def bucket(store, name):
    store.put(f"{name}/.keep", b"")  # makes the bucket; hidden, and no output's name
    return name


def inputs(tmp_path):
    corpus_file(tmp_path / "a.txt", 400_000, seed=1)
    corpus_file(tmp_path / "b.txt", 200_000, seed=2)
    return [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]


LAYOUTS = {
    "one plain file": {"output": "out.txt"},
    "zstd shards of splits": {"output": "c.jsonl.zst", "splits": {"valid": 0.1, "train": {"size": "rest", "shards": 2}}},
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_object_output_is_the_bytes_of_a_local_run_and_current_from_any_directory(tmp_path, store, layout):
    config = {"inputs": inputs(tmp_path), "memory_mb": 160, "chunk_mb": 1, **LAYOUTS[layout]}
    run_workflow(tmp_path / "local", config)  # checked against the reference model
    local = {p.name: p.read_bytes() for p in (tmp_path / "local").iterdir() if p.is_file()
             and p.name != "test-config.yaml" and not p.name.endswith(".summary.json")}
    name = bucket(store, "layouts-" + str(abs(hash(layout)))[:8])
    url = f"s3://{name}/shuffled/{config['output']}"
    run = run_from_store(tmp_path / "s3", {**config, "output": url}, store)
    published = store.objects_under(f"{name}/shuffled")
    assert published.keys() == {*local, config["output"] + ".summary.json"}, "and no lock, no partial object"
    assert {k: v for k, v in published.items() if k in local} == local
    assert not [p for p in (tmp_path / "s3").iterdir() if p.name not in (
        ".snakemake", "logs", "benchmarks", "scratch", "test-config.yaml")], "a file beside the run"
    summary = json.loads(published[config["output"] + ".summary.json"])
    assert all(entry["etag"] and entry["token"] for entry in summary["outputs"].values())
    assert summary["stages"]["gather"]["peak_rss_mb"] <= config["memory_mb"], "the upload outgrew the budget"
    assert SECRET not in run.stderr + logged(tmp_path / "s3")
    elsewhere = run_from_store(tmp_path / "elsewhere", {**config, "output": url}, store)
    assert "is up to date" in elsewhere.stderr and "rule gather" not in elsewhere.stderr


def test_an_object_changed_after_publishing_is_rebuilt_and_someones_is_refused(tmp_path, store):
    name = bucket(store, "judged")
    config = {"inputs": inputs(tmp_path), "memory_mb": 160, "output": f"s3://{name}/out.txt"}
    run_from_store(tmp_path, config, store)
    published = store.get(f"{name}/out.txt")
    store.put(f"{name}/out.txt", published[::-1])  # as many bytes, written again
    again = run_from_store(tmp_path, config, store)
    assert "'s3://judged/out.txt' was replaced after it was published" in again.stderr, again.stderr[-3000:]
    assert store.get(f"{name}/out.txt") == published
    store.put(f"{name}/theirs.txt", b"someone's data\n")
    theirs = run_from_store(tmp_path, {**config, "output": f"s3://{name}/theirs.txt"}, store, check=False)
    assert theirs.returncode != 0 and "output 's3://judged/theirs.txt' exists, and snakeshuf cannot show that it " \
        "made it" in theirs.stderr
    assert store.get(f"{name}/theirs.txt") == b"someone's data\n"
    other_set = {**config, "output": f"s3://{name}/other.txt", "shards": 2}
    run_from_store(tmp_path, other_set, store)
    clash = {**config, "output": f"s3://{name}/other.00000-of-00002.txt"}
    refused = run_from_store(tmp_path, clash, store, check=False)
    assert refused.returncode != 0 and "was published with output 's3://judged/other.txt', another output set" \
        in refused.stderr, refused.stderr[-3000:]


def test_a_new_layout_removes_the_objects_of_the_old_one(tmp_path, store):
    name = bucket(store, "relayout")
    config = {"inputs": inputs(tmp_path), "memory_mb": 160, "output": f"s3://{name}/o.txt", "shards": 3}
    run_from_store(tmp_path, config, store)
    assert len(store.objects_under(name)) == 3 + 2
    run_from_store(tmp_path, {**config, "shards": 2}, store)
    assert sorted(store.objects_under(name)) == [".keep", "o.00000-of-00002.txt", "o.00001-of-00002.txt",
                                                 "o.txt.summary.json"]


GLOB = "s3://refusals/in/*.txt"
REFUSED = {
    "a bucket name that is not valid": (GLOB, "s3://Bad_Bucket/out.txt", "config key 'output': "
                                        "'s3://Bad_Bucket/out.txt' names the bucket 'Bad_Bucket', which is not a "
                                        "valid bucket name"),
    "a '..' segment": (GLOB, "s3://refusals/a/../out.txt", "'s3://refusals/a/../out.txt' has an empty, '.' or '..' "
                       "segment in its key"),
    "a bucket that does not exist": (GLOB, "s3://no-such-bucket/out.txt", "the store has no bucket 'no-such-bucket'"),
    "an output an input glob matches": (GLOB, "s3://refusals/in/shuffled.txt", "output 's3://refusals/in/shuffled.txt'"
                                        " would be 's3://refusals/in/shuffled.txt', which input "
                                        "'s3://refusals/in/*.txt' (config key 'inputs') names"),
    "an output a '**' glob matches": ("s3://refusals/**/*.txt", "s3://refusals/in/deep/er/out.txt", "which input "
                                      "'s3://refusals/**/*.txt' (config key 'inputs') names"),
    "the lock an input glob matches": ("s3://refusals/in/*", "s3://refusals/in/shuffled", "which input "
                                       "'s3://refusals/in/*' (config key 'inputs') names"),
    "another store's URL": (GLOB, "gs://refusals/out.txt", "config key 'output': 'gs://refusals/out.txt' is a URL"),
    # found by a hostile pass: told to copy the object to a plain key, or written to a local 's3:' directory
    "no key": (GLOB, "s3://refusals", "config key 'output': 's3://refusals' names no object: add its name, e.g. "
               "'s3://refusals/shuffled.jsonl'"),
    "a folder": (GLOB, "s3://refusals/dir/", "config key 'output': 's3://refusals/dir/' names no object"),
    "one slash": (GLOB, "s3:/refusals/out.txt", "config key 'output': 's3:/refusals/out.txt' looks like a URL with "
                  "one '/' after its scheme; write 's3://refusals/out.txt'"),
    "a key longer than S3 allows": (GLOB, "s3://refusals/" + "k" * 1020 + ".txt", "txt.summary.json', whose key "
                                    "is 1037 bytes long; S3 allows 1024"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_an_output_object_that_cannot_be_written_is_refused_before_any_job(tmp_path, store, case):
    store.put("refusals/in/a.txt", b"1\n2\n")
    pattern, output, message = REFUSED[case]
    run = run_from_store(tmp_path, {"inputs": [pattern], "output": output}, store, check=False)
    assert run.returncode != 0 and message in run.stderr, run.stderr[-3000:]
    assert not list(tmp_path.glob("logs/*/split_chunk")), "refused after a job had started"
    assert sorted(store.objects_under("refusals")) == ["in/a.txt"]


def test_a_key_longer_than_a_file_name_is_written(tmp_path, store):
    """Found by a hostile pass: a key segment of 300 characters (S3 allows
    1,024 bytes a key) was refused as too long for the filesystem."""
    name = bucket(store, "long-keys")
    key = "x" * 300 + ".txt"
    run_from_store(tmp_path, {"inputs": inputs(tmp_path)[:1], "memory_mb": 160, "output": f"s3://{name}/{key}"},
                   store)
    assert sorted(store.get(f"{name}/{key}").splitlines()) == sorted((tmp_path / "a.txt").read_bytes().splitlines())


def test_one_url_on_two_stores_is_two_outputs_with_a_scratch_each(monkeypatch):
    """Found by a hostile pass: the same URL on another endpoint shared the
    first run's state directory and scratch, and the second run cleared the
    first's locks."""
    from argparse import Namespace

    from snakeshuf.control.cli import state_directory
    from snakeshuf.stages.scratch import run_directory

    places = set()
    for endpoint in ("http://127.0.0.1:9000", "http://127.0.0.1:9001"):
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        places.add(run_directory("scratch", "s3://bucket/out.txt"))
        places.add(state_directory(Namespace(output="s3://bucket/out.txt", scratch=None)))
    assert len(places) == 4


def test_denied_access_to_the_output_is_refused_before_any_job_without_the_secret(tmp_path):
    server = ObjectStore()
    server.start(INITIAL_NO_AUTH_ACTION_COUNT="0")
    try:
        run = run_from_store(tmp_path, {"inputs": inputs(tmp_path), "output": "s3://private/out.txt"}, server,
                             check=False)
    finally:
        server.stop()
    assert run.returncode != 0 and "config key 'output': object storage failed a request for 's3://private/out.txt" in run.stderr
    assert "AWS_ACCESS_KEY_ID" in run.stderr and SECRET not in run.stderr + logged(tmp_path)
    assert not list(tmp_path.glob("logs/*/split_chunk")), "refused after a job had started"


def started_until_gather(workdir, config, store, release, **popen):
    """A run whose gather waits (a test hook) until `release` exists."""
    env = {**store.env, "SNAKESHUF_SLOW_JOBS": "gather", "SNAKESHUF_RELEASE": str(release)}
    running = subprocess.Popen(snakemake_command(workdir, config), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, **popen)
    deadline = time.monotonic() + 120
    while not list(workdir.glob("scratch/*/locks/gather.lock")):
        assert time.monotonic() < deadline and running.poll() is None, "gather never started"
        time.sleep(0.1)
    return running


def test_the_store_failing_while_gather_uploads_publishes_nothing_and_a_rerun_is_byte_identical(tmp_path):
    server = ObjectStore()
    server.start()
    try:
        config = {"inputs": inputs(tmp_path), "memory_mb": 160, "chunk_mb": 1, "shards": 2,
                  "output": f"s3://{bucket(server, 'fails')}/out.txt.gz"}
        run_workflow(tmp_path / "local", {**config, "output": "out.txt.gz"})
        running = started_until_gather(tmp_path / "s3", config, server, tmp_path / "release")
        server.stop()
        (tmp_path / "release").touch()
        _, stderr = running.communicate(timeout=300)
        assert running.returncode != 0 and "Traceback" not in stderr and "OutputError" not in stderr, stderr[-3000:]
        assert "the run stopped before publishing 's3://fails/out.txt.gz'" in stderr, "found by a hostile pass"
        assert "config key 'output': object storage failed a request for 's3://fails/out." in \
            logged(tmp_path / "s3"), logged(tmp_path / "s3")[-3000:]
        server.start()  # an empty store: moto keeps its objects in memory
        bucket(server, "fails")
        run_from_store(tmp_path / "s3", config, server)
        for shard in ("out.00000-of-00002.txt.gz", "out.00001-of-00002.txt.gz"):
            assert server.get(f"fails/{shard}") == (tmp_path / "local" / shard).read_bytes()
    finally:
        server.stop()


SETS = {"files of several parts": (12 << 20, 5), "files smaller than a part": (1000, 2)}  # bytes; failing call


@pytest.mark.parametrize("files", SETS)
def test_a_part_failing_leaves_no_object_of_the_set_and_no_unfinished_upload(tmp_path, store, monkeypatch, files):
    """Found by a hostile pass: each file was uploaded whole under its final
    key in turn, so a run killed or failing between two left a mix of two
    orders; and by a review: files smaller than a part still were. Now every
    part of every file is sent first, and the objects are made at the end:
    a part of the second file failing (the connection lost) leaves neither
    object, and no upload unfinished."""
    from botocore.exceptions import ConnectionClosedError

    from snakeshuf.errors import OutputError
    from snakeshuf.outputs import destinations
    from snakeshuf.sources import objects
    from snakeshuf.stages.scratch import Scratch

    size, failing = SETS[files]
    name = bucket(store, "uploads")
    for key, value in store.env.items():
        monkeypatch.setenv(key, value)
    objects.forget_clients()
    monkeypatch.setattr(destinations, "PART_BYTES", 5 << 20)  # S3's smallest part
    monkeypatch.setattr(destinations, "check_still_held", lambda spec: None)  # no run's lock here
    urls = [f"s3://{name}/o.0000{i}-of-00002.txt" for i in range(2)]
    spec = SimpleNamespace(scratch=str(tmp_path), outputs=urls, output=f"s3://{name}/o.txt", paths=Scratch(str(tmp_path)))
    for i in range(2):
        staged = destinations.OBJECTS.staged(spec, i)
        os.makedirs(os.path.dirname(staged), exist_ok=True)
        with open(staged, "wb") as handle:
            handle.write(os.urandom(size))
    sent = []

    def fail_a_part(params, **_):
        sent.append(params["Key"])
        if len(sent) == failing:
            raise ConnectionClosedError(endpoint_url=store.env["AWS_ENDPOINT_URL"])

    objects.client().meta.events.register("before-parameter-build.s3.UploadPart", fail_a_part)
    try:
        with pytest.raises(OutputError, match="object storage failed a request for 's3://uploads/o.00001-of-00002"):
            destinations.OBJECTS.deliver(spec, ["t0", "t1"])
    finally:
        objects.forget_clients()
    assert sent[-1] == "o.00001-of-00002.txt" and sent[0] == "o.00000-of-00002.txt", sent
    assert sorted(store.objects_under(name)) == [".keep"], "an object of the set was made"
    assert not s3(store).list_multipart_uploads(Bucket=name).get("Uploads")


def test_no_object_is_made_before_the_summary_that_describes_it(tmp_path, store, monkeypatch):
    """Found by a hostile pass from the README: a run killed after its
    objects were made and before its summary was written left the new
    bytes under the old summary (another seed, other checksums). As with
    files, the summary now comes first and the objects after it; their
    ETags are added once they exist."""
    from snakeshuf.outputs import destinations
    from snakeshuf.sources import objects
    from snakeshuf.stages.scratch import Scratch

    name = bucket(store, "summary-first")
    for key, value in store.env.items():
        monkeypatch.setenv(key, value)
    objects.forget_clients()
    monkeypatch.setattr(destinations, "check_still_held", lambda spec: None)  # no run's lock here
    urls = [f"s3://{name}/o.0000{i}-of-00002.txt" for i in range(2)]
    spec = SimpleNamespace(scratch=str(tmp_path), outputs=urls, output=f"s3://{name}/o.txt", paths=Scratch(str(tmp_path)))
    for i in range(2):
        staged = destinations.OBJECTS.staged(spec, i)
        os.makedirs(os.path.dirname(staged), exist_ok=True)
        with open(staged, "wb") as handle:
            handle.write(b"record\n" * (i + 1))
    try:
        entries = destinations.OBJECTS.deliver(spec, ["t0", "t1"])
        assert sorted(store.objects_under(name)) == [".keep"], "an object was made before its summary"
        destinations.OBJECTS.write_record(spec.output + ".summary.json", {"outputs": dict(zip(urls, entries))})
        destinations.OBJECTS.move_into_place(spec)
    finally:
        objects.forget_clients()
    summary = json.loads(store.get(f"{name}/o.txt.summary.json"))
    for url in urls:
        key = url.split("/", 3)[3]
        assert summary["outputs"][url]["etag"] == s3(store).head_object(Bucket=name, Key=key)["ETag"].strip('"')


def test_a_store_that_ignores_conditional_writes_is_refused(store, monkeypatch):
    """Found by a review: where If-None-Match is ignored, every run takes
    the lock and two write one output."""
    from snakeshuf.errors import ConfigError
    from snakeshuf.outputs import destinations
    from snakeshuf.sources import objects

    name = bucket(store, "unconditional")
    for key, value in store.env.items():
        monkeypatch.setenv(key, value)
    objects.forget_clients()
    objects.client().meta.events.register("before-parameter-build.s3.PutObject",
                                          lambda params, **_: params.pop("IfNoneMatch", None))
    try:
        with pytest.raises(ConfigError, match="ignores conditional writes"):
            destinations.ObjectLock(f"s3://{name}/out.txt.lock").acquire()
    finally:
        objects.forget_clients()
    assert sorted(store.objects_under(name)) == [".keep"], "the lock object was left"


def lock_object(store, key, pid, host=None, boot=None):
    from snakeshuf.outputs import destinations

    holder = {**destinations.identity(), "pid": pid, **({"host": host} if host else {}),
              **({"boot": boot} if boot else {})}
    store.put(key, f"snakeshuf PID {pid} on {holder['host']}\n{json.dumps(holder)}".encode())


def test_one_run_at_a_time_writes_an_object_output_and_a_dead_runs_lock_does_not_stop_the_next(tmp_path, store):
    name = bucket(store, "locks")
    config = {"inputs": inputs(tmp_path), "memory_mb": 160, "output": f"s3://{name}/out.txt"}
    run_workflow(tmp_path / "local", {**config, "output": "out.txt"})
    # a run that is alive, here or on another host, holds it
    lock_object(store, f"{name}/out.txt.lock", os.getpid())
    alive = run_from_store(tmp_path / "one", config, store, check=False)
    assert alive.returncode != 0 and f"is being written by another run (snakeshuf PID {os.getpid()} on" in \
        alive.stderr, alive.stderr[-3000:]
    lock_object(store, f"{name}/out.txt.lock", 1, host="another-host")
    elsewhere = run_from_store(tmp_path / "one", config, store, check=False)
    assert elsewhere.returncode != 0 and "snakeshuf PID 1 on another-host, renewed" in elsewhere.stderr
    # a run of this host that no longer runs (killed, so that it never removed its lock) does not
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock_object(store, f"{name}/out.txt.lock", dead.pid)
    run_from_store(tmp_path / "one", config, store)
    assert store.get(f"{name}/out.txt") == (tmp_path / "local" / "out.txt").read_bytes()
    assert "out.txt.lock" not in store.objects_under(name)


def test_a_second_run_is_refused_while_the_first_writes_and_a_killed_run_is_resumed(tmp_path, store):
    name = bucket(store, "twice")
    config = {"inputs": inputs(tmp_path), "memory_mb": 160, "chunk_mb": 1, "output": f"s3://{name}/out.txt"}
    run_workflow(tmp_path / "local", {**config, "output": "out.txt"})
    first = started_until_gather(tmp_path / "first", config, store, tmp_path / "never", start_new_session=True)
    second = run_from_store(tmp_path / "second", config, store, check=False)
    assert second.returncode != 0 and "is being written by another run" in second.stderr, second.stderr[-3000:]
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate()
    assert "out.txt.lock" in store.objects_under(name), "the killed run never removed its lock"
    # as a gather killed mid-upload leaves it: parts the store keeps until the upload is aborted
    s3(store).create_multipart_upload(Bucket=name, Key="out.txt")
    run_from_store(tmp_path / "first", config, store)
    assert store.get(f"{name}/out.txt") == (tmp_path / "local" / "out.txt").read_bytes()
    assert not s3(store).list_multipart_uploads(Bucket=name).get("Uploads")


def test_a_run_that_lost_its_lock_publishes_nothing(tmp_path, store):
    """Found by a hostile pass: a run stopped (SIGSTOP, a suspended laptop)
    for longer than the lease lost its lock to a second run, which
    published; resumed, the first published over it. Here the lock is taken
    over while gather waits: gather must publish nothing."""
    name = bucket(store, "lost")
    config = {"inputs": inputs(tmp_path), "memory_mb": 160, "output": f"s3://{name}/out.txt"}
    running = started_until_gather(tmp_path / "run", config, store, tmp_path / "release")
    lock_object(store, f"{name}/out.txt.lock", 1, host="another-host")  # as a run that took it over
    (tmp_path / "release").touch()
    _, stderr = running.communicate(timeout=300)
    assert running.returncode != 0 and "Traceback" not in stderr
    assert "this run lost the output's lock to another run (snakeshuf PID 1 on another-host)" in logged(tmp_path / "run")
    assert sorted(store.objects_under(name)) == [".keep", "out.txt.lock"], "it published"


def test_a_process_of_another_pid_namespace_is_not_judged_by_its_pid(tmp_path, store):
    """Found by a hostile pass: a run in a container (the host's name and
    boot, its own PIDs) lost its lock at once to a run outside, which found
    no process of that number."""
    name = bucket(store, "pids")
    config = {"inputs": inputs(tmp_path), "memory_mb": 160, "output": f"s3://{name}/out.txt"}
    dead = subprocess.Popen(["true"])
    dead.wait()
    store.put(f"{name}/out.txt.lock", f"snakeshuf PID {dead.pid} on here\n".encode() + json.dumps(
        {**lock_holder_here(dead.pid), "pids": "pid:[1]"}).encode())
    run = run_from_store(tmp_path, config, store, check=False)
    assert run.returncode != 0 and f"snakeshuf PID {dead.pid} on here, renewed" in run.stderr, run.stderr[-3000:]


def lock_holder_here(pid):
    from snakeshuf.outputs import destinations

    return {**destinations.identity(), "pid": pid}


def test_a_current_run_removes_what_a_run_killed_after_its_summary_left(tmp_path, store):
    """Found by a hostile pass: a run killed between writing its summary and
    removing the old layout's objects left them for good, beside the new
    ones (a reader's glob saw every record twice): the next run, finding
    the output current, removes them."""
    name = bucket(store, "killed")
    config = {"inputs": inputs(tmp_path), "memory_mb": 160, "output": f"s3://{name}/u.txt", "shards": 3}
    run_from_store(tmp_path, config, store)
    old = {key: (data, s3(store).head_object(Bucket=name, Key=key)["Metadata"])
           for key, data in store.objects_under(name).items() if "-of-00003" in key}
    published = json.loads(store.get(f"{name}/u.txt.summary.json"))["outputs"]
    run_from_store(tmp_path, {**config, "shards": 2}, store)
    for key, (data, metadata) in old.items():  # as if never removed: the same bytes, ETag and token
        upload = s3(store).create_multipart_upload(Bucket=name, Key=key, Metadata=metadata)["UploadId"]
        part = s3(store).upload_part(Bucket=name, Key=key, UploadId=upload, PartNumber=1, Body=data)["ETag"]
        s3(store).complete_multipart_upload(Bucket=name, Key=key, UploadId=upload,
                                            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part}]})
    summary = json.loads(store.get(f"{name}/u.txt.summary.json"))
    store.put(f"{name}/u.txt.summary.json", json.dumps({**summary, "superseded": published}).encode())
    again = run_from_store(tmp_path, {**config, "shards": 2}, store)
    assert "is up to date" in again.stderr
    assert sorted(store.objects_under(name)) == [".keep", "u.00000-of-00002.txt", "u.00001-of-00002.txt",
                                                 "u.txt.summary.json"]
    assert "superseded" not in json.loads(store.get(f"{name}/u.txt.summary.json")), "checked again on every run"


def test_a_lock_not_renewed_within_its_lease_is_a_dead_runs():
    from snakeshuf.outputs import destinations

    holder = json.dumps({"host": "another-host", "boot": "x", "pid": 1})
    text = f"snakeshuf PID 1 on another-host\n{holder}"
    assert not destinations.holder_is_dead(text, destinations.LEASE_SECONDS - 1)
    assert destinations.holder_is_dead(text, destinations.LEASE_SECONDS + 1)
    assert destinations.RENEW_SECONDS * 3 <= destinations.LEASE_SECONDS, "a renewal may be late twice"


def test_the_command_writes_an_object_keeping_its_state_in_the_users_cache(tmp_path, store, installed):
    name = bucket(store, "command")
    corpus_file(tmp_path / "a.txt", 300_000, seed=4)
    env = {**store.env, **installed, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    local = snakeshuf(tmp_path, env, "a.txt", "-o", "local.txt", "--memory", "160M")
    assert local.returncode == 0, local.stderr[-3000:]
    before = sorted(p.name for p in tmp_path.iterdir())
    run = snakeshuf(tmp_path, env, "a.txt", "-o", f"s3://{name}/out.txt", "--memory", "160M")
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert store.get(f"{name}/out.txt") == (tmp_path / "local.txt").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "the command wrote into the current directory"
    assert os.listdir(tmp_path / "cache" / "snakeshuf") == [], "its state directory was left after success"
    again = snakeshuf(tmp_path, env, "a.txt", "-o", f"s3://{name}/out.txt", "--memory", "160M")
    assert again.returncode == 0 and "is up to date" in again.stderr
    # found by a hostile pass: a traceback from the output's lock, taken before the workflow starts
    bad = snakeshuf(tmp_path, {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9/x"}, "a.txt", "-o",
                    f"s3://{name}/out.txt")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "which is not an endpoint URL" in bad.stderr

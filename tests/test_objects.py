"""Inputs in object storage (issue 31): s3:// objects, listed, globbed and in a
sample sheet, read by the jobs over HTTP from a real S3-API server (moto's,
started here from its package) give the bytes the same files give on disk;
what goes wrong on the way is a clear error naming the object, and a rerun
finishes byte-identical."""

import glob
import gzip
import json
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
import zstandard

from conftest import corpus_file, run_workflow, snakemake_command
from objectstore import SECRET, ObjectStore
from tables import seeded_table


def corpus(tmp_path):
    """Three inputs, one each plain, gzip and zstd, on disk: {name: bytes}."""
    corpus_file(tmp_path / "a.txt", 200_000, seed=1)
    plain = (tmp_path / "a.txt").read_bytes()
    corpus_file(tmp_path / "b.txt", 150_000, seed=2)
    corpus_file(tmp_path / "c.txt", 100_000, seed=3)
    files = {"a.txt": plain, "b.txt.gz": gzip.compress((tmp_path / "b.txt").read_bytes()),
             "c.txt.zst": zstandard.ZstdCompressor().compress((tmp_path / "c.txt").read_bytes())}
    local = tmp_path / "local"
    local.mkdir()
    for name, data in files.items():
        (local / name).write_bytes(data)
    return files


def run_from_store(workdir, config, store, check=True):
    """The workflow with the store's endpoint and credentials (the reference
    model reads local files only: the bytes are compared with a local run)."""
    result = subprocess.run(snakemake_command(workdir, config), capture_output=True, text=True, env=store.env)
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    if check:
        assert result.returncode == 0, result.stderr[-4000:]
    return result


def logged(workdir):
    """Every log and summary a run leaves, as one text."""
    paths = glob.glob(str(workdir / "**" / "*.log"), recursive=True) + glob.glob(str(workdir / "*.json"))
    return "".join(open(p, errors="replace").read() for p in paths)


@pytest.mark.parametrize("how", ["listed", "glob", "sheet"])
def test_objects_listed_globbed_or_in_a_sheet_give_the_bytes_of_the_same_files_on_disk(tmp_path, store, how):
    files = corpus(tmp_path)
    prefix = f"corpus-{how}/deep/er"
    for name, data in files.items():
        store.put(f"{prefix}/{name}", data)
    store.put(f"{prefix}/notes.md", b"not an input\n")
    store.put(f"{prefix}/.hidden.txt", b"hidden, as a glob on disk leaves it\n")  # found by a hostile pass
    local = {"inputs": [str(tmp_path / "local" / n) for n in files], "output": "out.txt", "memory_mb": 160,
             "chunk_mb": 1}
    run_workflow(tmp_path / "local-run", local)  # checked against the reference model
    urls = [f"s3://{prefix}/{name}" for name in files]
    config = {**local, "inputs": urls}
    if how == "glob":
        config["inputs"] = [f"s3://corpus-{how}/**/*.txt*"]
    elif how == "sheet":
        sheet = tmp_path / "sheet.tsv"
        sheet.write_text("path\n" + "\n".join(urls) + "\n")
        config = {**local, "sample_sheet": str(sheet)}
        del config["inputs"]
    run = run_from_store(tmp_path / "s3-run", config, store)
    assert "rule split_chunk" in run.stderr
    made_by = json.loads((tmp_path / "s3-run" / "out.txt.summary.json").read_text())["made_by"]
    assert [entry[0] for entry in made_by["inputs"]] == urls, "an object is recorded by its URL, from any directory"
    assert (tmp_path / "s3-run" / "out.txt").read_bytes() == (tmp_path / "local-run" / "out.txt").read_bytes()
    assert SECRET not in run.stderr + run.stdout + logged(tmp_path / "s3-run")
    again = run_from_store(tmp_path / "s3-run", config, store)
    assert "rule split_chunk" not in again.stderr and "rule gather" not in again.stderr, "not up to date"


def test_the_endpoint_may_come_from_the_config(tmp_path, store):
    store.put("endpoint/a.txt", b"1\n2\n3\n")
    env = {k: v for k, v in store.env.items() if not k.startswith("AWS_ENDPOINT_URL")}
    config = {"inputs": ["s3://endpoint/a.txt"], "output": "out.txt"}
    without = subprocess.run(snakemake_command(tmp_path / "without", config), capture_output=True, text=True, env=env,
                             timeout=300)
    assert without.returncode != 0 and "cannot be read from object storage" in without.stderr
    config["s3_endpoint"] = store.env["AWS_ENDPOINT_URL"]
    run = subprocess.run(snakemake_command(tmp_path / "with", config), capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted((tmp_path / "with" / "out.txt").read_bytes().splitlines()) == [b"1", b"2", b"3"]


def test_parquet_objects_give_the_bytes_of_the_same_files_on_disk(tmp_path, store):
    inputs = []
    for i in range(2):
        path = tmp_path / f"t{i}.parquet"
        pq.write_table(seeded_table(25169, i, 300), path, row_group_size=70)
        store.put(f"tables/t{i}.parquet", path.read_bytes())
        inputs.append(str(path))
    local = {"inputs": inputs, "output": "s.parquet", "memory_mb": 512}
    run_workflow(tmp_path / "local-run", local)
    run_from_store(tmp_path / "s3-run", {**local, "inputs": ["s3://tables/*.parquet"]}, store)
    assert (tmp_path / "s3-run" / "s.parquet").read_bytes() == (tmp_path / "local-run" / "s.parquet").read_bytes()


REFUSED = {
    "a bucket that does not exist": (["s3://no-such-bucket/a.txt"], "input 's3://no-such-bucket/a.txt' does not "
                                     "exist (config key 'inputs'): the store has no bucket 'no-such-bucket'"),
    "an object that does not exist": (["s3://refused/none.txt"], "input 's3://refused/none.txt' does not exist "
                                      "(config key 'inputs'): bucket 'refused' has no object 'none.txt'"),
    "a glob in a bucket that does not exist": (["s3://no-such-bucket/*.txt"], "input pattern "
                                               "'s3://no-such-bucket/*.txt' (config key 'inputs'): the store has no "
                                               "bucket 'no-such-bucket'"),
    # the plan looks objects up at once: still the first missing is named
    "two of three objects missing": (["s3://refused/dir/a.txt", "s3://refused/none-1.txt", "s3://refused/none-2.txt"],
                                     "input 's3://refused/none-1.txt' does not exist"),
    "a glob that matches nothing": (["s3://refused/*.jsonl"], "input pattern 's3://refused/*.jsonl' (config key "
                                    "'inputs') matches no object"),
    "a bucket name that is not valid": (["s3://Bad_Bucket/a.txt"], "config key 'inputs': 's3://Bad_Bucket/a.txt' "
                                        "names the bucket 'Bad_Bucket', which is not a valid bucket name"),
    "a prefix": (["s3://refused/dir"], "input 's3://refused/dir' (config key 'inputs') is a prefix, not an object"),
    "another scheme": (["gs://refused/a.txt"], "config key 'inputs': 'gs://refused/a.txt' is a URL"),
    # found by a hostile pass: read twice under two names, or a traceback from pyarrow
    "a '..' segment": (["s3://refused/dir/../dir/a.txt"], "'s3://refused/dir/../dir/a.txt' has an empty, '.' or "
                       "'..' segment in its key"),
    "an empty segment": (["s3://refused/dir//a.txt"], "'s3://refused/dir//a.txt' has an empty, '.' or '..' segment"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_object_storage_cannot_give_is_refused_before_any_job(tmp_path, store, case):
    store.put("refused/dir/a.txt", b"a\n")
    inputs, message = REFUSED[case]
    run = run_from_store(tmp_path, {"inputs": inputs, "output": "out.txt"}, store, check=False)
    assert run.returncode != 0 and message in run.stderr, run.stderr[-3000:]
    assert not glob.glob(str(tmp_path / "logs" / "*" / "split_chunk")), "refused after jobs had started"
    assert not (tmp_path / "out.txt").exists()


BAD_ENDPOINTS = {  # found by a hostile pass: each was a traceback (or, with a password, printed it)
    "not a URL": ({"s3_endpoint": "notaurl"}, "config key 's3_endpoint' is 'notaurl', which is not an endpoint URL"),
    "no scheme": ({"s3_endpoint": "127.0.0.1:5077"}, "config key 's3_endpoint' is '127.0.0.1:5077', which is not"),
    "a broken IPv6 host": ({"s3_endpoint": "http://[::1:5077"}, "config key 's3_endpoint' is 'http://[::1:5077'"),
    "a password in it": ({"s3_endpoint": "http://x:pw-in-url@127.0.0.1:9"}, "config key 's3_endpoint' has a user "
                         "name or password in its URL"),
    "not a URL, from the environment": ({"AWS_ENDPOINT_URL": "notaurl"}, "AWS_ENDPOINT_URL is 'notaurl', which is "
                                        "not an endpoint URL"),
    # found by a hostile pass: a token in a query string was printed
    "a query string": ({"s3_endpoint": "http://127.0.0.1:9/?pw-in-url=1"}, "config key 's3_endpoint' is a URL with "
                       "a query or fragment, which is not an endpoint URL"),
}


@pytest.mark.parametrize("case", BAD_ENDPOINTS)
def test_an_endpoint_that_is_not_one_is_refused_naming_where_it_came_from(tmp_path, store, case):
    given, message = BAD_ENDPOINTS[case]
    config = {"inputs": ["s3://refused/dir/a.txt"], "output": "out.txt",
              **{k: v for k, v in given.items() if k == "s3_endpoint"}}
    env = {**store.env, **{k: v for k, v in given.items() if k != "s3_endpoint"}}
    run = subprocess.run(snakemake_command(tmp_path, config), capture_output=True, text=True, env=env)
    assert run.returncode != 0 and "Traceback" not in run.stderr and message in run.stderr, run.stderr[-3000:]
    assert "pw-in-url" not in run.stderr + logged(tmp_path)


@pytest.mark.parametrize("setting", [{"AWS_MAX_ATTEMPTS": "abc"}, {"AWS_RETRY_MODE": "sometimes"}])
def test_aws_settings_that_do_not_parse_are_a_configuration_error(tmp_path, store, setting):
    """Found in review: botocore refused them with a traceback."""
    run = subprocess.run(snakemake_command(tmp_path, {"inputs": ["s3://settings/a.txt"], "output": "out.txt"}),
                         capture_output=True, text=True, env={**store.env, **setting})
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "the AWS settings of this environment do not parse" in run.stderr and "AWS_*" in run.stderr


def test_denied_access_is_an_error_naming_the_object_and_never_the_secret(tmp_path):
    """A server that checks credentials against its (empty) user list denies ours."""
    server = ObjectStore()
    server.start(INITIAL_NO_AUTH_ACTION_COUNT="0")
    try:
        run = run_from_store(tmp_path, {"inputs": ["s3://private/a.txt"], "output": "out.txt"}, server, check=False)
    finally:
        server.stop()
    assert run.returncode != 0 and "input 's3://private/a.txt' cannot be read from object storage" in run.stderr
    assert "AWS_ACCESS_KEY_ID" in run.stderr and SECRET not in run.stderr + logged(tmp_path)


FAULTS = {
    "the object is deleted": "input 's3://faults/a.txt' no longer exists in object storage",
    "the server stops": "input 's3://faults/a.txt' cannot be read from object storage",
    # found by a hostile pass: only the size was checked, and the run mixed the
    # old object's records with the new one's, with exit 0
    "the object is replaced by one of the same size": "input 's3://faults/a.txt' was changed or replaced while "
                                                      "the run read it",
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_between_the_plan_and_the_split_job_stops_the_run_and_a_rerun_is_byte_identical(
        tmp_path, store, fault):
    """The split job waits (a test hook) until the object is gone, replaced or
    the server has stopped: it fails naming the object, and once it is back
    the same command finishes with the bytes of a local run."""
    files = corpus(tmp_path)
    urls = []
    for name, data in files.items():
        store.put(f"faults/{name}", data)
        urls.append(f"s3://faults/{name}")
    local = {"inputs": [str(tmp_path / "local" / n) for n in files], "output": "out.txt", "memory_mb": 160,
             "chunk_mb": 1}
    run_workflow(tmp_path / "local-run", local)
    config, workdir, release = {**local, "inputs": urls}, tmp_path / "s3-run", tmp_path / "release"
    env = {**store.env, "SNAKESHUF_SLOW_JOBS": "split_chunk-0", "SNAKESHUF_RELEASE": str(release)}
    running = subprocess.Popen(snakemake_command(workdir, config), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not glob.glob(str(workdir / "scratch" / "*" / "locks" / "split_chunk-0.lock")):
        assert time.monotonic() < deadline and running.poll() is None, "the split job never started"
        time.sleep(0.1)
    if fault == "the object is deleted":
        store.client.delete_file("faults/a.txt")
    elif fault == "the server stops":
        store.stop()
    else:
        store.put("faults/a.txt", files["a.txt"].translate(bytes.maketrans(b"abc", b"xyz")))
    release.touch()
    _, stderr = running.communicate(timeout=120)
    assert running.returncode != 0 and "Traceback" not in stderr
    log = logged(workdir)
    assert FAULTS[fault] in log, log[-3000:]
    assert not (workdir / "out.txt").exists()
    if fault == "the server stops":
        store.start()  # an empty store: moto keeps its objects in memory
    for name, data in files.items():
        store.put(f"faults/{name}", data)
    run_from_store(workdir, config, store)
    assert (workdir / "out.txt").read_bytes() == (tmp_path / "local-run" / "out.txt").read_bytes()


def test_a_glob_refuses_keys_that_cannot_be_read_as_named_and_a_sheet_names_itself(tmp_path, store):
    """Found by a hostile pass: one key with an empty segment ('a//b.txt',
    which S3 allows) anywhere under a '**' glob ended the plan in a traceback;
    an object a sheet lists was said to be from config key 'inputs'."""
    import boto3

    store.put("odd-keys/x/a.txt", b"1\n2\n")
    s3 = boto3.client("s3", endpoint_url=store.env["AWS_ENDPOINT_URL"], aws_access_key_id="snakeshuf-test",
                      aws_secret_access_key=SECRET, region_name="us-east-1")
    s3.put_object(Bucket="odd-keys", Key="x//b.txt", Body=b"3\n")
    run = run_from_store(tmp_path / "glob", {"inputs": ["s3://odd-keys/**/*.txt"], "output": "out.txt"}, store,
                         check=False)
    # a second hostile pass: skipped, it was a part of the corpus left out with exit 0
    assert run.returncode != 0 and "input pattern 's3://odd-keys/**/*.txt' (config key 'inputs') matches " \
        "'s3://odd-keys/x//b.txt', whose key has an empty, '.' or '..' segment" in run.stderr, run.stderr[-2000:]
    assert not (tmp_path / "glob" / "out.txt").exists()
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("path\ns3://odd-keys/x/missing.txt\n")
    refused = run_from_store(tmp_path / "sheet", {"sample_sheet": str(sheet), "output": "out.txt"}, store, check=False)
    assert f"input 's3://odd-keys/x/missing.txt' does not exist (listed in sample sheet '{sheet}')" in refused.stderr


def test_one_workflow_reads_from_one_store(monkeypatch):
    """Found by a hostile pass: two modules with two s3_endpoint values were
    planned against the first store and run against the second."""
    from snakeshuf.errors import ConfigError
    from snakeshuf.sources import objects

    for name in (objects.CHOSEN_ENDPOINT, "AWS_ENDPOINT_URL_S3"):  # set, then unset: restored after the test
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    objects.use_endpoint("http://127.0.0.1:9")
    objects.use_endpoint("http://127.0.0.1:9")  # the same store again: fine
    with pytest.raises(ConfigError, match="another module of this workflow reads from 'http://127.0.0.1:9'"):
        objects.use_endpoint("http://127.0.0.1:10")
    objects.forget_clients()


def test_a_run_that_finds_its_output_current_reads_no_object(tmp_path, store):
    """Found by a hostile pass: every run, one with nothing to do too, read
    the start of every object twice (its codec, and the check that it holds
    no container): 2,500 small objects took 56 s to be found up to date. The
    codec is now kept for each ETag from run to run, and a run with nothing
    to do checks nothing it would not read."""
    for i in range(5):
        store.put(f"current/{i}.txt", b"%d\n" % i * 3)
    config = {"inputs": ["s3://current/*.txt"], "output": "out.txt"}
    run_from_store(tmp_path, config, store)
    before = len(store.requests())
    again = run_from_store(tmp_path, config, store)
    assert "is up to date" in again.stderr
    reads = [(method, path) for method, path in store.requests()[before:] if "?" not in path]
    assert not [r for r in reads if r[0] == "GET"], reads
    assert len(reads) <= 1, reads  # a HEAD of the pattern itself, which might be an object's name


@pytest.fixture
def in_process(store, monkeypatch):
    """This process reads the store (as a job would), having learnt nothing yet."""
    from snakeshuf.sources import objects

    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, store.env[name])
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setattr(objects, "FACTS", {})
    objects.forget_clients()
    yield objects
    objects.forget_clients()


def test_a_trailing_double_star_matches_keys_at_every_depth(store, in_process):
    """Found by a hostile pass: 's3://tree/dir/**' listed one level only, and
    the run left out the deeper objects with exit 0; a key with a '.'
    segment was skipped as hidden."""
    from snakeshuf.errors import ConfigError

    for key in ("a.txt", "dir/x.txt", "dir/sub/deep.txt", "dir/sub/.hidden/h.txt"):
        store.put(f"deep-tree/{key}", b"1\n")
    for marker in ("dir/", "dir/sub/"):  # found in review: a "folder" marker that tools write was refused
        in_process.client().put_object(Bucket="deep-tree", Key=marker, Body=b"")
    assert in_process.expand("s3://deep-tree/dir/*") == ["s3://deep-tree/dir/x.txt"]
    assert in_process.expand("s3://deep-tree/**") == [
        "s3://deep-tree/a.txt", "s3://deep-tree/dir/sub/deep.txt", "s3://deep-tree/dir/x.txt"]
    assert in_process.expand("s3://deep-tree/dir/**") == ["s3://deep-tree/dir/sub/deep.txt", "s3://deep-tree/dir/x.txt"]
    in_process.client().put_object(Bucket="deep-tree", Key="dir/./dot.txt", Body=b"2\n")  # not hidden: refused
    with pytest.raises(ConfigError, match="matches 's3://deep-tree/dir/./dot.txt', whose key has an empty, '.' or"):
        in_process.expand("s3://deep-tree/**")


def test_a_cluster_job_plans_from_what_the_main_process_learnt(tmp_path, store, in_process, monkeypatch):
    """Every cluster job parses the workflow and plans: it recalls the
    objects' sizes, ETags, codecs and glob matches the main process saved,
    rather than asking the store again (a HEAD or more per object per job),
    and so plans what the main process planned even if an object changed
    since (the split jobs check that)."""
    objects = in_process
    compressed = gzip.compress(b"3\n")
    store.put("recalled/a.txt", b"1\n2\n")
    store.put("recalled/b.txt.gz", compressed)
    main_process = plan_inputs(["s3://recalled/*.txt*"], tmp_path)
    objects.remember(str(tmp_path / "objects.json"))
    store.client.delete_file("recalled/a.txt")
    monkeypatch.setattr(objects, "FACTS", {})  # a job's process: nothing learnt yet
    objects.recall(str(tmp_path / "objects.json"))
    assert plan_inputs(["s3://recalled/*.txt*"], tmp_path) == main_process
    assert [(f.size, f.codec) for f in main_process] == [(4, None), (len(compressed), "gzip")]
    assert all(f.version for f in main_process)  # their ETags
    monkeypatch.setattr(objects, "FACTS", {})  # nothing recalled: the store is asked, and a's gone
    with pytest.raises(Exception, match="matches no object|does not exist"):
        plan_inputs(["s3://recalled/a.txt*"], tmp_path)


def plan_inputs(patterns, workdir):
    from snakeshuf.planning.plan import expand_inputs, load_inputs

    class NoOwners:
        def of(self, path, info):
            return None

    return load_inputs(expand_inputs(patterns, NoOwners()), NoOwners(), "config key 'inputs'", [0] * len(patterns))


def test_an_object_deleted_while_a_job_reads_it_is_an_error_naming_it(tmp_path, store, in_process):
    """Found by a hostile pass: the store's error in the middle of a read
    became a traceback about the run file being written, without the URL."""
    import numpy as np

    from snakeshuf.errors import InputError
    from snakeshuf.planning.plan import InputFile
    from snakeshuf.records.lines import RecordReader

    corpus_file(tmp_path / "a.txt", 1_000_000, seed=5)
    store.put("mid-read/a.txt", (tmp_path / "a.txt").read_bytes())
    url = "s3://mid-read/a.txt"
    batches = RecordReader(ord("\n"), np.empty(1 << 16, np.uint8), 1000).batches(InputFile(0, url, None), 0, 10**6)
    next(batches)
    store.client.delete_file("mid-read/a.txt")
    with pytest.raises(InputError, match=r"^input 's3://mid-read/a.txt' no longer exists in object storage "
                                         r"\(it was there when the run was planned\)"):
        for _ in batches:
            pass


@pytest.mark.parametrize("endpoint", ["http://AKIA:se/cret@host:9000", "http://AKIA:sec]ret@host",
                                      "http://AKIA:secret@host:99999", "http://AKIA:secret@host:abc", "http://:@host:9"])
def test_an_endpoint_with_credentials_is_never_shown_even_when_it_does_not_parse(endpoint):
    """Found in review: a URL that did not parse was refused by showing it, password and all."""
    from snakeshuf.errors import ConfigError
    from snakeshuf.sources.objects import check_endpoint

    with pytest.raises(ConfigError) as refused:
        check_endpoint(endpoint, "config key 's3_endpoint'")
    assert "has a user name or password in its URL" in str(refused.value) and "cret" not in str(refused.value)


@pytest.mark.parametrize("endpoint", ["http://host:9000?x=1", "http://host:9000#f", "http://host:9000/path"])
def test_an_endpoint_with_more_than_a_host_is_refused(endpoint):
    from snakeshuf.errors import ConfigError
    from snakeshuf.sources.objects import check_endpoint

    with pytest.raises(ConfigError, match="which is not an endpoint URL"):
        check_endpoint(endpoint, "AWS_ENDPOINT_URL")


def test_a_parquet_object_deleted_while_its_pages_are_walked_is_not_called_corrupt(tmp_path, store, in_process,
                                                                                     monkeypatch):
    """Found in review: the store's failure in the page walk was reported as a
    file that 'may be truncated or corrupt'."""
    import io

    from snakeshuf.errors import InputError
    from snakeshuf.records import parquet

    out = io.BytesIO()
    pq.write_table(seeded_table(1, 3, 2000), out, row_group_size=500)
    store.put("walked/t.parquet", out.getvalue())
    url = "s3://walked/t.parquet"
    meta, handle = parquet.opened(url).metadata, in_process.open_input(url)  # opened before it goes
    monkeypatch.setattr(parquet, "open_input", lambda path: handle)
    store.client.delete_file("walked/t.parquet")
    with pytest.raises(InputError, match=r"^input 's3://walked/t.parquet' (no longer exists in|cannot be read from) "
                                         r"object storage") as refused:
        parquet.row_group_costs(url, meta)
    assert "corrupt" not in str(refused.value)


def test_an_input_that_cannot_be_looked_at_is_not_said_to_be_gone(tmp_path, monkeypatch):
    """Found in review: any error of the stat after reading was 'no longer exists'."""
    from snakeshuf.errors import InputError
    from snakeshuf.planning.plan import InputFile
    from snakeshuf.sources import reading

    def denied(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(reading.os, "stat", denied)
    with pytest.raises(InputError, match="^input 'a.txt' cannot be read: Permission denied$"):
        reading.check_as_planned(InputFile(0, "a.txt", 1))


def test_an_environment_without_boto3_is_told_what_to_install(monkeypatch):
    """boto3 is a dependency; an environment that lost it (a partial conda
    env, a hand-made venv) gets a message, not an ImportError's traceback."""
    from snakeshuf.errors import ConfigError
    from snakeshuf.sources import objects

    for module in ("boto3", "botocore", "botocore.config", "botocore.exceptions"):
        monkeypatch.setitem(sys.modules, module, None)
    objects.forget_clients()
    try:
        with pytest.raises(ConfigError, match=r"s3:// URLs need boto3.*pip install boto3"):
            objects.head("s3://bucket/a.txt")
    finally:
        objects.forget_clients()

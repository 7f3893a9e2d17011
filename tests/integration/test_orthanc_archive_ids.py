"""Orthanc's ids are computed, not assigned (its DicomInstanceHasher): checked here against Debian's
Orthanc 1.10 for the PatientIDs huren meets (ASCII, Chinese in GB18030, empty, padded), then used:
a read of an instance the index names costs one GET and no lookup; an id Orthanc computed otherwise
(a PatientID with leading spaces, which huren strips) falls back to /tools/lookup."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select

from bench.orthanc import OrthancServer
from huren.services.imaging_archive import OrthancArchive, Ref, instance_ref
from huren.services.imaging_archive_orthanc import orthanc_id
from huren.store import imaging as store
from huren.store.tables import image_study as st
from huren.wire.dicom import read_header
from tests.integration.test_orthanc_archive import (
    SENDER_A,
    USERS,
    _close_archives,  # noqa: F401  (its autouse fixture closes archive()s)
    _need_orthanc,
    archive,
    dicom,
    orthanc_container,
)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    _need_orthanc()
    with OrthancServer(tmp_path_factory.mktemp("orthanc-ids"), dicomweb=False, users=USERS) as o:
        yield o


def with_patient(patient_id: str, charset: str = "GB18030") -> tuple[bytes, pydicom.Dataset]:
    _data, ds = dicom()
    ds.SpecificCharacterSet = charset
    ds.PatientID = patient_id
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue(), ds


def test_formula() -> None:
    # SHA-1 of the identifiers joined by "|", as 5 groups of 8 hex digits
    h = hashlib.sha1(b"P1|1.2.3").hexdigest()
    assert orthanc_id("P1", "1.2.3") == "-".join(h[i : i + 8] for i in range(0, 40, 8))
    assert orthanc_id("") == "da39a3ee-5e6b4b0d-3255bfef-95601890-afd80709"  # sha1 of nothing: Orthanc's "no PatientID" patient


@pytest.mark.parametrize("patient_id", ["P-ORTHANC", "张三-0001", "", "ODD", "EVEN"])
def test_computed_ids_are_orthancs(orthanc: OrthancServer, patient_id: str) -> None:
    data, _ds = with_patient(patient_id)  # "ODD": pydicom pads it with a space, which Orthanc strips
    rec = read_header(io.BytesIO(data), len(data))  # the values huren's index keeps
    answer = orthanc.upload(data)
    p, st, se, sop = rec.patient_id, rec.study_uid, rec.series_uid, rec.sop_uid
    assert answer["ID"] == orthanc_id(p, st, se, sop)
    assert answer["ParentSeries"] == orthanc_id(p, st, se)
    assert answer["ParentStudy"] == orthanc_id(p, st)
    assert answer["ParentPatient"] == orthanc_id(p)
    ref = Ref(hashlib.sha256(data).hexdigest(), sop, study_uid=st, series_uid=se, patient_id=p)
    assert OrthancArchive.computed_id(ref) == answer["ID"]
    assert OrthancArchive.computed_id(Ref(ref.sha256, sop, study_uid=st, series_uid=se)) is None  # PatientID not known


def test_a_read_is_one_get_no_lookup(orthanc: OrthancServer) -> None:
    data, ds = with_patient("张三-0002")
    put = archive(orthanc).put(io.BytesIO(data))
    fresh = archive(orthanc)  # another process: nothing remembered
    ref = Ref(put.sha256, ds.SOPInstanceUID, study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID, patient_id="张三-0002")
    chunks = fresh.open(ref)
    assert chunks is not None and b"".join(chunks) == data
    assert fresh.requests == {"file": 1}
    assert fresh.exists(ref) and fresh.requests == {"file": 1}  # confirmed by the read: remembered
    other = archive(orthanc)
    assert other.exists(ref) and other.requests == {"instance": 1}  # one small GET, no lookup
    # what the index knows of an instance it does not hold in Orthanc: one GET, then the lookup, then None
    gone = Ref("0" * 64, generate_uid(), study_uid=generate_uid(), series_uid=generate_uid(), patient_id="X")
    assert other.open(gone) is None and other.requests == {"instance": 1, "file": 1, "lookup": 1}


def test_leading_spaces_fall_back_to_the_lookup(orthanc: OrthancServer) -> None:
    data, _ds = with_patient("  P-LEADING")  # Orthanc keeps the leading spaces; huren's index strips them
    rec = read_header(io.BytesIO(data), len(data))
    assert rec.patient_id == "P-LEADING"
    put = archive(orthanc).put(io.BytesIO(data))
    ref = Ref(put.sha256, rec.sop_uid, study_uid=rec.study_uid, series_uid=rec.series_uid, patient_id=rec.patient_id)
    assert OrthancArchive.computed_id(ref) != put.archive_id
    a = archive(orthanc)
    chunks = a.open(ref)
    assert chunks is not None and b"".join(chunks) == data
    assert a.requests == {"file": 2, "lookup": 1}  # the computed id (404), the lookup, the file
    chunks = a.open(ref)  # remembered now: one GET
    assert chunks is not None and b"".join(chunks) == data and a.requests["file"] == 3 and a.requests["lookup"] == 1
    b = archive(orthanc)
    assert b.exists(ref) and b.requests == {"instance": 1, "lookup": 1}


def test_an_unread_stream_gives_its_connection_back(orthanc: OrthancServer) -> None:
    data, _ds = with_patient("P-UNREAD")
    put = archive(orthanc).put(io.BytesIO(data))
    a = OrthancArchive(orthanc.http_url, username="huren", password=USERS["huren"], timeout=5)
    try:
        ref = Ref(put.sha256, archive_id=put.archive_id)
        for _ in range(50):  # more than the pool's 32 connections: each dropped stream closed its response
            assert a.open(ref) is not None
        chunks = a.open(ref)
        assert chunks is not None and b"".join(chunks) == data
    finally:
        a.close()


def test_index_rows_name_orthancs_ids(database_url: str, tmp_path: Path, orthanc: OrthancServer) -> None:
    """What the read path hands the archive (instance_ref of an index row and its opened study's
    PatientID) is the id Orthanc gave the instance."""
    c = orthanc_container(database_url, tmp_path, orthanc)
    try:
        data, ds = with_patient("李四-9")
        got = c.imaging.store_instance(SENDER_A, io.BytesIO(data))
        with c.db.read() as conn:
            study = store.opened(conn, store.study_row(conn, got.study_uid) or {})
            [row] = store.instances(conn, int(study["id"]))
            # the sealed PatientID selected with the instance (org_code and study_uid: its context) opens alone
            raw = conn.execute(select(st.c.patient_id, st.c.org_code, st.c.study_uid).where(st.c.study_uid == got.study_uid)).mappings().one()
            assert store.opened(conn, dict(raw))["patient_id"] == "李四-9"
        ref = instance_ref(row, study.get("patient_id") or "")
        [hit] = orthanc.get_json(f"/studies/{orthanc_id('李四-9', ds.StudyInstanceUID)}/instances")
        assert OrthancArchive.computed_id(ref) == hit["ID"]
        fresh = archive(orthanc)
        chunks = fresh.open(ref)
        assert chunks is not None and b"".join(chunks) == data and fresh.requests == {"file": 1}
    finally:
        c.close()

"""YB-4.5 deletion notices told to the archive: Orthanc marks the study withdrawn (user metadata
HurenWithdrawn, by name when Orthanc's configuration declares it, else by its number), keeps the
files, and the mark comes off again (``shown``); the local archive has no one to tell."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from bench.orthanc import OrthancServer
from huren.context import Principal
from huren.errors import PlatformUnavailable
from huren.services.imaging_archive import LocalArchive, StudyRef
from huren.services.imaging_archive_orthanc import WITHDRAWN, WITHDRAWN_INDEX, orthanc_id
from huren.store import imaging as store
from huren.store.blobs import BlobStore
from tests.conftest import ORG_A
from tests.integration.test_orthanc_archive import (
    SENDER_A,
    USERS,
    _close_archives,  # noqa: F401  (its autouse fixture closes archive()s)
    _need_orthanc,
    archive,
    dicom,
    held,
    orthanc_container,
)

NOTE = "影像删除通知：机构 457759922，检查号 ACC-1，2026-12-01 10:00:00；已在互认平台隐藏，文件保留"


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    _need_orthanc()
    with OrthancServer(tmp_path_factory.mktemp("orthanc-undeclared"), dicomweb=False, users=USERS) as o:
        yield o


@pytest.fixture(scope="module")
def declared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    _need_orthanc()
    extra = {"UserMetadata": {WITHDRAWN: WITHDRAWN_INDEX}}
    with OrthancServer(tmp_path_factory.mktemp("orthanc-declared"), dicomweb=False, users=USERS, extra=extra) as o:
        yield o


def metadata(o: OrthancServer, study_id: str) -> dict[str, str]:
    found: dict[str, str] = o.get_json(f"/studies/{study_id}/metadata?expand")
    return {k: v for k, v in found.items() if k != "LastUpdate"}


@pytest.mark.parametrize("kind", ["undeclared", "declared"])
def test_hidden_marks_the_study_and_shown_removes_it(kind: str, request: pytest.FixtureRequest) -> None:
    o: OrthancServer = request.getfixturevalue("orthanc" if kind == "undeclared" else "declared")
    a = archive(o)
    data, ds = dicom()
    put = a.put(io.BytesIO(data))
    sid = orthanc_id(str(ds.PatientID), ds.StudyInstanceUID)
    study = StudyRef(ds.StudyInstanceUID, str(ds.PatientID))
    fresh = archive(o)
    assert fresh.hidden([study], NOTE) == 1
    assert fresh.requests == {"study": 1, "mark": 1 if kind == "declared" else 2}  # undeclared: the name, then the number
    key = WITHDRAWN if kind == "declared" else str(WITHDRAWN_INDEX)
    assert metadata(o, sid) == {key: NOTE}  # what Orthanc's REST users (and plugins) see
    assert fresh.withdrawn(sid) == NOTE
    assert fresh.hidden([study], NOTE) == 1 and fresh.requests["mark"] == (1 if kind == "declared" else 2) + 1  # remembered
    assert put.archive_id and held(o, put.archive_id) == data  # marked, not erased
    assert fresh.shown([study]) == 1
    assert metadata(o, sid) == {} and fresh.withdrawn(sid) is None
    assert fresh.shown([study]) == 0


def test_studies_not_in_orthanc_or_without_patient_id(orthanc: OrthancServer) -> None:
    a = archive(orthanc)
    assert a.hidden([StudyRef(generate_uid(), "P-X"), StudyRef(generate_uid())], NOTE) == 0
    data, ds = dicom()
    a.put(io.BytesIO(data))
    other_pid = StudyRef(ds.StudyInstanceUID, "not-its-patient-id")  # the computed id misses: found by Study UID
    fresh = archive(orthanc)
    assert fresh.hidden([other_pid], NOTE) == 1 and fresh.requests["lookup"] == 1
    assert fresh.withdrawn(orthanc_id(str(ds.PatientID), ds.StudyInstanceUID)) == NOTE


def test_orthanc_down_is_unavailable(tmp_path: Path) -> None:
    _need_orthanc()
    o = OrthancServer(tmp_path / "o", dicomweb=False, users=USERS).start()
    a = archive(o)
    data, ds = dicom()
    a.put(io.BytesIO(data))
    o.stop()
    with pytest.raises(PlatformUnavailable) as e:
        a.hidden([StudyRef(ds.StudyInstanceUID, str(ds.PatientID))], NOTE)
    assert "Orthanc" in e.value.message and e.value.status == 503


def test_local_archive_has_no_one_to_tell(tmp_path: Path) -> None:
    a = LocalArchive(BlobStore(tmp_path / "blobs"))
    assert a.hidden([StudyRef(generate_uid(), "P")], NOTE) == 0 and a.shown([StudyRef(generate_uid(), "P")]) == 0


def test_the_notice_names_the_studies_orthanc_holds(database_url: str, tmp_path: Path, orthanc: OrthancServer) -> None:
    """The StudyRefs delete_notice hands the archive (its studies_by_accession rows, opened: their
    PatientID) address Orthanc's study directly; after the notice huren hides it, Orthanc marks it."""
    c = orthanc_container(database_url, tmp_path, orthanc)
    try:
        _data, ds = dicom()
        ds.AccessionNumber = "ACC-W1"
        buf = io.BytesIO()
        ds.save_as(buf)
        got = c.imaging.store_instance(SENDER_A, io.BytesIO(buf.getvalue()))
        c.imaging.commit_study(SENDER_A, got.study_uid)
        with c.db.read() as conn:
            studies = store.studies_by_accession(conn, ORG_A[0], "ACC-W1")
        refs = [StudyRef(str(s["study_uid"]), s.get("patient_id") or "") for s in studies]  # the call delete_notice makes
        his = Principal(ORG_A[0], "his", "hospital")
        assert c.imaging.delete_notice(his, hospitalId=ORG_A[0], accessionNo="ACC-W1") == 1
        fresh = archive(orthanc)
        assert fresh.hidden(refs, NOTE) == 1 and fresh.requests.get("lookup") is None
        assert fresh.withdrawn(orthanc_id(str(ds.PatientID), got.study_uid)) == NOTE
    finally:
        c.close()

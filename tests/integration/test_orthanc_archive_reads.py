"""huren's reads and deletion notices with Orthanc as the archive, end to end (issue 12): a read
names the Orthanc instance from the index (one GET, no lookup, in a process that remembers
nothing); a YB-4.5 notice marks the study withdrawn in Orthanc, and while Orthanc is down it is
refused (503) with nothing hidden; ``huren imaging adopt-orthanc`` is a command of ``huren``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from bench.orthanc import OrthancServer
from huren.cli import parser
from huren.context import Principal
from huren.errors import PlatformUnavailable
from huren.services.imaging_archive import OrthancArchive
from huren.services.imaging_archive_orthanc import orthanc_id
from tests.conftest import ORG_A
from tests.integration.test_orthanc_archive import (
    DOCTOR,
    SENDER_A,
    USERS,
    _need_orthanc,
    _restart,
    dicom,
    orthanc_container,
)
from tests.integration.test_orthanc_archive import orthanc as orthanc  # the module-scoped Orthanc fixture

HIS = Principal(ORG_A[0], "his", "hospital")


def test_reads_cost_one_get_each(database_url: str, tmp_path: Path, orthanc: OrthancServer) -> None:
    c = orthanc_container(database_url, tmp_path, orthanc)
    try:
        _, ds = dicom()
        ds.PatientID = "张三-READS"
        files = []
        for _ in range(3):
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            buf = io.BytesIO()
            ds.save_as(buf)
            files.append(buf.getvalue())
            got = c.imaging.store_instance(SENDER_A, io.BytesIO(files[-1]))
        c.imaging.commit_study(SENDER_A, got.study_uid)
    finally:
        c.close()
    fresh = orthanc_container(database_url, tmp_path, orthanc)  # another process: nothing remembered
    try:
        archive = fresh.imaging.archive
        assert isinstance(archive, OrthancArchive)
        got_files = fresh.imaging.instances_of(DOCTOR, got.study_uid)
        assert sorted(b"".join(f.chunks()) for f in got_files) == sorted(files)
        assert archive.requests == {"file": 3}
        one = fresh.imaging.instance(DOCTOR, got.study_uid, got.series_uid, got.sop_uid)
        assert b"".join(one.chunks()) == files[-1]
        assert archive.requests == {"file": 4}  # confirmed by the study's read: no second request
    finally:
        fresh.close()


def test_deletion_notice_marks_orthanc_and_waits_for_it(database_url: str, tmp_path: Path) -> None:
    _need_orthanc()
    o = OrthancServer(tmp_path / "o", dicomweb=False, users=USERS).start()
    c = orthanc_container(database_url, tmp_path, o)
    try:
        _, ds = dicom()
        ds.AccessionNumber = "ACC-E2E"
        buf = io.BytesIO()
        ds.save_as(buf)
        got = c.imaging.store_instance(SENDER_A, io.BytesIO(buf.getvalue()))
        c.imaging.commit_study(SENDER_A, got.study_uid)
        o.stop()
        with pytest.raises(PlatformUnavailable):
            c.imaging.delete_notice(HIS, hospitalId=ORG_A[0], accessionNo="ACC-E2E")
        assert c.imaging.find_series(DOCTOR, got.study_uid)  # nothing hidden
        _restart(o)
        assert c.imaging.delete_notice(HIS, hospitalId=ORG_A[0], accessionNo="ACC-E2E") == 1
        archive = c.imaging.archive
        assert isinstance(archive, OrthancArchive)
        mark = archive.withdrawn(orthanc_id(str(ds.PatientID), got.study_uid))
        assert mark is not None and "ACC-E2E" in mark and ORG_A[0] in mark
    finally:
        c.close()
        o.stop()


def test_the_command_is_registered() -> None:
    args = parser().parse_args(["imaging", "adopt-orthanc", "--org", ORG_A[0], "--since", "40"])
    assert (args.org, args.since, args.page) == (ORG_A[0], 40, 20) and callable(args.func)

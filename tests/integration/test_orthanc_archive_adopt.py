"""``huren imaging adopt-orthanc``: studies an Orthanc held before huren used it as its archive are
indexed for one institution (huren.services.imaging_archive_adopt), against Debian's Orthanc 1.10:
paged, each file streamed once, the ingest's own rules and refusals (named, in Chinese), deleted /
withdrawn studies never shown again, idempotent, resumable, Orthanc down a clear error."""

from __future__ import annotations

import argparse
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from bench.orthanc import OrthancServer
from huren.bootstrap import build
from huren.context import Clock, Principal
from huren.errors import NotConfigured, NotFound, PlatformUnavailable
from huren.services.container import Container
from huren.services.imaging_archive import StudyRef
from huren.services.imaging_archive_adopt import OrthancAdoption
from huren.settings import Settings
from huren.store import imaging as store
from tests.conftest import HASH_N, ORG_A, ORG_B, SECRET, add_fixture_orgs
from tests.integration.test_orthanc_archive import (
    DOCTOR,
    SENDER_B,
    USERS,
    _close_archives,  # noqa: F401  (its autouse fixture closes archive()s)
    _need_orthanc,
    dicom,
)

MAX = 200_000  # HUREN_MAX_INSTANCE_BYTES of these tests: CT_small is ~39 KB, a 512-row image ~0.5 MB


def settings(database_url: str, tmp_path: Path, o: OrthancServer, archive: str = "orthanc") -> Settings:
    user, password = next(iter(USERS.items()))
    return Settings(
        data_dir=tmp_path / "data", database_url=database_url, secret_key=SECRET, password_hash_n=HASH_N,
        imaging_archive=archive, orthanc_url=o.http_url, orthanc_username=user, orthanc_password=password,
        orthanc_timeout_seconds=5, max_instance_bytes=MAX,
    )


def container(database_url: str, tmp_path: Path, o: OrthancServer, archive: str = "orthanc") -> Container:
    c = build(settings(database_url, tmp_path, o, archive), clock=Clock())
    try:
        c.directory.get_org(ORG_A[0])
    except NotFound:
        add_fixture_orgs(c)
    return c


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[OrthancServer]:
    _need_orthanc()
    with OrthancServer(tmp_path / "orthanc", dicomweb=False, users=USERS) as o:
        yield o


def encoded(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def instance(study: str, series: str, *, patient: str = "王五-77", rows: int | None = None) -> bytes:
    _, ds = dicom(rows=rows)
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient, study, series
    return encoded(ds)


def test_adopt_walks_indexes_refuses_and_is_idempotent(database_url: str, tmp_path: Path, orthanc: OrthancServer) -> None:
    s1, s2, foreign, bad, big, deleted, marked = (generate_uid() for _ in range(7))
    pre: dict[str, bytes] = {}
    for study, series, n in ((s1, generate_uid(), 2), (s1, generate_uid(), 1), (s2, generate_uid(), 1)):
        for _ in range(n):
            data = instance(study, series)
            pre[orthanc.upload(data)["ID"]] = data
    _, bds = dicom()
    bds.StudyInstanceUID = bad + ".x1"  # Orthanc keeps any text; the index refuses a malformed UID
    orthanc.upload(encoded(bds))
    orthanc.upload(instance(big, generate_uid(), rows=512))  # over HUREN_MAX_INSTANCE_BYTES
    c = container(database_url, tmp_path, orthanc)
    try:
        # a study huren holds for another institution, with one more instance put into Orthanc directly
        got = c.imaging.store_instance(SENDER_B, io.BytesIO(instance(foreign, generate_uid())))
        orthanc.upload(instance(foreign, got.series_uid))
        # a study huren received and then hid (YB-4.5), and one Orthanc has marked withdrawn
        _, dds = dicom()
        dds.StudyInstanceUID, dds.AccessionNumber = deleted, "ACC-DEL"
        c.imaging.store_instance(SENDER_B, io.BytesIO(encoded(dds)))
        assert c.imaging.delete_notice(Principal(ORG_B[0], "lis", "hospital"), hospitalId=ORG_B[0], accessionNo="ACC-DEL") == 1
        mds = pydicom.dcmread(io.BytesIO(instance(marked, generate_uid())))
        orthanc.upload(encoded(mds))
        c.imaging.archive.hidden([StudyRef(marked, str(mds.PatientID))], "已撤回")

        lines: list[str] = []
        report = OrthancAdoption(c, ORG_A[0], page=2).run(progress=lambda r: lines.append(r.line()))
        assert (report.total, report.studies, report.since) == (7, 7, 7)
        assert (report.adopted, report.held, report.withdrawn) == (4, 1, 2)
        why = {r.study_uid: r.message for r in report.refused}
        assert set(why) == {foreign, bds.StudyInstanceUID, big}
        assert "已由其他机构保存" in why[foreign] and "UID" in why[bds.StudyInstanceUID] and "过大" in why[big]
        assert len(lines) == 4 and lines[-1].startswith("迁入进度：检查 7/7") and "--since 7" in lines[-1]

        # adopted: queryable for the doctor, complete, and read byte-exact from Orthanc
        for study, n in ((s1, 3), (s2, 1)):
            files = c.imaging.instances_of(DOCTOR, study)
            assert len(files) == n
            assert {hashlib.sha256(b"".join(f.chunks())).hexdigest() for f in files} == {f.sha256 for f in files}
            assert {f.sha256 for f in files} <= {hashlib.sha256(d).hexdigest() for d in pre.values()}
            [row] = c.imaging.find_studies(DOCTOR, {"StudyInstanceUID": study})
            assert row["00100020"]["Value"] == ["王五-77"]
        with c.db.read() as conn:
            assert (store.study_row(conn, s1) or {})["state"] == "complete"
            assert (store.study_row(conn, s1) or {})["org_code"] == ORG_A[0]
            assert store.study_row(conn, marked) is None
            assert (store.study_row(conn, deleted) or {})["deleted_at"] is not None  # still hidden
        with pytest.raises(NotFound):
            c.imaging.find_series(DOCTOR, deleted)
        assert len(orthanc.get_json("/instances")) == 10  # nothing removed from Orthanc, refused ones included

        # again: nothing new, nothing downloaded but the refused
        again = OrthancAdoption(c, ORG_A[0], page=3).run()
        assert (again.adopted, again.held, again.withdrawn, len(again.refused)) == (0, 5, 2, 3)
        # resumed: only the studies from the offset on
        tail = OrthancAdoption(c, ORG_A[0]).run(since=5)
        assert (tail.studies, tail.since) == (2, 7)
    finally:
        c.close()


def test_adopt_needs_orthanc_and_a_known_institution(database_url: str, tmp_path: Path, orthanc: OrthancServer) -> None:
    local = container(database_url, tmp_path / "local", orthanc, archive="local")
    try:
        with pytest.raises(NotConfigured) as e:
            OrthancAdoption(local, ORG_A[0])
        assert "HUREN_IMAGING_ARCHIVE=orthanc" in e.value.message
    finally:
        local.close()
    c = container(database_url, tmp_path, orthanc)
    try:
        with pytest.raises(NotFound):
            OrthancAdoption(c, "999999999")
    finally:
        c.close()


def test_orthanc_down_stops_the_run(database_url: str, tmp_path: Path) -> None:
    _need_orthanc()
    o = OrthancServer(tmp_path / "o", dicomweb=False, users=USERS).start()
    c = container(database_url, tmp_path, o)
    try:
        o.upload(instance(generate_uid(), generate_uid()))
        run = OrthancAdoption(c, ORG_A[0])
        o.stop()
        with pytest.raises(PlatformUnavailable) as e:
            run.run()
        assert "Orthanc" in e.value.message and "暂不可用" in e.value.message
    finally:
        c.close()
        o.stop()


def test_the_command(database_url: str, tmp_path: Path, orthanc: OrthancServer, monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> None:
    from huren.cli import imaging_adopt

    study = generate_uid()
    orthanc.upload(instance(study, generate_uid()))
    s = settings(database_url, tmp_path, orthanc)
    container(database_url, tmp_path, orthanc).close()  # the fixture institutions
    env = {
        "HUREN_DATA_DIR": str(s.data_dir), "HUREN_DATABASE_URL": database_url, "HUREN_SECRET_KEY": SECRET,
        "HUREN_PASSWORD_HASH_N": str(HASH_N), "HUREN_IMAGING_ARCHIVE": "orthanc", "HUREN_ORTHANC_URL": orthanc.http_url,
        "HUREN_ORTHANC_USERNAME": "huren", "HUREN_ORTHANC_PASSWORD": USERS["huren"], "HUREN_MAX_INSTANCE_BYTES": str(MAX),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    ap = argparse.ArgumentParser(prog="huren")
    imaging_adopt.add(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(["imaging", "adopt-orthanc", "--org", ORG_A[0]])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "迁入进度：检查 1/1；新收录实例 1" in out and out.strip().splitlines()[-1].startswith("迁入完成：")
    assert args.func(args) == 0
    assert "新收录实例 0，已在索引中 1" in capsys.readouterr().out

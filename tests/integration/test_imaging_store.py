"""The image archive (huren.services.imaging) on SQLite and PostgreSQL: store → find → retrieve
byte-exact, refusals with nothing kept, the access policy, commit, duplicates, sealing (issue 12)."""

from __future__ import annotations

import hashlib
import io
import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from huren import cli
from huren.context import Principal
from huren.crypto.aead import HEADER_LEN, TAG_LEN, FieldCipher
from huren.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge
from huren.services.container import Container
from huren.services.imaging import KeyGrant, Sender
from huren.store import sealing
from huren.store.blobs import STREAM_HEADER_LEN, BlobStore
from huren.store.tables import access_log, image_instance, image_study
from tests.conftest import ORG_A, ORG_B, SUPERVISOR

A = Sender(ORG_A[0], "dimse:TEST@127.0.0.1", "dimse")
B = Sender(ORG_B[0], "dimse:OTHER@127.0.0.1", "dimse")
DOC_B = Principal(ORG_B[0], "doc", "doctor")
HIS_A = Principal(ORG_A[0], "his", "hospital")
ENVELOPE_LEN = HEADER_LEN + 32 + TAG_LEN  # the wrapped file key of a streamed blob


def make(tmp: Path, *, study: str | None = None, name: str = "张三", pid: str = "P001", base: str = "CT_small.dcm",
         charset: str = "GB18030", series: str | None = None, accession: str = "ACC1", number: int = 1) -> tuple[Path, pydicom.Dataset]:
    ds = pydicom.dcmread(str(get_testdata_file(base)))
    ds.SpecificCharacterSet = charset
    ds.PatientName, ds.PatientID, ds.AccessionNumber, ds.PatientBirthDate = name, pid, accession, "19800101"
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = series or generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = number
    path = tmp / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path)
    return path, ds


def n_instances(c: Container) -> int:
    with c.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(image_instance)).scalar_one())


def test_store_find_retrieve_byte_exact(container: Container, tmp_path: Path) -> None:
    img = container.imaging
    p1, ds = make(tmp_path)
    p2, _ = make(tmp_path, study=ds.StudyInstanceUID, series=ds.SeriesInstanceUID, number=2)
    p3, _ = make(tmp_path, study=ds.StudyInstanceUID, base="MR_small.dcm", charset="ISO_IR 192")
    got = [img.store_instance(A, p) for p in (p1, p2, p3)]
    assert got[0].sha256 == hashlib.sha256(p1.read_bytes()).hexdigest() and not got[0].duplicate
    [study] = img.find_studies(DOC_B, {"PatientID": "P001"})
    assert study["0020000D"]["Value"] == [ds.StudyInstanceUID]
    assert study["00100010"]["Value"] == [{"Alphabetic": "张三"}]
    assert study["00201206"]["Value"] == [2] and study["00201208"]["Value"] == [3]
    assert study["00080061"]["Value"] == ["CT", "MR"]
    assert img.find_studies(DOC_B, {"PatientName": "张*"}) == [study]
    assert img.find_studies(DOC_B, {"PatientName": "张三"}) == [study]
    assert img.find_studies(DOC_B, {"PatientName": "李*"}) == []
    assert img.find_studies(DOC_B, {"PatientBirthDate": "19800101"}) == [study]
    assert img.find_studies(DOC_B, {"PatientBirthDate": "19900101-", "PatientName": "张*"}) == []
    assert img.find_studies(DOC_B, {"PatientID": "P002"}) == []
    assert len(img.find_studies(DOC_B, {"StudyDate": "20000101-20991231", "ModalitiesInStudy": "MR"})) == (
        1 if ds.StudyDate >= "20000101" else 0
    )
    assert img.find_studies(DOC_B, {"AccessionNumber": "ACC*"}) == [study]
    series = img.find_series(DOC_B, ds.StudyInstanceUID, {})
    assert sorted(s["00080060"]["Value"][0] for s in series) == ["CT", "MR"]
    insts = img.find_instances(DOC_B, ds.StudyInstanceUID, ds.SeriesInstanceUID, {})
    assert [i["00200013"]["Value"] for i in insts] == [[1], [2]]
    f = img.instance(DOC_B, ds.StudyInstanceUID, None, ds.SOPInstanceUID)
    assert b"".join(f.chunks()) == p1.read_bytes() and f.size == p1.stat().st_size
    files = img.instances_of(DOC_B, ds.StudyInstanceUID)
    assert sorted(b"".join(x.chunks()) for x in files) == sorted(p.read_bytes() for p in (p1, p2, p3))
    meta = json.loads(img.metadata(DOC_B, ds.StudyInstanceUID, ds.SeriesInstanceUID))
    assert len(meta) == 2 and meta[0]["00100010"]["Value"] == [{"Alphabetic": "张三"}]
    assert meta[0]["7FE00010"] == {"vr": "OW"} and meta[0]["00080005"]["Value"] == ["ISO_IR 192"]
    [pat] = img.find_patients(DOC_B, {"PatientID": "P001"})
    assert pat["00201200"]["Value"] == [1]


def test_refusals_keep_nothing(container: Container, tmp_path: Path) -> None:
    img = container.imaging
    p, ds = make(tmp_path)
    data = p.read_bytes()
    for bad, rule in ((data[:5000], "dicom"), (b"\0" * 128 + b"DICX" + data[132:], "dicom")):
        with pytest.raises(InvalidInput) as exc:
            img.store_instance(A, io.BytesIO(bad))
        assert exc.value.problems[0].rule == rule
    img.max_instance_bytes = 1000
    with pytest.raises(TooLarge):
        img.store_instance(A, p)
    img.max_instance_bytes = 10**9
    img.store_instance(A, p)
    q, _ = make(tmp_path, study=ds.StudyInstanceUID)
    with pytest.raises(Forbidden) as forb:
        img.store_instance(B, q)  # a study held for A, pushed by B
    assert forb.value.problems[0].rule == "ownership"
    assert n_instances(container) == 1
    assert len(list(container.blobs.digests())) == 1  # the refused copy was dropped


def test_readers_outside_the_policy_see_nothing(container: Container, tmp_path: Path) -> None:
    img = container.imaging
    p, ds = make(tmp_path)
    other, ds2 = make(tmp_path, pid="P9")
    img.store_instance(A, p)
    img.store_instance(A, other)
    grant = KeyGrant(1, "viewer", ds2.StudyInstanceUID, ORG_B[0], "x", datetime.now() + timedelta(hours=1))
    with pytest.raises(NotFound):
        img.instance(grant, ds.StudyInstanceUID, None, ds.SOPInstanceUID)
    with pytest.raises(NotFound):
        img.metadata(grant, ds.StudyInstanceUID)
    assert [s["00100020"]["Value"] for s in img.find_studies(grant, {})] == [["P9"]]
    container.directory.add_org("652301001", "昌吉州人民医院", "652301", "3甲", user="sup", password="password-x", role="supervisor")
    far = Principal("652301001", "sup", "supervisor")
    assert img.find_studies(far, {}) == []
    with pytest.raises(NotFound):
        img.instance(far, ds.StudyInstanceUID, None, ds.SOPInstanceUID)
    near = Principal(SUPERVISOR[0], "admin", "supervisor")
    assert len(img.find_studies(near, {})) == 2
    with pytest.raises(InvalidInput) as exc:
        img.instance(DOC_B, "1.2.x", None, ds.SOPInstanceUID)
    assert exc.value.problems[0].rule == "uid"


def test_commit_duplicates_and_conflicts(container: Container, tmp_path: Path) -> None:
    img = container.imaging
    p1, ds = make(tmp_path)
    p2, ds2 = make(tmp_path, study=ds.StudyInstanceUID)
    s1 = img.store_instance(A, p1)
    assert img.store_instance(A, p1).duplicate and n_instances(container) == 1
    r = img.commit_study(A, ds.StudyInstanceUID, [(ds.SOPInstanceUID, s1.sha256), (ds2.SOPInstanceUID, None)])
    assert r.committed == [ds.SOPInstanceUID] and r.failed == [(ds2.SOPInstanceUID, "missing")] and r.state == "receiving"
    img.store_instance(A, p2)
    r = img.commit_study(A, ds.StudyInstanceUID, [(ds.SOPInstanceUID, "0" * 64), (ds2.SOPInstanceUID, None)])
    assert r.failed == [(ds.SOPInstanceUID, "sha256")]
    r = img.commit_study(A, ds.StudyInstanceUID, [(ds.SOPInstanceUID, s1.sha256), (ds2.SOPInstanceUID, None)])
    assert r.failed == [] and r.state == "complete" and img.study_state(HIS_A, ds.StudyInstanceUID) == "complete"
    changed = pydicom.dcmread(p1)
    changed.StudyDescription = "changed"
    changed.save_as(tmp_path / "changed.dcm")
    with pytest.raises(Conflict):
        img.store_instance(A, tmp_path / "changed.dcm")
    assert img.store_instance(A, p1).duplicate
    p3, _ = make(tmp_path, study=ds.StudyInstanceUID)
    img.store_instance(A, p3)
    assert img.study_state(HIS_A, ds.StudyInstanceUID) == "receiving"
    [res] = img.commit_instances(A, [(ds.SOPClassUID, ds.SOPInstanceUID)])
    assert res.committed == [ds.SOPInstanceUID] and res.state == "complete"
    res2 = img.commit_instances(B, [(ds.SOPClassUID, ds.SOPInstanceUID)])
    assert res2[-1].failed == [(ds.SOPInstanceUID, "missing")]


def test_sync_studies_makes_a_push_durable_and_leaves_it_receiving(
    container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    img = container.imaging
    p1, ds = make(tmp_path)
    p2, _ = make(tmp_path, study=ds.StudyInstanceUID, number=2)
    p3, other = make(tmp_path, pid="P002")
    digests = {img.store_instance(A, p).sha256 for p in (p1, p2)}
    img.store_instance(B, p3)
    with container.db.read() as conn:
        before = conn.execute(select(image_study.c.updated_at).where(image_study.c.study_uid == ds.StudyInstanceUID)).scalar_one()
    synced: list[set[str]] = []
    real_sync = container.blobs.sync
    monkeypatch.setattr(container.blobs, "sync", lambda ds_: (synced.append(set(ds_)), real_sync(ds_))[1])
    later = container.clock.now() + timedelta(minutes=1)
    monkeypatch.setattr(container.clock, "now", lambda: later)
    # another institution's study in the list is left alone; the sender's own is synced
    assert img.sync_studies(A, [ds.StudyInstanceUID, other.StudyInstanceUID, ""]) == 2
    assert synced == [digests]
    assert img.study_state(HIS_A, ds.StudyInstanceUID) == "receiving"
    with container.db.read() as conn:
        after = conn.execute(select(image_study.c.updated_at).where(image_study.c.study_uid == ds.StudyInstanceUID)).scalar_one()
    assert after > before  # a real write: the commit that carries it is fsynced
    assert img.sync_studies(A, [other.StudyInstanceUID]) == 0 and img.sync_studies(A, []) == 0
    assert synced == [digests]  # nothing of B's was touched


def test_patient_identity_is_sealed_and_reads_are_logged_once(container: Container, tmp_path: Path) -> None:
    img = container.imaging
    p, ds = make(tmp_path, name="欧阳娜娜", pid="ZY123456")
    img.store_instance(A, p)
    with container.db.read() as conn:
        row = conn.execute(select(image_study)).mappings().one()
        meta = conn.execute(select(image_instance.c.metadata)).scalar_one()
    for col in ("patient_name", "patient_id", "patient_birth_date", "patient_json"):
        assert str(row[col]).startswith("enc1:"), col
    assert "欧阳" not in str(dict(row)) and "ZY123456" not in str(dict(row)) and "欧阳" not in meta
    for _ in range(5):
        img.instance(DOC_B, ds.StudyInstanceUID, None, ds.SOPInstanceUID)
        img.metadata(DOC_B, ds.StudyInstanceUID)
    with container.db.read() as conn:
        acts = [r.action for r in conn.execute(select(access_log.c.action).where(access_log.c.action.like("image.%")))]
    assert sorted(acts) == ["image.metadata", "image.retrieve"]


def test_rotate_data_covers_studies_and_streamed_blobs(
    container: Container, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "umask", lambda mask: 0o022)  # cli.main sets 077 for the process
    img = container.imaging
    p, ds = make(tmp_path, name="欧阳娜娜")
    stored = img.store_instance(A, p)
    img.delete_notice(HIS_A, hospitalId=ORG_A[0], accessionNo="none", patientName="某人")
    argv = ["keys", "rotate-data", "--data-dir", str(container.settings.data_dir), "--database-url", container.settings.db_url]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "影像检查共 1 行：重新加密 1" in out and "影像删除通知共 1 行：重新加密 1" in out, out
    assert "文件（报告PDF、被拒提交原文与影像文件）共 1 个：重新加密 1" in out, out
    fields = container.keys.reload_fields()
    head = (container.settings.blob_dir / stored.sha256[:2] / stored.sha256[2:4] / stored.sha256).read_bytes()[:STREAM_HEADER_LEN]
    assert FieldCipher.header(head[STREAM_HEADER_LEN - ENVELOPE_LEN :])[2] == fields.active
    with container.db.read() as conn:
        row = conn.execute(select(image_study)).mappings().one()
    assert {sealing.key_id(row[c]) for c in ("patient_name", "patient_id", "patient_json")} == {fields.active}
    container.db.seal_with(fields)
    img._blobs = BlobStore(container.settings.blob_dir, cipher=fields)
    assert b"".join(img.instance(DOC_B, ds.StudyInstanceUID, None, ds.SOPInstanceUID).chunks()) == p.read_bytes()
    assert img.find_studies(DOC_B, {"PatientName": "欧阳娜娜"})[0]["00100010"]["Value"] == [{"Alphabetic": "欧阳娜娜"}]


def test_streamed_blobs_detect_tampering_and_leftovers_are_cleaned(container: Container, tmp_path: Path) -> None:
    blobs = container.blobs
    data = os.urandom(3 * 65536 + 17)
    digest, size, new = blobs.put_stream(io.BytesIO(data))
    assert (size, new) == (len(data), True) and digest == hashlib.sha256(data).hexdigest()
    assert blobs.put_stream([data[:5], data[5:]])[2] is False  # the same bytes: kept once
    path = container.settings.blob_dir / digest[:2] / digest[2:4] / digest
    stored = path.read_bytes()
    assert data[:64] not in stored and stored.startswith(b"HRNS")
    seg = 65536 + 16
    for damaged in (
        stored[:-seg],  # the last segment dropped
        stored[:STREAM_HEADER_LEN] + stored[STREAM_HEADER_LEN + seg : STREAM_HEADER_LEN + 2 * seg]
        + stored[STREAM_HEADER_LEN : STREAM_HEADER_LEN + seg] + stored[STREAM_HEADER_LEN + 2 * seg :],  # reordered
        stored + stored[-seg:],  # a segment appended
    ):
        path.write_bytes(damaged)
        chunks = blobs.open_stream(digest)
        assert chunks is not None
        with pytest.raises(ValueError):
            b"".join(chunks)
    path.write_bytes(stored)
    assert b"".join(blobs.open_stream(digest) or []) == data
    leftover = container.settings.blob_dir / ".incoming" / ".tmp-crashed"
    leftover.write_bytes(b"half a file")
    os.utime(leftover, (0, 0))
    assert blobs.clean_incoming() == 1 and not leftover.exists()


def test_dicom_nodes(container: Container) -> None:
    nodes = container.imaging.nodes
    assert nodes.resolve_calling_ae(ORG_A[0], "10.0.0.1") == ORG_A[0]  # an institution's code, no node of its own
    assert nodes.resolve_calling_ae("UNKNOWN_AE", "10.0.0.1") is None
    nodes.add_node("CT_ROOM_1", ORG_A[0], hosts="10.0.0.5, 10.0.0.6")
    assert nodes.resolve_calling_ae("CT_ROOM_1", "10.0.0.6") == ORG_A[0]
    assert nodes.resolve_calling_ae("CT_ROOM_1", "10.0.0.9") is None  # bound to its hosts
    assert nodes.resolve_calling_ae(ORG_A[0], "10.0.0.1") is None  # the institution configured its own
    nodes.add_node("PACS_A", ORG_A[0], hosts="127.0.0.1", port=11112, purpose="pacs")
    assert nodes.move_destination("PACS_A") == ("127.0.0.1", 11112) and nodes.move_destination("CT_ROOM_1") is None
    assert nodes.resolve_calling_ae("PACS_A", "127.0.0.1") is None  # a destination, not a sender
    with pytest.raises(Forbidden):
        nodes.add_node("B_NODE", ORG_B[0], principal=Principal(ORG_A[0], "admin", "admin"))
    with pytest.raises(InvalidInput):
        nodes.add_node("A\\B", ORG_A[0])
    with pytest.raises(NotFound):
        nodes.add_node("GHOST", "000000000")
    assert [n["ae_title"] for n in nodes.list_nodes()] == ["CT_ROOM_1", "PACS_A"]
    assert nodes.remove_node("CT_ROOM_1") and not nodes.remove_node("CT_ROOM_1")
    assert nodes.resolve_calling_ae(ORG_A[0], None) == ORG_A[0]

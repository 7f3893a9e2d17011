"""YB-4.2 against a real PACS: Debian's Orthanc on free 127.0.0.1 ports (bench.orthanc), holding
copies of pydicom's CT_small / MR_small uploaded over its REST API, the gateway's Portal AET
registered in Orthanc as a modality. The gateway reads the study UIDs (or image paths) of
``View_Pacs_Text_Info`` (a SQLite file), C-ECHOes Orthanc, C-MOVEs each study to its own storage
SCP, and pushes the study to the platform: the bytes arrive as Orthanc sent them. A C-MOVE that
Orthanc refuses, or an Orthanc that is down, leaves the study waiting with a Chinese reason,
nothing half pushed, and it is pulled once the PACS is right."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO
from pydicom.uid import generate_uid

from bench.orthanc import OrthancServer, free_port, orthanc_missing
from huren.client import HurenClient
from huren.context import Principal
from huren.gateway.config import parse
from huren.gateway.dicom_portal import Pacs
from huren.gateway.runner import Gateway
from huren.services.container import Container
from tests.conftest import ORG_A, missing
from tests.integration.test_gateway_pacs_text import insert, make_view, row
from tests.integration.test_gateway_pacs_views import FakePlatform, fake_client

ORG = ORG_A[0]
PORTAL = "HURENGW"
HIS_A = Principal(ORG, "his", "hospital")


class Capturing(FakePlatform):
    """The fake platform, keeping every instance's bytes as STOW-RS delivered them."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, bytes] = {}

    def _stow(self, request: httpx2.Request) -> httpx2.Response:
        boundary = request.headers["content-type"].rsplit("=", 1)[1].encode()
        for part in request.read().split(b"--" + boundary)[1:-1]:
            data = part.partition(b"\r\n\r\n")[2][:-2]
            self.data[str(pydicom.dcmread(DicomBytesIO(data), stop_before_pixels=True).SOPInstanceUID)] = data
        return super()._stow(request)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OrthancServer, int]]:
    reason = orthanc_missing(dicomweb=False)
    if reason:
        missing(reason)
    port = free_port()  # where the gateway's Portal AET listens (registered in Orthanc before it starts)
    with OrthancServer(tmp_path_factory.mktemp("orthanc"), dicomweb=False,
                       modalities={PORTAL: [PORTAL, "127.0.0.1", port]}) as o:
        yield o, port


def upload_study(o: OrthancServer, n: int = 2) -> tuple[str, dict[str, str]]:
    """A new study of ``n`` instances (CT_small, MR_small alternately) in Orthanc; (its UID, SOP → Orthanc id)."""
    study, series = generate_uid(), generate_uid()
    ids = {}
    for i in range(n):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm" if i % 2 == 0 else "MR_small.dcm"))
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SpecificCharacterSet, ds.PatientName, ds.PatientID, ds.InstanceNumber = "ISO_IR 192", "张三", "P1", i + 1
        if 0xFFFCFFFC in ds:  # DCMTK (Orthanc's C-STORE) never sends a trailing padding element: with it, the
            del ds[0xFFFCFFFC]  # dataset Orthanc sends would not be the one it holds
        buf = DicomBytesIO()
        ds.save_as(buf, enforce_file_format=True)
        ids[str(ds.SOPInstanceUID)] = o.upload(buf.getvalue())["ID"]
    return study, ids


def dataset_of(part10: bytes) -> bytes:
    """A Part-10 file's dataset, after its file meta (which the network does not carry: every
    receiver writes its own)."""
    assert part10[128:132] == b"DICM" and part10[132:136] == b"\x02\x00\x00\x00"
    return part10[144 + int.from_bytes(part10[140:144], "little"):]


def gateway(tmp_path: Path, client: HurenClient, port: int, o: OrthancServer, **dimse: Any) -> Gateway:
    doc = {
        "platform": {"base_url": "http://platform", "org_code": ORG, "username": "his", "password": "pw"},
        "outbox": {"path": "outbox.db", "max_backoff_seconds": 2},
        "imaging": {"spool_dir": "spool"},
        "pacs_text": {"url": "sqlite:///pacs.db"},
        "pacs_dimse": {"pacs_aet": o.aet, "pacs_host": "127.0.0.1", "pacs_port": o.dicom_port, "portal_aet": PORTAL,
                       "listen_host": "127.0.0.1", "listen_port": port, "recheck_seconds": 0, "timeout_seconds": 5} | dimse,
    }
    return Gateway(parse(doc, tmp_path), sources=[], client=client)


def pacs_view(tmp_path: Path, *studies: str, paths: dict[str, str] | None = None) -> sqlite3.Connection:
    db = make_view(tmp_path / "pacs.db")
    for i, uid in enumerate(studies):
        insert(db, row(f"R{i}", STUDY_UID=uid, IMAGE_PATH=(paths or {}).get(uid, ""), MODIFY_TIME=f"2026-11-30 09:0{i}:00"))
    return db


def test_c_move_pulls_the_study_byte_exact_into_the_platform(
    tmp_path: Path, orthanc: tuple[OrthancServer, int], client: TestClient, container: Container
) -> None:
    o, port = orthanc
    study, ids = upload_study(o, 3)
    pacs_view(tmp_path, study).close()
    hc = HurenClient(str(client.base_url), ORG, ORG_A[4], ORG_A[5], http=client)
    gw = gateway(tmp_path, hc, port, o)
    try:
        assert gw.poll() == 1
        [item] = gw.box.next_batch(["study"], 10)
        doc = json.loads(item.payload)
        assert doc["study_instance_uid"] == study and doc["instance_count"] == 3 and doc["access_no"] == "AR0"
        assert b"\xe5\xbc\xa0" not in item.payload  # the patient's name stays in the sealed files
        assert gw.imaging is not None and gw.imaging.pusher.drain() == (1, "")
        for sop, oid in ids.items():
            held = o.request("GET", f"/instances/{oid}/file")
            got = b"".join(container.imaging.instance(HIS_A, study, None, sop).chunks())
            assert dataset_of(got) == dataset_of(held)  # the dataset as Orthanc holds it, not decoded and re-encoded
            [inst] = [i for i in doc["instances"] if i["sop_instance_uid"] == sop]
            assert hashlib.sha256(got).hexdigest() == inst["sha256"]  # the file the gateway received, unchanged
        assert gw.box.counts() == {"pending": 0, "done": 1, "dead": 0}
        assert gw.poll() == 0  # read again: nothing new, no second C-MOVE queued
    finally:
        gw.close()
    assert not _listening(port)  # the Portal AET's listener ends with the gateway


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_refused_c_move_waits_with_its_reason_and_is_pulled_once_the_pacs_knows_the_portal(
    tmp_path: Path, orthanc: tuple[OrthancServer, int]
) -> None:
    o, port = orthanc
    study, ids = upload_study(o, 2)
    pacs_view(tmp_path, study).close()
    fake = Capturing()
    aet = f"GW{generate_uid()[-8:]}"  # not (yet) a modality of Orthanc: it refuses the C-MOVE (0xC000)
    gw = gateway(tmp_path, fake_client(fake), port, o, portal_aet=aet, store_aets=[o.aet])
    try:
        assert gw.poll() == 0
        waiting = gw.box.meta("imaging_waiting:pacs_dimse")
        assert study in waiting and "C-MOVE 被 PACS ORTHANC" in waiting and "状态 0xC000" in waiting, waiting
        assert f"PACS 未登记本前置机的 Portal AET {aet} 及其 IP、端口" in waiting
        assert gw.box.stats()["sources"]["pacs_dimse"]["last_error"].startswith("1 个检查尚不完整，等待重试")
        assert gw.box.counts()["pending"] == 0 and fake.sent == 0  # nothing half queued or pushed
        assert gw.poll() == 0 and study in gw.box.meta("imaging_waiting:pacs_dimse")  # tried again, still refused
        o.request("PUT", f"/modalities/{aet}", json.dumps({"AET": aet, "Host": "127.0.0.1", "Port": port}).encode())
        assert gw.poll() == 1  # the waiting list finds it once the PACS knows the Portal AET
        assert gw.box.meta("imaging_waiting:pacs_dimse") == ""
        assert gw.imaging is not None and gw.imaging.pusher.drain() == (1, "")
        for sop, oid in ids.items():
            assert dataset_of(fake.data[sop]) == dataset_of(o.request("GET", f"/instances/{oid}/file"))
        assert fake.commits == [study]
    finally:
        gw.close()


def test_a_pacs_that_is_down_leaves_the_rows_to_be_read_again(tmp_path: Path, orthanc: tuple[OrthancServer, int]) -> None:
    o, port = orthanc
    study, _ = upload_study(o, 1)
    pacs_view(tmp_path, study).close()
    fake = Capturing()
    gw = gateway(tmp_path, fake_client(fake), port, o, pacs_port=free_port())  # nothing listens there
    try:
        assert gw.poll() == 0
        state = gw.box.stats()["sources"]["pacs_dimse"]
        assert "无法与 PACS ORTHANC" in state["last_error"] and "检查影像稍后重试" in state["last_error"], state
        assert state["poll_failures"] >= 1 and gw.box.counts()["pending"] == 0
    finally:
        gw.close()
    gw = gateway(tmp_path, fake_client(fake), port, o)  # the PACS is back (the same outbox)
    try:
        assert gw.poll() == 1
        assert gw.imaging is not None and gw.imaging.pusher.drain() == (1, "") and fake.commits == [study]
    finally:
        gw.close()


def test_http_mode_fetches_the_image_paths_byte_exact(tmp_path: Path, orthanc: tuple[OrthancServer, int]) -> None:
    o, port = orthanc
    study, ids = upload_study(o, 2)
    urls = ";".join(f"{o.http_url}/instances/{oid}/file" for oid in ids.values())
    other, other_ids = upload_study(o, 1)
    bad = f"{o.http_url}/instances/{next(iter(other_ids.values()))}/file"  # a file of another study
    db = pacs_view(tmp_path, study, "1.2.826.0.1.3680043.2.1143.9", paths={study: urls, "1.2.826.0.1.3680043.2.1143.9": bad})
    fake = Capturing()
    gw = gateway(tmp_path, fake_client(fake), port, o, mode="http")
    try:
        assert gw.poll() == 1
        waiting = gw.box.meta("imaging_waiting:pacs_dimse")
        assert "1.2.826.0.1.3680043.2.1143.9" in waiting and f"属于另一检查（{other}）" in waiting, waiting
        assert gw.imaging is not None and gw.imaging.pusher.drain() == (1, "")
        for sop, oid in ids.items():
            assert fake.data[sop] == o.request("GET", f"/instances/{oid}/file")  # the whole file, byte for byte
        assert len(fake.data) == 2  # nothing of the study whose path points elsewhere
    finally:
        gw.close()
        db.close()


def test_http_mode_bounds_each_file(tmp_path: Path, orthanc: tuple[OrthancServer, int]) -> None:
    o, _ = orthanc
    study, ids = upload_study(o, 1)
    url = f"{o.http_url}/instances/{next(iter(ids.values()))}/file"
    pacs_view(tmp_path, study, paths={study: url}).close()
    fake = Capturing()
    doc = {
        "platform": {"base_url": "http://platform", "org_code": ORG, "username": "his", "password": "pw"},
        "outbox": {"path": "outbox.db"}, "imaging": {"spool_dir": "spool", "max_file_bytes": 2048},
        "pacs_text": {"url": "sqlite:///pacs.db"}, "pacs_dimse": {"mode": "http", "recheck_seconds": 0},
    }
    gw = Gateway(parse(doc, tmp_path), sources=[], client=fake_client(fake))
    try:
        assert gw.poll() == 0
        assert "文件超过上限 2048 字节" in gw.box.meta("imaging_waiting:pacs_dimse")
        assert list((tmp_path / "spool").iterdir()) == []  # nothing of it kept
        assert gw.box.counts()["pending"] == 0
    finally:
        gw.close()


def test_arrivals_must_match_the_counts_the_pacs_reports(
    tmp_path: Path, orthanc: tuple[OrthancServer, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    o, port = orthanc
    study, _ = upload_study(o, 2)
    pacs_view(tmp_path, study).close()
    real = Pacs.move
    monkeypatch.setattr(Pacs, "move", lambda self, uid: (lambda r: (r[0], r[1] + 1, r[2], r[3]))(real(self, uid)))
    fake = Capturing()
    gw = gateway(tmp_path, fake_client(fake), port, o)
    try:
        assert gw.poll() == 0
        assert "实例数不符：PACS 报告完成 3 个子操作，前置机收到 2 个实例" in gw.box.meta("imaging_waiting:pacs_dimse")
        monkeypatch.setattr(Pacs, "move", real)
        assert gw.poll() == 1 and gw.box.meta("imaging_waiting:pacs_dimse") == ""
    finally:
        gw.close()


def test_a_study_past_max_instances_is_refused_as_it_arrives(tmp_path: Path, orthanc: tuple[OrthancServer, int]) -> None:
    o, port = orthanc
    study, _ = upload_study(o, 3)
    pacs_view(tmp_path, study).close()
    gw = gateway(tmp_path, fake_client(Capturing()), port, o, max_instances=2)
    try:
        assert gw.poll() == 0
        waiting = gw.box.meta("imaging_waiting:pacs_dimse")
        assert "前置机拒收：实例数超过上限 max_instances = 2" in waiting, waiting
        assert gw.box.counts()["pending"] == 0
    finally:
        gw.close()


def test_the_portal_takes_stores_only_from_the_pacs_and_only_during_a_move(
    tmp_path: Path, orthanc: tuple[OrthancServer, int]
) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

    o, port = orthanc
    study, _ = upload_study(o, 1)
    pacs_view(tmp_path, study).close()
    gw = gateway(tmp_path, fake_client(Capturing()), port, o)
    try:
        assert gw.poll() == 1  # the listener is up
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        for calling, expect in ((o.aet, 0x0124), ("INTRUDER", None)):
            ae = AE(ae_title=calling)
            ae.add_requested_context(CTImageStorage, ds.file_meta.TransferSyntaxUID)
            assoc = ae.associate("127.0.0.1", port, ae_title=PORTAL)
            if expect is None:
                assert assoc.is_rejected  # only the PACS's AE title may store
                continue
            assert assoc.is_established
            assert int(assoc.send_c_store(ds).Status) == expect  # not part of a C-MOVE: refused
            assoc.release()
        assert len(list((tmp_path / "spool").iterdir())) == 1  # the study's one file, nothing of the intruder
    finally:
        gw.close()
    other, _ = upload_study(o, 1)
    (tmp_path / "elsewhere").mkdir()
    pacs_view(tmp_path / "elsewhere", other).close()
    gw = gateway(tmp_path / "elsewhere", fake_client(Capturing()), port, o, store_hosts=["192.0.2.7"])
    try:  # only the PACS's addresses may store: Orthanc, from 127.0.0.1, is not one of them here
        assert gw.poll() == 0
        assert "前置机拒收：来自未授权地址 127.0.0.1 的实例" in gw.box.meta("imaging_waiting:pacs_dimse")
    finally:
        gw.close()


def test_configuration_errors_name_the_key(tmp_path: Path) -> None:
    base = {
        "platform": {"base_url": "http://platform", "org_code": ORG, "username": "his", "password": "pw"},
        "outbox": {"path": "outbox.db"}, "imaging": {"spool_dir": "spool"},
    }
    pacs_view(tmp_path).close()
    cases = [
        ({"pacs_dimse": {"mode": "http"}}, "[pacs_dimse] 需要一个 [pacs_text] 检查文字视图"),
        ({"pacs_text": {"url": "sqlite:///pacs.db"}, "pacs_dimse": {"mode": "ftp"}}, "pacs_dimse[pacs_dimse].mode 应为 c-move 或 http"),
        ({"pacs_text": {"url": "sqlite:///pacs.db"}, "pacs_dimse": {"pacs_host": "h", "pacs_aet": "X" * 17}},
         "pacs_dimse[pacs_dimse].pacs_aet 应为 1–16 个 ASCII 字符的 AE 名称"),
        ({"pacs_text": {"url": "sqlite:///pacs.db"}, "pacs_dimse": {"pacs_aet": "PACS"}}, "缺少 pacs_dimse[pacs_dimse].pacs_host"),
        ({"pacs_text": {"url": "sqlite:///pacs.db"}, "pacs_dimse": {"mode": "http", "listen": 1}},
         "pacs_dimse[pacs_dimse]：不认识的配置项 listen"),
    ]
    from huren.gateway.config import ConfigError

    for extra, message in cases:
        with pytest.raises(ConfigError) as err:
            Gateway(parse(base | extra, tmp_path), sources=[], client=fake_client(Capturing())).close()
        assert message in str(err.value), (extra, str(err.value))


def test_an_instance_past_the_size_bound_is_refused_and_the_study_waits(
    tmp_path: Path, orthanc: tuple[OrthancServer, int]
) -> None:
    o, port = orthanc
    study, _ = upload_study(o, 1)
    pacs_view(tmp_path, study).close()
    doc = {
        "platform": {"base_url": "http://platform", "org_code": ORG, "username": "his", "password": "pw"},
        "outbox": {"path": "outbox.db"}, "imaging": {"spool_dir": "spool", "max_file_bytes": 4096},
        "pacs_text": {"url": "sqlite:///pacs.db"},
        "pacs_dimse": {"pacs_aet": o.aet, "pacs_host": "127.0.0.1", "pacs_port": o.dicom_port, "portal_aet": PORTAL,
                       "listen_host": "127.0.0.1", "listen_port": port, "recheck_seconds": 0, "timeout_seconds": 5},
    }
    gw = Gateway(parse(doc, tmp_path), sources=[], client=fake_client(Capturing()))
    try:
        assert gw.poll() == 0
        waiting = gw.box.meta("imaging_waiting:pacs_dimse")
        assert study in waiting and "前置机拒收：文件超过上限 4096 字节" in waiting, waiting
        assert "常见原因" not in waiting  # the PACS failed because the gateway refused, not for want of a destination
        assert gw.box.counts()["pending"] == 0 and list((tmp_path / "spool").iterdir()) == []
    finally:
        gw.close()


def test_a_store_far_past_the_bound_is_aborted_while_it_streams(tmp_path: Path, orthanc: tuple[OrthancServer, int]) -> None:
    o, port = orthanc
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Rows = ds.Columns = 512
    ds.PixelData = bytes(512 * 512 * 2)  # 512 KiB: far past max_file_bytes + the 64 KiB allowance
    buf = DicomBytesIO()
    ds.save_as(buf, enforce_file_format=True)
    o.upload(buf.getvalue())
    pacs_view(tmp_path, str(ds.StudyInstanceUID)).close()
    doc = {
        "platform": {"base_url": "http://platform", "org_code": ORG, "username": "his", "password": "pw"},
        "outbox": {"path": "outbox.db"}, "imaging": {"spool_dir": "spool", "max_file_bytes": 4096},
        "pacs_text": {"url": "sqlite:///pacs.db"},
        "pacs_dimse": {"pacs_aet": o.aet, "pacs_host": "127.0.0.1", "pacs_port": o.dicom_port, "portal_aet": PORTAL,
                       "listen_host": "127.0.0.1", "listen_port": port, "recheck_seconds": 0, "timeout_seconds": 5},
    }
    gw = Gateway(parse(doc, tmp_path), sources=[], client=fake_client(Capturing()))
    try:
        assert gw.poll() == 0
        waiting = gw.box.meta("imaging_waiting:pacs_dimse")
        assert str(ds.StudyInstanceUID) in waiting and "C-MOVE" in waiting, waiting
        assert gw.box.counts()["pending"] == 0 and list((tmp_path / "spool").iterdir()) == []
        assert gw.imaging is not None and gw.imaging.pull is not None
        scp = gw.imaging.pull.scp
        assert scp is not None
        for _ in range(50):  # the aborted association is forgotten once its connection closed
            if not scp._bytes:
                break
            time.sleep(0.05)
        assert scp._bytes == {}
    finally:
        gw.close()


def test_a_lost_spool_file_is_pulled_again_from_the_pacs(tmp_path: Path, orthanc: tuple[OrthancServer, int]) -> None:
    o, port = orthanc
    study, ids = upload_study(o, 2)
    pacs_view(tmp_path, study).close()
    fake = Capturing()
    gw = gateway(tmp_path, fake_client(fake), port, o)
    try:
        assert gw.poll() == 1
        for f in (tmp_path / "spool").iterdir():  # removed by hand before the push
            f.unlink()
        assert gw.imaging is not None and gw.imaging.pusher.drain() == (1, "")  # moved again, then pushed
        for sop, oid in ids.items():
            assert dataset_of(fake.data[sop]) == dataset_of(o.request("GET", f"/instances/{oid}/file"))
        assert fake.commits == [study]
    finally:
        gw.close()


def test_http_mode_without_a_study_uid_column_takes_the_files_study(tmp_path: Path, orthanc: tuple[OrthancServer, int]) -> None:
    from tests.integration.test_gateway_pacs_text import COLUMNS

    o, port = orthanc
    study, ids = upload_study(o, 2)
    db = make_view(tmp_path / "pacs.db", [c for c in COLUMNS if c != "STUDY_UID"])
    urls = [f"{o.http_url}/instances/{oid}/file" for oid in ids.values()]
    insert(db, row("R7", IMAGE_PATH=urls[0]))  # complete as listed: the study is the file's
    insert(db, row("R8", IMAGE_PATH=f"{urls[1]};{o.http_url}/instances/nosuch/file"))
    db.close()
    fake = Capturing()
    gw = gateway(tmp_path, fake_client(fake), port, o, mode="http")
    try:
        assert gw.poll() == 1
        [item] = gw.box.next_batch(["study"], 10)
        assert json.loads(item.payload)["study_instance_uid"] == study and json.loads(item.payload)["instance_count"] == 1
        waiting = gw.box.meta("imaging_waiting:pacs_dimse")
        assert "report:R8" in waiting and "HTTP 404" in waiting, waiting  # keyed by its report number
    finally:
        gw.close()

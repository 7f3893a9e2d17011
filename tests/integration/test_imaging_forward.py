"""XC-E-note: reads of a study the platform does not hold relayed to another conforming imaging
platform (huren.services.imaging_forward), here Debian's Orthanc with its DICOMweb plugin started
on free 127.0.0.1 ports: QIDO / metadata / WADO-RS / WADO-URI answers byte-exact and marked with
their origin, URLs moved onto this platform, the switch-over rule, the bounds, a peer that is down."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import httpx2
import orjson
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import select

from bench.orthanc import OrthancServer, free_port, orthanc_missing
from huren.context import Principal
from huren.errors import InvalidInput, NotConfigured, NotFound, PlatformUnavailable
from huren.services.container import Container
from huren.services.imaging_forward import ImageForwarder, NotHeld, Peer, forwarder_for
from huren.services.imaging_types import KeyGrant
from huren.store.tables import access_log
from tests.conftest import ORG_A, ORG_B, SUPERVISOR, missing

PUBLIC = "https://huren.example.gov.cn/dicom-web"
DOCTOR = Principal(ORG_B[0], "doc", "doctor")
PEER_NAME = "区域影像云（备用）"
USERS = {"relay": "relay-口令"}


@pytest.fixture(scope="module")
def peer_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OrthancServer, list[tuple[bytes, pydicom.Dataset]]]]:
    reason = orthanc_missing()
    if reason:
        missing(reason)
    with OrthancServer(tmp_path_factory.mktemp("peer"), users=USERS) as o:
        study, series = generate_uid(), generate_uid()
        files: list[tuple[bytes, pydicom.Dataset]] = []
        for n in (1, 2):
            ds = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
            ds.SpecificCharacterSet = "ISO_IR 192"
            ds.PatientName, ds.PatientID = "李四", "PEER-1"
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = n
            buf = io.BytesIO()
            ds.save_as(buf)
            o.upload(buf.getvalue())
            files.append((buf.getvalue(), ds))
        yield o, files


def forwarder(container: Container, o: OrthancServer, **kw: object) -> ImageForwarder:
    user, password = next(iter(USERS.items()))
    peer = Peer(name=PEER_NAME, url=o.http_url + "/dicom-web", username=user, password=password, timeout=5.0, **kw)  # type: ignore[arg-type]
    return ImageForwarder(peer, container.audit, container.clock, public_root=PUBLIC)


def test_qido_metadata_and_retrieve_relayed_with_their_origin(container: Container, peer_orthanc: tuple[OrthancServer, list[tuple[bytes, pydicom.Dataset]]]) -> None:
    o, files = peer_orthanc
    (data1, ds1), (data2, _) = files
    study, series = ds1.StudyInstanceUID, ds1.SeriesInstanceUID
    with forwarder(container, o) as fw:
        found = fw.relay(DOCTOR, "/studies", {"StudyInstanceUID": study})
        assert found.status == 200 and found.label == "影像来源：区域影像云（备用）"
        assert unquote(found.headers()["X-Image-Source"]) == PEER_NAME and found.headers()["Warning"].startswith("299 ")
        rows = orjson.loads(found.body or b"")
        assert [r["0020000D"]["Value"][0] for r in rows] == [study]
        assert rows[0]["00100010"]["Value"][0]["Alphabetic"] == "李四"
        assert rows[0]["00081190"]["Value"][0] == f"{PUBLIC}/studies/{study}"  # RetrieveURL: back through this platform

        series_rows = orjson.loads(fw.relay(DOCTOR, f"/studies/{study}/series").body or b"")
        assert [r["0020000E"]["Value"][0] for r in series_rows] == [series]

        meta = orjson.loads(fw.relay(DOCTOR, f"/studies/{study}/series/{series}/metadata").body or b"")
        assert sorted(m["00080018"]["Value"][0] for m in meta) == sorted(d.SOPInstanceUID for _, d in files)
        bulk = [a["BulkDataURI"] for m in meta for a in m.values() if isinstance(a, dict) and "BulkDataURI" in a]
        assert bulk and all(u.startswith(f"{PUBLIC}/studies/{study}/") for u in bulk)

        got = fw.relay(DOCTOR, f"/studies/{study}/series/{series}/instances/{ds1.SOPInstanceUID}",
                       accept='multipart/related; type="application/dicom"')
        assert got.status == 200 and got.media_type.startswith("multipart/related") and got.chunks is not None
        body = b"".join(got.iter_bytes())
        assert data1 in body and data2 not in body  # the file byte-exact inside the peer's multipart answer

        wado = fw.relay_wado_uri(DOCTOR, [("requestType", "WADO"), ("studyUID", study), ("seriesUID", series),
                                          ("objectUID", ds1.SOPInstanceUID), ("contentType", "application/dicom"),
                                          ("key", "must-not-leave")])
        assert b"".join(wado.iter_bytes()) == data1 and wado.label.endswith(PEER_NAME)

        with pytest.raises(NotFound) as nf:
            fw.relay(DOCTOR, f"/studies/{generate_uid()}/series")
        assert "均未找到" in nf.value.message
    with container.db.read() as conn:
        logged = conn.execute(select(access_log.c.action, access_log.c.target, access_log.c.org_code)
                              .where(access_log.c.action == "image.forward")).all()
    assert logged and all(t.startswith(PEER_NAME + ":") and org == DOCTOR.org_code for _, t, org in logged)


def test_switch_over_rule(container: Container, tmp_path: Path) -> None:
    peer = Peer(name=PEER_NAME, url="http://127.0.0.1:9/dicom-web")
    grant = KeyGrant(1, "viewer", generate_uid(), ORG_B[0], "x", datetime.now() + timedelta(hours=1))
    supervisor = Principal(SUPERVISOR[0], "admin", "supervisor")
    down = PlatformUnavailable("影像归档服务（Orthanc）暂不可用")
    with ImageForwarder(peer, container.audit, container.clock, public_root=PUBLIC) as fw:
        assert fw.relays(DOCTOR, NotHeld("1.2.3"))
        assert fw.relays(Principal(ORG_A[0], "his", "hospital"), NotHeld("1.2.3"))
        assert not fw.relays(grant, NotHeld("1.2.3"))  # a key is for its own study only
        assert fw.relays(grant, NotHeld(grant.study_uid))  # 2b: its own study, no longer held here
        with pytest.raises(NotHeld):  # another study: refused before anything is sent (the peer is unreachable)
            fw.relay(grant, "/studies/1.2.3/series")
        with pytest.raises(NotHeld):  # a search not naming its study
            fw.relay(grant, "/studies")
        with pytest.raises(NotHeld):
            fw.relay_wado_uri(grant, {"requestType": "WADO", "studyUID": "1.2.3"})
        assert not fw.relays(supervisor, NotHeld("1.2.3"))  # a region's reach cannot be checked at the peer
        assert not fw.relays(DOCTOR, NotFound("无权查看"))  # held but out of reach: never relayed
        assert not fw.relays(DOCTOR, down)  # failover off
    with ImageForwarder(Peer(name=PEER_NAME, url=peer.url, failover=True), container.audit, container.clock, public_root=PUBLIC) as fw:
        assert fw.relays(DOCTOR, down) and not fw.relays(grant, down)
    assert forwarder_for(None, container.audit, container.clock, public_root=PUBLIC) is None
    with pytest.raises(NotConfigured):
        forwarder_for("ftp://peer/dicom-web", container.audit, container.clock, public_root=PUBLIC)


def test_bad_requests_never_leave(container: Container) -> None:
    sent: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        if request.url.params.get("PatientID") == "BIG":
            return httpx2.Response(200, content=b"[" + b"1," * 600 + b"1]", headers={"Content-Type": "application/dicom+json"})
        if "/instances/" in request.url.path:
            return httpx2.Response(200, content=b"x" * 5000, headers={"Content-Type": "application/dicom"})
        return httpx2.Response(200, content=b"[]", headers={"Content-Type": "application/dicom+json"})

    peer = Peer(name=PEER_NAME, url="http://peer.test/dicom-web", token="tok-1", max_json_bytes=1000, max_bytes=4096)
    with ImageForwarder(peer, container.audit, container.clock, public_root=PUBLIC,
                        http=httpx2.Client(transport=httpx2.MockTransport(handler), headers={"Authorization": "Bearer tok-1"})) as fw:
        for path in ("/studies/1.2.3/../../admin", "/system", "/studies/1.2.3/series/x y", "/studies/abc"):
            with pytest.raises(InvalidInput):
                fw.relay(DOCTOR, path)
        with pytest.raises(InvalidInput):
            fw.relay(DOCTOR, "/studies", [(f"k{i}", "v") for i in range(100)])
        with pytest.raises(InvalidInput):
            fw.relay(DOCTOR, "/studies", {"PatientName": "x" * 5000})
        assert not sent
        fw.relay(DOCTOR, "/studies", {"PatientID": "P1", "key": "secret-key", "access_token": "t"})
        assert sent[-1].url.params.get("PatientID") == "P1" and "key" not in sent[-1].url.params
        assert "access_token" not in sent[-1].url.params and sent[-1].headers["authorization"] == "Bearer tok-1"
        assert sent[-1].headers["x-forwarded-for-institution"] == DOCTOR.org_code
        with pytest.raises(PlatformUnavailable) as big:  # a 1.2 kB JSON answer, 1 kB allowed
            fw.relay(DOCTOR, "/studies", {"PatientID": "BIG"})
        assert "过大" in big.value.message
        sop = generate_uid()
        with pytest.raises(PlatformUnavailable) as cut:  # 5000 bytes announced, 4096 allowed
            fw.relay(DOCTOR, f"/studies/1.2.3/series/1.2.4/instances/{sop}")
        assert "过大" in cut.value.message


def test_peer_down_paused_then_back(container: Container, tmp_path: Path) -> None:
    reason = orthanc_missing()
    if reason:
        missing(reason)
    port = free_port()
    peer = Peer(name=PEER_NAME, url=f"http://127.0.0.1:{port}/dicom-web", username="relay", password=USERS["relay"],
                timeout=2.0, pause_after=2, pause_seconds=1.0)
    with ImageForwarder(peer, container.audit, container.clock, public_root=PUBLIC) as fw:
        for _ in range(2):
            with pytest.raises(PlatformUnavailable) as e:
                fw.relay(DOCTOR, "/studies")
            assert e.value.status == 503 and PEER_NAME in e.value.message
        started = time.monotonic()
        with pytest.raises(PlatformUnavailable) as paused:
            fw.relay(DOCTOR, "/studies")
        assert paused.value.problems[0].rule == "paused" and time.monotonic() - started < 0.5
        o = OrthancServer(tmp_path / "peer", users=USERS)
        o.http_port = port
        try:
            _start_on(o, port)
            time.sleep(1.1)  # the pause is over: the next request tries again
            assert fw.relay(DOCTOR, "/studies").status == 200
            wrong = Peer(name=PEER_NAME, url=peer.url, username="relay", password="wrong", timeout=2.0)
            with ImageForwarder(wrong, container.audit, container.clock, public_root=PUBLIC) as bad, pytest.raises(NotConfigured):
                bad.relay(DOCTOR, "/studies")
        finally:
            o.stop()


def _start_on(o: OrthancServer, port: int) -> None:
    """Start ``o`` with its HTTP server on ``port`` (the peer's configured address)."""
    import json
    import os
    import subprocess

    from bench.orthanc import DCMTK_ENV, ORTHANC

    o.workdir.mkdir(parents=True, exist_ok=True)
    o.http_port, o.dicom_port = port, free_port()
    cfg = o.workdir / "orthanc.json"
    cfg.write_text(json.dumps(o.config()), encoding="utf-8")
    with o.log_path.open("ab") as log:
        o.proc = subprocess.Popen([ORTHANC, "--no-jobs", str(cfg)], stdout=log, stderr=subprocess.STDOUT, cwd=o.workdir,
                                  env=os.environ | DCMTK_ENV)
    assert o._wait_ready(30), o.log_path.read_text(errors="replace")[-2000:]


def test_a_second_huren_as_the_peer(container: Container, tmp_path: Path) -> None:
    """The peer is another huren (uvicorn on a free port), read with a hospital account's token."""
    import requests

    from tests.integration.test_wado import sample, store

    ct = store(container, [sample("CT_small.dcm")])[0]
    with _uvicorn(container) as base:
        r = requests.post(f"{base}/api/v1/auth/token", json={"org_code": ORG_B[0], "username": ORG_B[4], "password": ORG_B[5]}, timeout=10)
        assert r.status_code == 200, r.text
        peer = Peer(name="兄弟平台", url=f"{base}/dicom-web", token=r.json()["access_token"], timeout=5.0)
        with ImageForwarder(peer, container.audit, container.clock, public_root=PUBLIC) as fw:
            rows = orjson.loads(fw.relay(DOCTOR, "/studies", {"StudyInstanceUID": ct.study_uid}).body or b"")
            assert [x["0020000D"]["Value"][0] for x in rows] == [ct.study_uid]
            meta = orjson.loads(fw.relay(DOCTOR, f"/studies/{ct.study_uid}/series/{ct.series_uid}/metadata").body or b"")
            assert meta[0]["7FE00010"]["BulkDataURI"].startswith(f"{PUBLIC}/studies/{ct.study_uid}/")
            got = fw.relay(DOCTOR, f"/studies/{ct.study_uid}/series/{ct.series_uid}/instances/{ct.sop_uid}",
                           accept='multipart/related; type="application/dicom"')
            assert sample("CT_small.dcm").read_bytes() in b"".join(got.iter_bytes())
            wado = fw.relay_wado_uri(DOCTOR, {"requestType": "WADO", "studyUID": ct.study_uid, "seriesUID": ct.series_uid,
                                              "objectUID": ct.sop_uid, "contentType": "application/dicom"})
            assert b"".join(wado.iter_bytes()) == sample("CT_small.dcm").read_bytes()
            assert wado.headers()["X-Image-Source"] == "%E5%85%84%E5%BC%9F%E5%B9%B3%E5%8F%B0"


class _uvicorn:
    """Serve a container's app on a free 127.0.0.1 port (as tests/integration/test_dicomweb_client.py)."""

    def __init__(self, c: Container) -> None:
        self.c = c

    def __enter__(self) -> str:
        import socket
        import threading

        import uvicorn

        from huren.api.app import create_app

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.c.settings.public_base_url = base
        self.srv = uvicorn.Server(uvicorn.Config(create_app(self.c), log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.srv.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.srv.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        return base

    def __exit__(self, *exc: object) -> None:
        self.srv.should_exit = True
        self.thread.join(10)
        self.sock.close()


def test_the_service_says_not_held_and_the_container_has_the_forwarder(container: Container, tmp_path: Path) -> None:
    from huren.bootstrap import build
    from huren.context import Clock
    from huren.settings import Settings
    from tests.conftest import HASH_N, SECRET
    from tests.integration.test_wado import store, variant

    unknown = generate_uid()
    for call in (lambda: container.imaging.find_series(DOCTOR, unknown), lambda: container.imaging.metadata(DOCTOR, unknown),
                 lambda: container.imaging.instances_of(DOCTOR, unknown),
                 lambda: container.imaging.instance(DOCTOR, unknown, None, generate_uid())):
        with pytest.raises(NotHeld) as e:
            call()
        assert e.value.status == 404 and e.value.study_uid == unknown
    # a study hidden by a deletion notice is not "not held": never relayed
    ct = store(container, [variant(tmp_path, "CT_small.dcm", AccessionNumber="ACC-DEL")])[0]
    container.imaging.delete_notice(Principal(ORG_A[0], "his", "hospital"), hospitalId=ORG_A[0], accessionNo="ACC-DEL")
    with pytest.raises(NotFound) as hidden:
        container.imaging.find_series(DOCTOR, ct.study_uid)
    assert not isinstance(hidden.value, NotHeld)
    assert container.imaging_forward is None  # not configured
    settings = Settings(data_dir=tmp_path / "d2", secret_key=SECRET, password_hash_n=HASH_N,
                        imaging_fallback_url="http://127.0.0.1:9/dicom-web", imaging_fallback_name=PEER_NAME,
                        imaging_fallback_token="t", public_base_url="https://huren.example.gov.cn")
    c2 = build(settings, clock=Clock(), upgrade=True)
    try:
        assert c2.imaging_forward is not None and c2.imaging_forward.peer.name == PEER_NAME
        assert c2.imaging_forward.public_root == PUBLIC
    finally:
        c2.close()


def test_the_web_services_relay_a_study_not_held(container: Container, peer_orthanc: tuple[OrthancServer, list[tuple[bytes, pydicom.Dataset]]]) -> None:
    """Through HTTP (huren.api.dicomweb_relay): a doctor's QIDO, metadata, WADO-RS and WADO-URI for a
    study only the fallback platform holds are answered from it and marked with its origin; a key
    is never relayed; without a forwarder the answer is the plain 404."""
    from fastapi.testclient import TestClient

    from huren.api.app import create_app
    from tests.conftest import login

    o, files = peer_orthanc
    (data1, ds1), _ = files
    study, series, sop = ds1.StudyInstanceUID, ds1.SeriesInstanceUID, ds1.SOPInstanceUID
    fw = forwarder(container, o)
    with TestClient(create_app(container)) as client:
        api = login(client, ORG_B)
        assert api.get(f"/dicom-web/studies/{study}/series").status_code == 404  # no forwarder configured
        container.imaging_forward = fw
        try:
            r = api.get(f"/dicom-web/studies/{study}/series")
            assert r.status_code == 200, r.text
            assert unquote(r.headers["x-image-source"]) == PEER_NAME
            assert [x["0020000E"]["Value"][0] for x in r.json()] == [series]
            meta = api.get(f"/dicom-web/studies/{study}/series/{series}/metadata")
            assert meta.status_code == 200 and {x["00080018"]["Value"][0] for x in meta.json()} >= {sop}
            one = api.get(f"/dicom-web/studies/{study}/series/{series}/instances/{sop}",
                          headers={"Accept": 'multipart/related; type="application/dicom"'})
            assert one.status_code == 200 and data1[-4096:] in one.content, one.text[:300]
            wado = api.get("/wado", params={"requestType": "WADO", "studyUID": study, "seriesUID": series, "objectUID": sop,
                                            "contentType": "application/dicom"})
            assert wado.status_code == 200 and wado.content.endswith(data1[-4096:])
            assert unquote(wado.headers["x-image-source"]) == PEER_NAME
            # an image key is never relayed; a study unknown to both is a 404 naming both
            keyed = client.get(f"/dicom-web/studies/{study}/series", params={"key": "A" * 22})
            assert keyed.status_code == 401
            gone = api.get(f"/dicom-web/studies/{generate_uid()}/series")
            assert gone.status_code == 404 and "备用影像平台" in gone.json()["message"], gone.text
        finally:
            container.imaging_forward = None
            fw.close()

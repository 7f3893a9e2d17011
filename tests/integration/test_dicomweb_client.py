"""dicomweb-client (a real DICOMweb client, over real HTTP) against a huren served by uvicorn on
a free 127.0.0.1 port: search, retrieve (byte-exact), series metadata, frames, store."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import uvicorn
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite

from huren.api.app import create_app
from huren.bootstrap import Container
from tests.conftest import ORG_A, ORG_B
from tests.integration.test_wado import sample, store, variant


@contextlib.contextmanager
def app_server(container: Container, *, public: bool = False) -> Iterator[int]:
    """The platform's app served by uvicorn in a thread on a free 127.0.0.1 port (its number);
    ``public``: that address is the platform's public one (RetrieveURL, BulkDataURI name it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    if public:
        container.settings.public_base_url = f"http://127.0.0.1:{port}"
    srv = uvicorn.Server(uvicorn.Config(create_app(container), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        srv.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def server(container: Container) -> Iterator[str]:
    with app_server(container, public=True) as port:
        yield f"http://127.0.0.1:{port}"


def client_for(base: str, org: tuple[str, ...]) -> DICOMwebClient:
    session = requests.Session()
    r = session.post(f"{base}/api/v1/auth/token", json={"org_code": org[0], "username": org[4], "password": org[5]}, timeout=10)
    assert r.status_code == 200, r.text
    session.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    return DICOMwebClient(url=f"{base}/dicom-web", session=session)


def test_dicomweb_client_round_trip(container: Container, server: str, tmp_path: Path) -> None:
    ct = store(container, [sample("CT_small.dcm")])[0]
    dw = client_for(server, ORG_B)  # another hospital reads A's study

    studies = dw.search_for_studies(search_filters={"PatientID": "1CT1"})
    assert [s["0020000D"]["Value"][0] for s in studies] == [ct.study_uid]
    assert dw.search_for_studies(search_filters={"PatientID": "nobody"}) == []
    series = dw.search_for_series(ct.study_uid)
    assert [s["0020000E"]["Value"][0] for s in series] == [ct.series_uid]

    [ds] = dw.retrieve_study(ct.study_uid)
    buf = DicomBytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    original = dcmread(sample("CT_small.dcm"))
    assert ds.SOPInstanceUID == ct.sop_uid and ds.PixelData == original.PixelData and ds.PatientName == original.PatientName

    meta = dw.retrieve_series_metadata(ct.study_uid, ct.series_uid)
    assert [m["00080018"]["Value"][0] for m in meta] == [ct.sop_uid]
    assert meta[0]["7FE00010"]["BulkDataURI"].startswith(f"{server}/dicom-web/studies/{ct.study_uid}/")

    [frame] = dw.retrieve_instance_frames(ct.study_uid, ct.series_uid, ct.sop_uid, frame_numbers=[1])
    assert frame == original.PixelData

    rendered = dw.retrieve_instance_rendered(ct.study_uid, ct.series_uid, ct.sop_uid, media_types=("image/png",))
    assert rendered[:8] == b"\x89PNG\r\n\x1a\n"


def test_dicomweb_client_store(container: Container, server: str, tmp_path: Path) -> None:
    dw = client_for(server, ORG_A)
    files = [dcmread(sample("MR_small.dcm")), dcmread(variant(tmp_path, "MR_small.dcm", InstanceNumber=2))]
    answer = dw.store_instances(files)
    refs = answer.ReferencedSOPSequence
    assert sorted(r.ReferencedSOPInstanceUID for r in refs) == sorted(f.SOPInstanceUID for f in files)
    assert "FailedSOPSequence" not in answer
    study = files[0].StudyInstanceUID
    assert answer.RetrieveURL == f"{server}/dicom-web/studies/{study}"
    got = dw.retrieve_study(study)
    assert sorted(d.SOPInstanceUID for d in got) == sorted(f.SOPInstanceUID for f in files)
    # byte-exact through the wire: the file the client sent equals what WADO-URI gives back
    sent = io.BytesIO()
    dcmwrite(sent, files[0], enforce_file_format=True)
    session = dw._session
    r = session.get(f"{server}/wado", params={
        "requestType": "WADO", "studyUID": study, "seriesUID": files[0].SeriesInstanceUID,
        "objectUID": files[0].SOPInstanceUID, "contentType": "application/dicom"}, timeout=10)
    assert r.status_code == 200 and r.content == sent.getvalue()

"""XC-E-note on the imaging pages: the doctor's viewer and the patient's cloud film show a study the
platform does not hold from the fallback platform (Debian's Orthanc with its DICOMweb plugin):
series list, frames rendered by the peer through the page's own routes, the note "影像来自备用影像
平台…"; a study neither holds is the Chinese not-found page; a held study out of reach is never
fetched from the peer."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import unquote

import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import delete, select

from bench.orthanc import OrthancServer, orthanc_missing
from huren.services.container import Container
from huren.services.imaging import Sender
from huren.services.imaging_forward import ImageForwarder, Peer
from huren.store.tables import access_log, image_study
from tests.conftest import ORG_A, ORG_B, login
from tests.integration.test_imaging_pages import FAR_SUP, HIS_A, frame_src, store_study, text, token

PEER_NAME = "区域影像云（备用）"
USERS = {"relay": "relay-口令"}


@pytest.fixture(scope="module")
def fallback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OrthancServer, str, dict[str, bytes]]]:
    """An Orthanc holding one study: a CT series of two slices, an MR series of one image."""
    reason = orthanc_missing()
    if reason:
        pytest.skip(reason)
    with OrthancServer(tmp_path_factory.mktemp("fallback"), users=USERS) as o:
        study, ct, mr = generate_uid(), generate_uid(), generate_uid()
        files = {}
        for n, (name, series) in enumerate((("CT_small.dcm", ct), ("CT_small.dcm", ct), ("MR_small.dcm", mr))):
            ds = pydicom.dcmread(str(get_testdata_file(name)))
            ds.SpecificCharacterSet = "ISO_IR 192"
            ds.PatientName, ds.PatientID = "李四", "PEER-1"
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber, ds.SeriesNumber = n + 1, 1 if series == ct else 2
            buf = io.BytesIO()
            ds.save_as(buf)
            o.upload(buf.getvalue())
            files[str(ds.SOPInstanceUID)] = buf.getvalue()
        yield o, study, files


@pytest.fixture
def relaying(container: Container, fallback: tuple[OrthancServer, str, dict[str, bytes]]) -> Iterator[ImageForwarder]:
    user, password = next(iter(USERS.items()))
    peer = Peer(name=PEER_NAME, url=fallback[0].http_url + "/dicom-web", username=user, password=password, timeout=5.0)
    fw = ImageForwarder(peer, container.audit, container.clock, public_root="https://huren.example/dicom-web")
    container.imaging_forward = fw
    yield fw
    container.imaging_forward = None
    fw.close()


def test_the_doctors_viewer_shows_a_study_from_the_fallback(
    client: TestClient, container: Container, relaying: ImageForwarder, fallback: tuple[OrthancServer, str, dict[str, bytes]]
) -> None:
    _, study, _ = fallback
    tok = token(login(client, ORG_B))
    r = client.get(f"/ui/imaging/{study}", params={"token": tok})
    assert r.status_code == 200, r.text[-800:]
    page = text(r.text)
    assert "影像来自备用影像平台“区域影像云（备用）”" in page and "影像来源：区域影像云（备用）" in page
    assert "李四" in page and "CT" in page and "MR" in page
    assert re.search(r"1\s*/\s*2", page)  # the CT series first: two frames
    src = frame_src(r.text)
    assert src.startswith(f"/ui/imaging/{study}/relayed/series/") and "/frames/1/rendered?" in src and f"token={tok}" in src
    img = client.get(src)
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg" and img.content[:2] == b"\xff\xd8"
    assert unquote(img.headers["x-image-source"]) == PEER_NAME
    thumbs = re.findall(r'<img class="thumb" src="([^"]+)"', r.text)
    assert len(thumbs) == 2 and all(client.get(unescape(t)).status_code == 200 for t in thumbs)
    nxt = re.search(r'id="next" href="([^"]+)"', r.text)
    assert nxt
    r2 = client.get(unescape(nxt.group(1)))
    assert r2.status_code == 200 and frame_src(r2.text) != src and client.get(frame_src(r2.text)).status_code == 200
    with container.db.read() as conn:
        logged = conn.execute(select(access_log.c.org_code).where(access_log.c.action == "image.forward")).scalars().all()
    assert logged and set(logged) == {ORG_B[0]}


def test_neither_platform_holds_it_and_a_held_study_is_never_fetched_elsewhere(
    client: TestClient, container: Container, relaying: ImageForwarder, tmp_path: Path
) -> None:
    tok = token(login(client, ORG_B))
    r = client.get(f"/ui/imaging/{generate_uid()}", params={"token": tok})
    assert r.status_code == 404 and "均未找到" in text(r.text) and "<h1>" in r.text
    held = store_study(container, tmp_path)
    container.directory.add_org(*FAR_SUP[:4], user=FAR_SUP[4], password=FAR_SUP[5], role="supervisor")
    far = token(login(client, FAR_SUP))  # outside the region: as before, and not asked of the peer
    r = client.get(f"/ui/imaging/{held.uid}", params={"token": far})
    assert r.status_code in (403, 404) and "备用影像平台" not in r.text
    frame = f"/ui/imaging/{held.uid}/relayed/series/{held.ct}/instances/{next(iter(held.files))}/frames/1/rendered"
    assert client.get(frame, params={"token": tok}).status_code == 404  # held here: answered here only
    with container.db.read() as conn:
        assert not conn.execute(select(access_log.c.id).where(access_log.c.action == "image.forward",
                                                              access_log.c.target.like(f"%{held.uid}%"))).all()


def test_without_a_fallback_the_page_is_the_plain_not_found(
    client: TestClient, fallback: tuple[OrthancServer, str, dict[str, bytes]]
) -> None:
    r = client.get(f"/ui/imaging/{fallback[1]}", params={"token": token(login(client, ORG_B))})
    assert r.status_code == 404 and "未找到" in text(r.text) and "备用影像平台" not in text(r.text)


def test_a_film_whose_study_is_no_longer_held_is_shown_from_the_fallback(
    client: TestClient, container: Container, relaying: ImageForwarder, fallback: tuple[OrthancServer, str, dict[str, bytes]]
) -> None:
    """The film key was issued for a study held here; the study has since left this platform (its
    index rows removed, as an operator would): the film shows it from the fallback, without the
    download of original files; a film of a study neither holds is the film's not-found page."""
    _, study, files = fallback
    sender = Sender(ORG_A[0], f"stow:{ORG_A[0]}/test", "stow")
    for data in files.values():
        path = Path(container.settings.data_dir) / "in.dcm"
        path.write_bytes(data)
        container.imaging.store_instance(sender, path)
    container.imaging.commit_study(sender, study)
    key = container.imaging.issue_key(HIS_A, "film", study).key
    held = client.get(f"/film/{key}")
    assert held.status_code == 200 and "relayed-note" not in held.text and 'id="download"' in held.text
    with container.db.write() as conn:
        conn.execute(delete(image_study).where(image_study.c.study_uid == study))
    r = client.get(f"/film/{key}")
    assert r.status_code == 200, r.text[-800:]
    assert r.headers["referrer-policy"] == "no-referrer"
    page = text(r.text)
    assert "影像来自备用影像平台" in page and 'id="download"' not in r.text and "暂不能下载" in page
    src = frame_src(r.text)
    assert src.startswith(f"/film/{key}/relayed/series/")
    img = client.get(src)
    assert img.status_code == 200 and img.content[:2] == b"\xff\xd8"
    # a film of a study held here: its frames are answered here only, never by the relay route
    other = store_other(container)
    key2 = container.imaging.issue_key(HIS_A, "film", other).key
    assert client.get(src.replace(f"/film/{key}/", f"/film/{key2}/")).status_code == 404
    # the study has left this platform too, and the fallback never had it: the film's not-found page
    with container.db.write() as conn:
        conn.execute(delete(image_study).where(image_study.c.study_uid == other))
    gone = client.get(f"/film/{key2}")
    assert gone.status_code == 404 and "均未找到" in text(gone.text) and 'id="film-error"' in gone.text


def store_other(container: Container) -> str:
    """A second held study of hospital A (its film key reads only it)."""
    sender = Sender(ORG_A[0], f"stow:{ORG_A[0]}/test", "stow")
    ds = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = Path(container.settings.data_dir) / "other.dcm"
    ds.save_as(path)
    container.imaging.store_instance(sender, path)
    return str(ds.StudyInstanceUID)

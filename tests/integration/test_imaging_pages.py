"""The imaging pages (issue 12) on SQLite and PostgreSQL: the doctor's viewer ("查看影像" from an exam
report, within the access policy: another hospital's doctor sees it, a supervisor outside the region
does not), and the patient's cloud film (YB-4.3: the key in the URL; expired → 410, revoked → 403,
unknown → 404; the DICOM download a zip whose files equal the stored ones, with a DICOMDIR)."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_file
from pydicom.fileset import FileSet
from pydicom.uid import generate_uid
from sqlalchemy import select

from huren.bootstrap import Container
from huren.context import Principal
from huren.domain import access
from huren.services.imaging import Sender
from huren.store.tables import access_log
from tests import samples
from tests.conftest import ORG_A, ORG_B, SUPERVISOR, Api, login

NAME = "王小明"  # GB18030 in the files
DOC_A = (ORG_A[0], ORG_A[1], "", "", "doca", "doctor-a-password")
DOC_B = (ORG_B[0], ORG_B[1], "", "", "docb", "doctor-b-password")
FAR_SUP = ("652300000", "昌吉州卫生健康委员会", "652300", "3", "sup", "password-far")  # outside A's region 6501
HIS_A = Principal(ORG_A[0], ORG_A[4], "hospital")


@dataclass
class Study:
    uid: str
    ct: str
    mr: str
    files: dict[str, bytes]  # SOP Instance UID → the bytes as sent


def bundled(name: str) -> str:
    path = get_testdata_file(name)
    assert isinstance(path, str), name
    return path


def dicom_file(tmp: Path, base: str, study: str, series: str, number: int, *, name: str = NAME,
               accession: str = "0000544534") -> Path:
    """One of pydicom's bundled files under new UIDs, the patient named in GB18030."""
    ds = pydicom.dcmread(bundled(base))
    ds.SpecificCharacterSet = "GB18030"
    ds.PatientName, ds.PatientID, ds.AccessionNumber = name, "P-IMG-1", accession
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.InstanceNumber = number
    path = tmp / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def store_study(c: Container, tmp: Path, org: str = ORG_A[0]) -> Study:
    """Two CT slices and one MR image of one study, stored for ``org`` and committed."""
    sender = Sender(org, f"stow:{org}/test", "stow")
    uid, ct, mr = generate_uid(), generate_uid(), generate_uid()
    paths = [dicom_file(tmp, "CT_small.dcm", uid, ct, 1), dicom_file(tmp, "CT_small.dcm", uid, ct, 2),
             dicom_file(tmp, "MR_small.dcm", uid, mr, 1)]
    files = {}
    for p in paths:
        got = c.imaging.store_instance(sender, p)
        files[got.sop_uid] = p.read_bytes()
    c.imaging.commit_study(sender, uid)
    return Study(uid, ct, mr, files)


def exam_report(api: Api, study_uid: str, form_no: str = "IMG-1") -> str:
    """An exam report of hospital A whose study is ``study_uid``; its ref."""
    p = samples.exam()
    p["exammaster"]["study_instance_uid"] = study_uid
    p["exammaster"]["report_form_no"] = form_no
    for item in p["exam_subitem"]:
        item["report_form_no"] = form_no
    r = api.post("/api/v1/exam-reports", p)
    assert r.status_code == 200, r.text
    ref: str = r.json()["report_id"]
    return ref


def token(api: Api) -> str:
    return api.headers["Authorization"].split()[1]


def text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


def frame_src(html: str) -> str:
    m = re.search(r'<img id="frame" src="([^"]+)"', html)
    assert m, html[-2000:]
    return unescape(m.group(1))


@pytest.fixture
def world(container: Container, client: TestClient, tmp_path: Path) -> dict[str, Any]:
    container.directory.add_credential(DOC_A[0], DOC_A[4], DOC_A[5], role="doctor")
    container.directory.add_credential(DOC_B[0], DOC_B[4], DOC_B[5], role="doctor")
    container.directory.add_org(*FAR_SUP[:4], user=FAR_SUP[4], password=FAR_SUP[5], role="supervisor")
    study = store_study(container, tmp_path)
    a = login(client, ORG_A)
    ref = exam_report(a, study.uid)
    return {"study": study, "ref": ref, "a": a, "doc_a": login(client, DOC_A), "doc_b": login(client, DOC_B),
            "sup": login(client, SUPERVISOR), "far": login(client, FAR_SUP)}


def test_viewer_shows_the_study_to_another_hospitals_doctor(client: TestClient, world: dict[str, Any]) -> None:
    st: Study = world["study"]
    tok = token(world["doc_b"])  # mutual recognition: image.read ALL for clinical roles
    r = client.get(f"/ui/imaging/{st.uid}", params={"token": tok, "series": st.ct})
    assert r.status_code == 200, r.text[-800:]
    assert "script-src 'self'" in r.headers["content-security-policy"]
    page = text(r.text)
    assert NAME in page  # GB18030 in the files, normalised at ingest
    assert "影像来源：第一人民医院" in page
    assert "CT" in page and "MR" in page
    assert re.search(r"1\s*/\s*2", page)  # the CT series: two frames
    assert "<script>" not in r.text and 'src="/ui/static/viewer.js' in r.text  # no inline script
    src = frame_src(r.text)
    assert f"/dicom-web/studies/{st.uid}/series/{st.ct}/instances/" in src and "/frames/1/rendered?key=" in src
    img = client.get(src)
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg" and img.content[:2] == b"\xff\xd8"
    thumbs = re.findall(r'<img class="thumb" src="([^"]+)"', r.text)
    assert len(thumbs) == 2
    assert all(client.get(unescape(t)).status_code == 200 for t in thumbs)
    # the links keep the page's token; next frame and a window preset are plain links too
    nxt = re.search(r'id="next" href="([^"]+)"', r.text)
    assert nxt and f"token={tok}" in unescape(nxt.group(1)) and "i=1" in unescape(nxt.group(1))
    r2 = client.get(unescape(nxt.group(1)))
    assert r2.status_code == 200 and frame_src(r2.text) != src
    lung = re.search(r'href="([^"]+)" data-code="lung"', r.text)
    assert lung
    r3 = client.get(unescape(lung.group(1)))
    assert "window=-600,1500" in frame_src(r3.text)
    assert client.get(frame_src(r3.text)).status_code == 200
    # the MR series: 默认 and the file's windows, no CT presets
    r4 = client.get(f"/ui/imaging/{st.uid}", params={"token": tok, "series": st.mr})
    assert f"/series/{st.mr}/" in frame_src(r4.text) and 'data-code="lung"' not in r4.text
    own = re.search(r'href="([^"]+)" data-code="file1" data-window="600,1600">600/1600<', r4.text)  # MR_small's window
    assert own
    assert "window=600,1600" in frame_src(client.get(unescape(own.group(1))).text)


def test_report_view_links_to_the_viewer(client: TestClient, world: dict[str, Any]) -> None:
    st: Study = world["study"]
    tok = token(world["doc_b"])
    r = client.get(f"/ui/report/exam/{world['ref']}", params={"token": tok})
    assert r.status_code == 200, r.text[-500:]
    link = re.search(r'id="imaging-link" href="([^"]+)"', r.text)
    assert link and "查看影像" in r.text
    assert unescape(link.group(1)) == f"/ui/imaging/{st.uid}?token={tok}"
    # an exam report whose study the platform does not hold: no link
    other = exam_report(world["a"], generate_uid(), "IMG-2")
    r = client.get(f"/ui/report/exam/{other}", params={"token": tok})
    assert r.status_code == 200 and 'id="imaging-link"' not in r.text


def test_the_access_policy_decides(client: TestClient, world: dict[str, Any]) -> None:
    st: Study = world["study"]
    r = client.get(f"/ui/imaging/{st.uid}", params={"token": token(world["far"])})  # outside the region
    assert r.status_code in (403, 404) and "<h1>" in r.text and "key=" not in r.text
    assert re.search(r"[\u4e00-\u9fff]", text(r.text))
    r = client.get(f"/ui/imaging/{st.uid}", params={"token": token(world["doc_a"])})  # its own hospital
    assert r.status_code == 200 and 'id="report-link"' in r.text
    # a supervisor within the region: as the policy says of viewer keys (the page's images need one)
    r = client.get(f"/ui/imaging/{st.uid}", params={"token": token(world["sup"])})
    assert r.status_code == (200 if "supervisor" in access.roles_for("image_key.issue") else 403), r.text[-300:]
    r = client.get(f"/ui/imaging/{generate_uid()}", params={"token": token(world["doc_a"])})
    assert r.status_code == 404 and "未找到" in r.text
    r = client.get("/ui/imaging/1.2.x", params={"token": token(world["doc_a"])})
    assert r.status_code == 422 and "DICOM UID" in text(r.text)
    r = client.get(f"/ui/imaging/{st.uid}", follow_redirects=False)  # no token, no session: the login page
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")


def film_key(c: Container, study_uid: str) -> str:
    key: str = c.imaging.issue_key(HIS_A, "film", study_uid).key
    return key


def test_film_page_with_its_key(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    st: Study = world["study"]
    key = film_key(container, st.uid)
    r = client.get(f"/film/{key}")
    assert r.status_code == 200, r.text[-800:]
    assert r.headers["referrer-policy"] == "no-referrer"
    page = text(r.text)
    assert NAME in page and "影像来源：第一人民医院" in page and "下载原始影像（DICOM）" in page
    assert "/ui/login" not in r.text
    # the exam report behind the study: its findings and conclusion (and never the patient's ID number)
    m = samples.exam()["exammaster"]
    assert m["conclusion"] in page and m["image_descr"] in page
    assert samples.ID_NO not in r.text
    src = frame_src(r.text)
    assert f"key={key}" in src
    assert client.get(src).status_code == 200  # the images answer to the film key
    nxt = re.search(r'id="next" href="([^"]+)"', r.text)
    assert nxt and unescape(nxt.group(1)).startswith(f"/film/{key}?")
    # the opening is in the access log: the key's use and the study's reads, under the key
    with container.db.read() as conn:
        rows = conn.execute(select(access_log.c.action, access_log.c.username, access_log.c.target)).all()
    used = [r for r in rows if r.action == "image_key.use" and st.uid in (r.target or "")]
    assert len(used) == 1 and used[0].username.startswith("key:")
    assert {r.action for r in rows if r.username == used[0].username} >= {"image_key.use", "image.query", "image.retrieve"}


def test_film_download_is_the_original_files_with_a_dicomdir(client: TestClient, container: Container,
                                                             world: dict[str, Any], tmp_path: Path) -> None:
    st: Study = world["study"]
    key = film_key(container, st.uid)
    r = client.get(f"/film/{key}/download")
    assert r.status_code == 200, r.text[-500:]
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"].startswith("attachment")
    out = tmp_path / "unzipped"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        names = zf.namelist()
        assert "DICOMDIR" in names and len(names) == 1 + len(st.files)
        assert all(re.fullmatch(r"[A-Z0-9_]{1,8}", p) for n in names for p in n.split("/"))
        zf.extractall(out)
    fs = FileSet(pydicom.dcmread(out / "DICOMDIR"))
    try:
        got = {i.SOPInstanceUID: (out / Path(*i.FileID.replace("\\", "/").split("/"))).read_bytes() for i in fs}
        assert got == st.files  # byte-exact
        assert [str(n) for n in fs.find_values("PatientName")] == [NAME]
    finally:
        fs._stage["t"].cleanup()


def test_film_keys_expired_revoked_unknown(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    st: Study = world["study"]
    r = client.get("/film/AAAAAAAAAAAAAAAAAAAAAA")  # well-formed, never issued
    assert r.status_code == 404 and "链接不存在" in r.text
    assert client.get("/film/not-a-key").status_code == 404
    assert client.get("/film/AAAAAAAAAAAAAAAAAAAAAA/download").status_code == 404
    revoked = film_key(container, st.uid)
    container.imaging.revoke_key(HIS_A, revoked)
    r = client.get(f"/film/{revoked}")
    assert r.status_code == 403 and "撤销" in r.text
    assert client.get(f"/film/{revoked}/download").status_code == 403
    expiring = container.imaging.issue_key(HIS_A, "film", st.uid, ttl_seconds=60).key
    container.clock.offset += timedelta(minutes=2).total_seconds()
    try:
        r = client.get(f"/film/{expiring}")
        assert r.status_code == 410 and "链接已过期" in r.text
        assert client.get(f"/film/{expiring}/download").status_code == 410
    finally:
        container.clock.offset = 0.0
    viewer = container.imaging.issue_key(Principal(ORG_B[0], DOC_B[4], "doctor"), "viewer", st.uid).key
    r = client.get(f"/film/{viewer}")  # a viewer key is not a film link
    assert r.status_code == 403 and re.search(r"[\u4e00-\u9fff]", text(r.text))


def test_viewer_opened_with_a_viewing_institutions_key(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    """XC-E7: the viewing hospital's system gets a viewerKey and opens the viewer with it alone."""
    st: Study = world["study"]
    key = container.imaging.issue_key(Principal(ORG_B[0], DOC_B[4], "doctor"), "viewer", st.uid).key
    r = client.get(f"/ui/imaging/{st.uid}", params={"key": key, "series": st.ct})
    assert r.status_code == 200, r.text[-500:]
    assert NAME in text(r.text) and "退出登录" not in r.text and r.headers["referrer-policy"] == "no-referrer"
    src = frame_src(r.text)
    assert f"key={key}" in src and client.get(src).status_code == 200
    nxt = re.search(r'id="next" href="([^"]+)"', r.text)
    assert nxt and f"key={key}" in unescape(nxt.group(1)) and "token=" not in nxt.group(1)
    assert client.get(f"/ui/imaging/{generate_uid()}", params={"key": key}).status_code == 404  # one study only
    assert client.get(f"/ui/imaging/{st.uid}", params={"key": "AAAAAAAAAAAAAAAAAAAAAA"}).status_code == 404
    film = film_key(container, st.uid)
    assert client.get(f"/ui/imaging/{st.uid}", params={"key": film}).status_code == 403  # a film link is not a viewer key
    container.imaging.revoke_key(Principal(ORG_B[0], DOC_B[4], "doctor"), key)
    r = client.get(f"/ui/imaging/{st.uid}", params={"key": key})
    assert r.status_code == 403 and "撤销" in r.text


def test_a_multiframe_instance_is_paged_frame_by_frame(client: TestClient, container: Container, world: dict[str, Any],
                                                      tmp_path: Path) -> None:
    """One instance of two frames (RLE, colour): the viewer counts frames, not files; the zip keeps it as sent."""
    sender = Sender(ORG_A[0], f"stow:{ORG_A[0]}/test", "stow")
    uid, series = generate_uid(), generate_uid()
    path = dicom_file(tmp_path, "SC_rgb_rle_2frame.dcm", uid, series, 1)
    sop = container.imaging.store_instance(sender, path).sop_uid
    container.imaging.commit_study(sender, uid)
    tok = token(world["doc_b"])
    r = client.get(f"/ui/imaging/{uid}", params={"token": tok})
    assert r.status_code == 200, r.text[-500:]
    assert re.search(r"1\s*/\s*2", text(r.text))
    assert f"/instances/{sop}/frames/1/rendered" in frame_src(r.text)
    r2 = client.get(f"/ui/imaging/{uid}", params={"token": tok, "i": "1"})
    src = frame_src(r2.text)
    assert f"/instances/{sop}/frames/2/rendered" in src
    img = client.get(src)
    assert img.status_code == 200 and img.content[:2] == b"\xff\xd8"
    clamped = frame_src(client.get(f"/ui/imaging/{uid}", params={"token": tok, "i": "99"}).text)
    assert clamped.split("?")[0] == src.split("?")[0]  # the last frame (each page has a key of its own)
    key = film_key(container, uid)
    with zipfile.ZipFile(io.BytesIO(client.get(f"/film/{key}/download").content)) as zf:
        files = [n for n in zf.namelist() if n != "DICOMDIR"]
        assert [zf.read(n) for n in files] == [path.read_bytes()]

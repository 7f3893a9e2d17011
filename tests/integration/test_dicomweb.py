"""QIDO-RS, WADO-RS and STOW-RS under /dicom-web against studies stored through the imaging
service: filters and paging, byte-exact retrieves, metadata without the files, frames, rendered
images, STOW round trips and refusals."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydicom import dcmread
from pydicom.uid import generate_uid

from huren.bootstrap import Container
from tests.conftest import Api
from tests.integration.test_wado import problem, sample, store, variant

DW = "/dicom-web"
STOW_BOUNDARY = "test-boundary-7d1c"


@pytest.fixture
def world(container: Container, tmp_path: Path) -> dict[str, Any]:
    """CT (one series of two instances), MR (one instance), and a two-frame RGB image."""
    ct2 = variant(tmp_path, "CT_small.dcm", InstanceNumber=2)
    got = store(container, [sample("CT_small.dcm"), ct2, sample("MR_small.dcm"), sample("SC_rgb_rle_2frame.dcm")])
    return {"ct": got[0], "ct2": got[1], "mr": got[2], "rgb": got[3], "ct2_path": ct2}


def uids(rows: list[dict[str, Any]], tag: str) -> list[str]:
    return [r[tag]["Value"][0] for r in rows]


def parts(r: Any) -> list[tuple[dict[str, str], bytes]]:
    """An independent multipart/related parser for the answers."""
    ctype = r.headers["content-type"]
    assert ctype.startswith("multipart/related"), ctype
    boundary = next(p.split("=", 1)[1].strip('"') for p in ctype.split(";") if p.strip().startswith("boundary="))
    out = []
    for chunk in r.content.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, body = chunk[2:].partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        out.append(({k.lower(): v for k, v in headers.items()}, body[:-2]))
    return out


# -- QIDO-RS ---------------------------------------------------------------------------------------
def test_search_studies_and_filters(api_b: Api, world: dict[str, Any]) -> None:
    ct, mr = world["ct"], world["mr"]
    r = api_b.get(f"{DW}/studies")
    assert r.status_code == 200 and r.headers["content-type"] == "application/dicom+json"
    assert set(uids(r.json(), "0020000D")) == {ct.study_uid, mr.study_uid, world["rgb"].study_uid}

    def found(**q: str) -> set[str]:
        got = api_b.get(f"{DW}/studies", params=q)
        assert got.status_code == 200, got.text
        return set(uids(got.json(), "0020000D"))

    assert found(PatientID="1CT1") == {ct.study_uid}
    assert found(**{"00100020": "4MR1"}) == {mr.study_uid}
    assert found(PatientName="*MR1") == {mr.study_uid}
    assert found(PatientName="compressedsamples^c?1") == {ct.study_uid}
    assert found(StudyDate="20040101-20040331") == {ct.study_uid}
    assert found(StudyDate="20040801-") == {mr.study_uid, world["rgb"].study_uid}
    assert found(ModalitiesInStudy="MR") == {mr.study_uid}
    assert found(StudyInstanceUID=f"{ct.study_uid}\\{mr.study_uid}") == {ct.study_uid, mr.study_uid}
    assert found(PatientID="nobody") == set()
    ohif = api_b.get(f"{DW}/studies", params={"00100020": "*1CT1*", "limit": "101", "offset": "0"})
    assert set(uids(ohif.json(), "0020000D")) == {ct.study_uid} and "PatientID" in ohif.headers["warning"]
    assert api_b.get(f"{DW}/studies", params={"PatientID": "1CT*"}).status_code == 400
    assert found(PatientID="1CT1", includefield="00081030,00080060", fuzzymatching="true") == {ct.study_uid}
    study = api_b.get(f"{DW}/studies", params={"PatientID": "1CT1"}).json()[0]
    assert study["00201208"]["Value"] == [2] and study["00100010"]["Value"][0]["Alphabetic"] == "CompressedSamples^CT1"


def test_paging(api_a: Api, world: dict[str, Any]) -> None:
    everything = uids(api_a.get(f"{DW}/studies").json(), "0020000D")
    assert len(everything) == 3
    pages = [uids(api_a.get(f"{DW}/studies", params={"limit": "1", "offset": str(i)}).json(), "0020000D") for i in range(4)]
    assert [len(p) for p in pages] == [1, 1, 1, 0]
    assert [p[0] for p in pages[:3]] == everything


def test_unknown_key_warned_and_bad_values_400(api_a: Api, world: dict[str, Any]) -> None:
    r = api_a.get(f"{DW}/studies", params={"PatientID": "1CT1", "Bogus": "1", "患者": "x", 'a"b': "y"})
    assert r.status_code == 200 and len(r.json()) == 1 and "Bogus" in r.headers["warning"]
    assert "??" in r.headers["warning"] and 'a?b' in r.headers["warning"]  # a header stays ASCII and quoted
    for q, field in (({"limit": "-1"}, "limit"), ({"offset": "x"}, "offset"), ({"StudyDate": "2004"}, "StudyDate"),
                     ({"fuzzymatching": "maybe"}, "fuzzymatching")):
        r = api_a.get(f"{DW}/studies", params=q)
        assert r.status_code == 400, (q, r.text)
        assert problem(r)["field"] == field


def test_series_and_instances(api_a: Api, world: dict[str, Any]) -> None:
    ct = world["ct"]
    series = api_a.get(f"{DW}/studies/{ct.study_uid}/series").json()
    assert uids(series, "0020000E") == [ct.series_uid] and series[0]["00201209"]["Value"] == [2]
    assert api_a.get(f"{DW}/studies/{ct.study_uid}/series", params={"Modality": "MR"}).json() == []
    inst = api_a.get(f"{DW}/studies/{ct.study_uid}/series/{ct.series_uid}/instances").json()
    assert set(uids(inst, "00080018")) == {ct.sop_uid, world["ct2"].sop_uid}
    one = api_a.get(f"{DW}/studies/{ct.study_uid}/instances", params={"00080018": ct.sop_uid}).json()
    assert uids(one, "00080018") == [ct.sop_uid]
    top = api_a.get(f"{DW}/series", params={"PatientID": "4MR1"}).json()
    assert uids(top, "0020000E") == [world["mr"].series_uid]
    everywhere = api_a.get(f"{DW}/instances", params={"SOPInstanceUID": world["mr"].sop_uid}).json()
    assert uids(everywhere, "00080018") == [world["mr"].sop_uid]


def test_bad_and_unknown_uids(api_a: Api, world: dict[str, Any]) -> None:
    r = api_a.get(f"{DW}/studies/1.2.x/series")
    assert r.status_code == 400 and problem(r)["rule"] == "uid"
    r = api_a.get(f"{DW}/studies/1.2.3.4/series")
    assert r.status_code == 404 and problem(r)
    r = api_a.get(f"{DW}/studies/1.2.3.4/metadata")
    assert r.status_code == 404


def test_no_credentials_401(client: TestClient, world: dict[str, Any]) -> None:
    for path in ("/studies", f"/studies/{world['ct'].study_uid}/series/{world['ct'].series_uid}/metadata",
                 f"/studies/{world['ct'].study_uid}"):
        r = client.get(DW + path)
        assert r.status_code == 401 and problem(r)


# -- WADO-RS ---------------------------------------------------------------------------------------
def test_retrieve_byte_exact(api_b: Api, world: dict[str, Any]) -> None:
    ct = world["ct"]
    want = {sample("CT_small.dcm").read_bytes(), world["ct2_path"].read_bytes()}
    r = api_b.get(f"{DW}/studies/{ct.study_uid}", headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert r.status_code == 200 and 'type="application/dicom"' in r.headers["content-type"]
    got = parts(r)
    assert {b for _, b in got} == want
    assert all(h["content-type"].startswith("application/dicom; transfer-syntax=1.2.840.10008.1.2.1") for h, _ in got)
    series = parts(api_b.get(f"{DW}/studies/{ct.study_uid}/series/{ct.series_uid}"))
    assert {b for _, b in series} == want
    one = parts(api_b.get(f"{DW}/studies/{ct.study_uid}/series/{ct.series_uid}/instances/{ct.sop_uid}",
                          headers={"Accept": "multipart/related; type=application/dicom; transfer-syntax=*"}))
    assert [b for _, b in one] == [sample("CT_small.dcm").read_bytes()]
    single = api_b.get(f"{DW}/studies/{ct.study_uid}/series/{ct.series_uid}/instances/{ct.sop_uid}",
                       headers={"Accept": "application/dicom"})
    assert single.status_code == 200 and single.content == sample("CT_small.dcm").read_bytes()
    assert single.headers["content-type"].startswith("application/dicom; transfer-syntax=")
    # a single-part type is not an answer for a study (PS3.18 §10.4.4)
    assert api_b.get(f"{DW}/studies/{ct.study_uid}", headers={"Accept": "application/dicom"}).status_code == 406


def test_retrieve_refuses_other_transfer_syntax(api_a: Api, world: dict[str, Any]) -> None:
    ct = world["ct"]
    r = api_a.get(f"{DW}/studies/{ct.study_uid}",
                  headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'})
    assert r.status_code == 406 and problem(r)
    r = api_a.get(f"{DW}/studies/{ct.study_uid}", headers={"Accept": "application/dicom+xml"})
    assert r.status_code == 406


def test_metadata_from_the_index_not_the_files(container: Container, api_a: Api, world: dict[str, Any]) -> None:
    ct = world["ct"]
    shutil.rmtree(container.settings.data_dir / "blobs", ignore_errors=True)  # the files are gone
    for p in container.settings.data_dir.rglob("*"):
        if p.is_file() and p.suffix not in (".db", ".db-wal", ".db-shm"):
            p.write_bytes(b"corrupt")
    r = api_a.get(f"{DW}/studies/{ct.study_uid}/series/{ct.series_uid}/metadata")
    assert r.status_code == 200 and r.headers["content-type"] == "application/dicom+json", r.text
    items = r.json()
    assert set(uids(items, "00080018")) == {ct.sop_uid, world["ct2"].sop_uid}
    first = items[0]
    for tag in ("00280010", "00280011", "00280100", "00280004", "00080016", "0020000E"):
        assert tag in first, tag
    assert first["7FE00010"]["BulkDataURI"].endswith(
        f"/dicom-web/studies/{ct.study_uid}/series/{ct.series_uid}/instances/{first['00080018']['Value'][0]}/frames/1")
    assert "Value" not in first["7FE00010"]
    study = api_a.get(f"{DW}/studies/{ct.study_uid}/metadata").json()
    assert len(study) == 2
    one = api_a.get(f"{DW}/studies/{ct.study_uid}/series/{ct.series_uid}/instances/{ct.sop_uid}/metadata").json()
    assert uids(one, "00080018") == [ct.sop_uid]
    # and a retrieve of the missing files is a clean 404, never a 500
    gone = api_a.get(f"{DW}/studies/{ct.study_uid}/series/{ct.series_uid}/instances/{ct.sop_uid}/frames/1")
    assert gone.status_code in (404, 406) and problem(gone)


def test_metadata_gzip(api_a: Api, world: dict[str, Any]) -> None:
    ct = world["ct"]
    r = api_a.client.get(f"{DW}/studies/{ct.study_uid}/metadata", headers=api_a.headers | {"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert len(r.json()) == 2  # httpx undid the gzip
    raw = api_a.client.get(f"{DW}/studies/{ct.study_uid}/metadata", headers=api_a.headers | {"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers and raw.json() == r.json()
    assert gzip.decompress(gzip.compress(raw.content)) == raw.content


def test_frames(api_a: Api, world: dict[str, Any]) -> None:
    ct, rgb = world["ct"], world["rgb"]
    base = f"{DW}/studies/{ct.study_uid}/series/{ct.series_uid}/instances/{ct.sop_uid}"
    r = api_a.get(f"{base}/frames/1", headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"})
    assert r.status_code == 200
    [(headers, body)] = parts(r)
    assert body == dcmread(sample("CT_small.dcm")).PixelData and headers["content-type"].startswith("application/octet-stream")
    rb = f"{DW}/studies/{rgb.study_uid}/series/{rgb.series_uid}/instances/{rgb.sop_uid}"
    stored = parts(api_a.get(f"{rb}/frames/1,2", headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"}))
    assert len(stored) == 2 and all(h["content-type"].startswith("image/x-dicom-rle") for h, _ in stored)
    native = parts(api_a.get(f"{rb}/frames/2", headers={"Accept": 'multipart/related; type="application/octet-stream"'}))
    assert len(native[0][1]) == 100 * 100 * 3 and native[0][0]["content-type"].startswith("application/octet-stream")
    single = api_a.get(f"{base}/frames/1", headers={"Accept": "application/octet-stream; transfer-syntax=*"})
    assert single.status_code == 200 and single.headers["content-type"].startswith("application/octet-stream")
    assert single.content == dcmread(sample("CT_small.dcm")).PixelData
    jpeg = store_jpeg(api_a)
    r = api_a.get(jpeg, headers={"Accept": "image/jpeg"})
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8" and r.headers["content-type"].startswith("image/jpeg")
    named = api_a.get(jpeg, headers={"Accept": 'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50'})
    assert named.status_code == 200 and parts(named)[0][1] == r.content
    other = api_a.get(jpeg, headers={"Accept": 'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.70'})
    assert other.status_code == 406
    assert api_a.get(f"{base}/frames/2").status_code == 400
    assert api_a.get(f"{base}/frames/0").status_code == 400
    assert api_a.get(f"{base}/frames/1", headers={"Accept": "image/gif"}).status_code == 406


def store_jpeg(api: Api) -> str:
    c = api.client.app.state.container
    i = store(c, [sample("SC_rgb_jpeg_dcmtk.dcm")])[0]
    return f"{DW}/studies/{i.study_uid}/series/{i.series_uid}/instances/{i.sop_uid}/frames/1"


def test_rendered_and_thumbnail(api_a: Api, world: dict[str, Any]) -> None:
    ct = world["ct"]
    base = f"{DW}/studies/{ct.study_uid}/series/{ct.series_uid}/instances/{ct.sop_uid}"
    r = api_a.get(f"{base}/rendered")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (128, 128)
    png = api_a.get(f"{base}/rendered", params={"window": "40,400", "viewport": "64,64"}, headers={"Accept": "image/png"})
    assert png.headers["content-type"] == "image/png" and Image.open(io.BytesIO(png.content)).size == (64, 64)
    other = api_a.get(f"{base}/frames/1/rendered", params={"window": "300,50", "viewport": "64,64"}, headers={"Accept": "image/png"})
    assert not np.array_equal(np.asarray(Image.open(io.BytesIO(png.content))), np.asarray(Image.open(io.BytesIO(other.content))))
    for path in (f"{DW}/studies/{ct.study_uid}/thumbnail", f"{DW}/studies/{ct.study_uid}/series/{ct.series_uid}/thumbnail",
                 f"{base}/thumbnail", f"{base}/frames/1/thumbnail"):
        t = api_a.get(path)
        assert t.status_code == 200 and max(Image.open(io.BytesIO(t.content)).size) <= 128, path
    assert api_a.get(f"{base}/rendered", params={"window": "40"}).status_code == 400


# -- STOW-RS ---------------------------------------------------------------------------------------
def stow_body(*files: bytes, boundary: str = STOW_BOUNDARY, ctype: str = "application/dicom") -> bytes:
    out = b""
    for f in files:
        out += f"--{boundary}\r\nContent-Type: {ctype}\r\n\r\n".encode() + f + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={STOW_BOUNDARY}'


def stow(api: Api, body: bytes, path: str = "/studies", ctype: str = STOW_TYPE) -> Any:
    return api.client.post(DW + path, content=body, headers=api.headers | {"Content-Type": ctype})


def test_stow_round_trip(container: Container, api_a: Api, tmp_path: Path) -> None:
    files = [sample("CT_small.dcm").read_bytes(), variant(tmp_path, "CT_small.dcm", InstanceNumber=2).read_bytes()]
    r = stow(api_a, stow_body(*files))
    assert r.status_code == 200 and r.headers["content-type"] == "application/dicom+json", r.text
    body = r.json()
    refs = body["00081199"]["Value"]
    assert len(refs) == 2 and "00081198" not in body
    study = dcmread(io.BytesIO(files[0])).StudyInstanceUID
    assert body["00081190"]["Value"][0].endswith(f"/dicom-web/studies/{study}")
    assert all(ref["00081190"]["Value"][0].startswith(body["00081190"]["Value"][0] + "/series/") for ref in refs)
    got = parts(api_a.get(f"{DW}/studies/{study}"))
    assert sorted(b for _, b in got) == sorted(files)
    assert container.imaging.study_state(_principal_a(), study) == "complete"


def _principal_a() -> Any:
    from huren.context import Principal
    from tests.conftest import ORG_A
    return Principal(ORG_A[0], ORG_A[4], "hospital")


def test_stow_spool_removed(container: Container, api_a: Api) -> None:
    spool = container.settings.data_dir / "spool"
    stale = spool / "stow-crashed"
    stale.mkdir(parents=True)
    (stale / "part-00001.dcm").write_bytes(b"left by a crash")
    os.utime(stale, (time.time() - 7 * 3600, time.time() - 7 * 3600))
    assert stow(api_a, stow_body(sample("MR_small.dcm").read_bytes())).status_code == 200
    assert list(spool.iterdir()) == []  # this request's parts and the stale directory are gone


def test_stow_partial_and_failed(api_a: Api, tmp_path: Path) -> None:
    good = sample("MR_small.dcm").read_bytes()
    r = stow(api_a, stow_body(good, b"this is not DICOM at all" * 10))
    assert r.status_code == 202, r.text
    failed = r.json()["00081198"]["Value"]
    assert [f["00081197"]["Value"][0] for f in failed] == [0xC000]
    assert len(r.json()["00081199"]["Value"]) == 1
    r = stow(api_a, stow_body(sample("MR_small_RLE.dcm").read_bytes()[:2000]))
    assert r.status_code == 409 and r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]


def test_stow_to_a_study_checks_membership(api_a: Api, tmp_path: Path) -> None:
    ct = sample("CT_small.dcm").read_bytes()
    r = stow(api_a, stow_body(ct), path="/studies/1.2.3.4.5")
    assert r.status_code == 409
    item = r.json()["00081198"]["Value"][0]
    assert item["00081197"]["Value"] == [0xA900] and item["00081155"]["Value"] == [dcmread(io.BytesIO(ct)).SOPInstanceUID]
    study = dcmread(io.BytesIO(ct)).StudyInstanceUID
    assert stow(api_a, stow_body(ct), path=f"/studies/{study}").status_code == 200
    assert stow(api_a, stow_body(ct), path="/studies/1.x").status_code == 400


def test_stow_another_institutions_study(api_a: Api, api_b: Api) -> None:
    assert stow(api_a, stow_body(sample("CT_small.dcm").read_bytes())).status_code == 200
    mine = variant(Path(api_b.client.app.state.container.settings.data_dir), "CT_small.dcm").read_bytes()
    r = stow(api_b, stow_body(mine))
    assert r.status_code == 409 and r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0x0110]


def test_stow_refusals(container: Container, client: TestClient, api_a: Api, world: dict[str, Any]) -> None:
    ct = sample("CT_small.dcm").read_bytes()
    assert stow(api_a, stow_body(ct), ctype="application/dicom").status_code == 415
    assert stow(api_a, stow_body(ct), ctype='multipart/related; type="application/dicom+json"; boundary=x').status_code == 415
    r = api_a.client.post(f"{DW}/studies", content=gzip.compress(stow_body(ct)),
                          headers=api_a.headers | {"Content-Type": STOW_TYPE, "Content-Encoding": "gzip"})
    assert r.status_code == 415 and problem(r)["field"] == "Content-Encoding"
    r = stow(api_a, stow_body(ct), ctype='multipart/related; type="application/dicom"')
    assert r.status_code == 400 and problem(r)["field"] == "Content-Type"
    r = client.post(f"{DW}/studies", content=stow_body(ct), headers={"Content-Type": STOW_TYPE})
    assert r.status_code == 401 and problem(r)
    # a truncated body stores nothing
    fresh = variant(Path(container.settings.data_dir), "MR_small.dcm", StudyInstanceUID=generate_uid())
    truncated = stow_body(fresh.read_bytes())[:-30]
    r = stow(api_a, truncated)
    assert r.status_code == 400 and problem(r)
    assert api_a.get(f"{DW}/instances", params={"SOPInstanceUID": dcmread(fresh).SOPInstanceUID}).json() == []
    # no part at all
    assert stow(api_a, f"--{STOW_BOUNDARY}--\r\n".encode()).status_code == 400
    # a key may read, never write
    issued = container.imaging.issue_key(_principal_a(), "viewer", world["ct"].study_uid)
    r = client.post(f"{DW}/studies", params={"key": issued.key}, content=stow_body(ct), headers={"Content-Type": STOW_TYPE})
    assert r.status_code == 403 and problem(r)


def test_stow_part_over_the_limit(container: Container, api_a: Api, tmp_path: Path) -> None:
    container.settings.max_instance_bytes = 50_000
    big = variant(tmp_path, "CT_small.dcm", TextValue="x" * 60_000).read_bytes()
    r = stow(api_a, stow_body(big, sample("MR_small.dcm").read_bytes()))
    assert r.status_code == 202, r.text
    assert r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA700]


def test_keys_scope_queries_and_metadata(container: Container, client: TestClient, world: dict[str, Any]) -> None:
    ct = world["ct"]
    issued = container.imaging.issue_key(_principal_a(), "viewer", ct.study_uid)
    h = {"X-Image-Key": issued.key}
    studies = client.get(f"{DW}/studies", headers=h).json()
    assert uids(studies, "0020000D") == [ct.study_uid]
    assert client.get(f"{DW}/studies/{ct.study_uid}/series/{ct.series_uid}/metadata", headers=h).status_code == 200
    mr = world["mr"]
    assert client.get(f"{DW}/studies/{mr.study_uid}/series/{mr.series_uid}/metadata", headers=h).status_code == 404



def test_hostile_requests_never_500(api_a: Api, world: dict[str, Any]) -> None:
    ct = world["ct"]
    inst = f"{DW}/studies/{ct.study_uid}/series/{ct.series_uid}/instances/{ct.sop_uid}"
    wado = {"requestType": "WADO", "studyUID": ct.study_uid, "seriesUID": ct.series_uid, "objectUID": ct.sop_uid}
    gets: list[tuple[str, dict[str, str], dict[str, str]]] = [
        ("/wado", wado | {"region": "nan,0,1,1"}, {}),
        ("/wado", wado | {"frameNumber": "１"}, {}),
        ("/wado", wado | {"objectUID": "１.２"}, {}),
        ("/wado", wado | {"windowCenter": "inf", "windowWidth": "1"}, {}),
        ("/wado", wado | {"contentType": ",,,"}, {}),
        (f"{inst}/frames/1,,2", {}, {}),
        (f"{inst}/frames/99999999999999999999", {}, {}),
        (f"{inst}/frames/1", {}, {"Accept": 'multipart/related; type="'}),
        (f"{inst}/frames/1", {}, {"Accept": "multipart/related; q=abc"}),
        (f"{inst}/rendered", {"viewport": "99999,1"}, {}),
        (f"{inst}/rendered", {"quality": "0"}, {}),
        (f"{inst}/thumbnail", {"viewport": "a,b"}, {}),
        (f"{DW}/studies", {"PatientName": "x" * 300}, {}),
        (f"{DW}/studies", {"limit": "99999999999999999999999"}, {}),
        (f"{DW}/studies/{'1' * 65}/series", {}, {}),
        (f"{DW}/studies/{ct.study_uid}/series/{ct.series_uid}/metadata", {}, {"Accept": "text/html"}),
    ]
    for path, q, headers in gets:
        r = api_a.get(path, params=q, headers=headers)
        assert r.status_code < 500, (path, q, r.status_code, r.text)
        if r.status_code >= 400:
            assert problem(r), (path, q)
    for ctype in ('multipart/related; type="application/dicom"; boundary=' + "b" * 80,
                  'multipart/related; type="application/dicom"; boundary=""', "multipart/related; type"):
        r = stow(api_a, b"--x--", ctype=ctype)
        assert r.status_code in (400, 415), (ctype, r.text)
        assert problem(r)


def test_chinese_names_through_qido(container: Container, api_a: Api, tmp_path: Path) -> None:
    """GB18030, and GBK bytes in a file mislabelled ISO_IR 100, read right in QIDO and metadata."""
    gb = variant(tmp_path, "CT_small.dcm", SpecificCharacterSet="GB18030", PatientName="张三^",
                 PatientID="GB1", StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid())
    ds = dcmread(variant(tmp_path, "MR_small.dcm", PatientID="GBK1", StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid()))
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds["PatientName"].value = "李四".encode("gbk")  # the bytes a GBK system writes under a Latin-1 label
    mislabelled = tmp_path / "mislabelled.dcm"
    ds.save_as(mislabelled)
    got = store(container, [gb, mislabelled])
    for pid, name, stored in (("GB1", "张三", got[0]), ("GBK1", "李四", got[1])):
        [study] = api_a.get(f"{DW}/studies", params={"PatientID": pid}).json()
        assert study["00100010"]["Value"][0]["Alphabetic"].rstrip("^") == name
        assert study["00080005"]["Value"] == ["ISO_IR 192"]
        meta = api_a.get(f"{DW}/studies/{stored.study_uid}/metadata").json()
        assert meta[0]["00100010"]["Value"][0]["Alphabetic"].rstrip("^") == name
    r = api_a.get(f"{DW}/studies", params={"PatientName": "张*"})
    assert uids(r.json(), "0020000D") == [got[0].study_uid]
    assert "charset=" not in r.headers["content-type"]  # application/dicom+json is UTF-8 by definition
    assert "张三".encode() in r.content


def test_frames_of_a_large_multiframe_file(container: Container, api_a: Api, tmp_path: Path) -> None:
    """Ten 128×128 frames (320 KB of pixel data, read in place): each frame is its own slice."""
    ds = dcmread(sample("CT_small.dcm"))
    frame = np.frombuffer(ds.PixelData, dtype="<i2").reshape(128, 128)
    stack = np.stack([np.roll(frame, 7 * k, axis=1) for k in range(10)])
    ds.NumberOfFrames = 10
    ds.PixelData = stack.astype("<i2").tobytes()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = tmp_path / "multi.dcm"
    ds.save_as(path)
    i = store(container, [path])[0]
    base = f"{DW}/studies/{i.study_uid}/series/{i.series_uid}/instances/{i.sop_uid}"
    [(_, seventh)] = parts(api_a.get(f"{base}/frames/7"))
    assert seventh == stack[6].astype("<i2").tobytes()
    r = api_a.get(f"{base}/frames/7/rendered", params={"window": "40,400"}, headers={"Accept": "image/png"})
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (128, 128)
    assert api_a.get(f"{base}/frames/11").status_code == 400

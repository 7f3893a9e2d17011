"""WADO-URI (XC-E12) at /wado against studies stored through the imaging service: byte-exact
files, rendered JPEG / PNG, the parameters' rules, tokens and image keys, CORS."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from huren.api.app import create_app
from huren.bootstrap import Container
from huren.context import Principal
from huren.services.imaging import Sender, StoredInstance
from tests.conftest import ORG_A, ORG_B, Api

EXPLICIT_LE = "1.2.840.10008.1.2.1"


def sample(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(path)


def variant(tmp: Path, name: str, **changes: Any) -> Path:
    """A copy of a bundled file with some attributes changed (new SOP Instance UID by default)."""
    ds = dcmread(sample(name))
    ds.SOPInstanceUID = changes.pop("SOPInstanceUID", generate_uid())
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    out = tmp / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(out)
    return out


def store(c: Container, files: list[Path], org: str = ORG_A[0]) -> list[StoredInstance]:
    """Store files for ``org`` as a DICOM sender would, and commit their studies."""
    sender = Sender(org, f"dimse:{org}@127.0.0.1", "dimse")
    got = [c.imaging.store_instance(sender, f) for f in files]
    for study in {g.study_uid for g in got}:
        c.imaging.commit_study(sender, study)
    return got


def params(i: StoredInstance, **more: str) -> dict[str, str]:
    return {"requestType": "WADO", "studyUID": i.study_uid, "seriesUID": i.series_uid, "objectUID": i.sop_uid, **more}


@pytest.fixture
def ct(container: Container) -> StoredInstance:
    return store(container, [sample("CT_small.dcm")])[0]


def problem(r: Any) -> dict[str, str]:
    body = r.json()
    assert set(body) >= {"code", "message", "problems"}, body
    assert any("\u4e00" <= ch <= "\u9fff" for ch in body["message"]), body  # a Chinese message
    first: dict[str, str] = body["problems"][0]
    return first


def test_application_dicom_is_byte_exact(api_a: Api, api_b: Api, ct: StoredInstance) -> None:
    for api in (api_a, api_b):  # the owner, and another hospital (image.read: ALL)
        r = api.get("/wado", params=params(ct, contentType="application/dicom"))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/dicom"
        assert r.content == sample("CT_small.dcm").read_bytes()
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-disposition"].startswith("attachment")


def test_large_file_streamed_byte_exact(container: Container, api_a: Api, tmp_path: Path) -> None:
    big = variant(tmp_path, "CT_small.dcm", TextValue="x" * (1024 * 1024 + 10))  # UT: no 64 KB limit
    i = store(container, [big])[0]
    r = api_a.get("/wado", params=params(i, contentType="application/dicom"))
    assert r.status_code == 200 and r.content == big.read_bytes()


def test_default_is_jpeg_of_the_image_size(api_a: Api, ct: StoredInstance) -> None:
    r = api_a.get("/wado", params=params(ct))
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "JPEG" and img.size == (128, 128)
    small = Image.open(io.BytesIO(api_a.get("/wado", params=params(ct, rows="64", columns="32")).content))
    assert small.size == (32, 32)


def test_png_and_windowing_change_pixels(api_a: Api, ct: StoredInstance) -> None:
    def png(**kw: str) -> Any:
        r = api_a.get("/wado", params=params(ct, contentType="image/png", **kw))
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
        return np.asarray(Image.open(io.BytesIO(r.content)))

    soft, bone = png(windowCenter="40", windowWidth="400"), png(windowCenter="300", windowWidth="1500")
    assert soft.shape == (128, 128) and not np.array_equal(soft, bone)
    assert np.array_equal(png(windowCenter="40", windowWidth="400"), soft)
    assert png(region="0,0,0.5,0.5").shape == (64, 64)


def test_frames_of_a_multiframe_image(container: Container, api_a: Api) -> None:
    i = store(container, [sample("SC_rgb_rle_2frame.dcm")])[0]
    one = api_a.get("/wado", params=params(i, contentType="image/png", frameNumber="1"))
    two = api_a.get("/wado", params=params(i, contentType="image/png", frameNumber="2"))
    assert one.status_code == two.status_code == 200 and one.content != two.content
    assert np.asarray(Image.open(io.BytesIO(two.content))).shape == (100, 100, 3)
    r = api_a.get("/wado", params=params(i, frameNumber="3"))
    assert r.status_code == 400 and problem(r)["field"] == "frameNumber"


@pytest.mark.parametrize("missing", ["requestType", "studyUID", "seriesUID", "objectUID"])
def test_missing_parameter_named(api_a: Api, ct: StoredInstance, missing: str) -> None:
    q = params(ct)
    del q[missing]
    r = api_a.get("/wado", params=q)
    assert r.status_code == 400
    p = problem(r)
    assert p["field"] == missing and p["rule"] == "required" and missing in r.json()["message"]


@pytest.mark.parametrize(
    ("extra", "status", "field"),
    [
        ({"requestType": "WADO-RS"}, 400, "requestType"),
        ({"studyUID": "1.2.abc"}, 400, "studyUID"),
        ({"objectUID": "1." + "2" * 80}, 400, "objectUID"),
        ({"anonymize": "no"}, 400, "anonymize"),
        ({"anonymize": "yes", "contentType": "image/jpeg"}, 400, "anonymize"),
        ({"annotation": "patient,history"}, 400, "annotation"),
        ({"contentType": "application/dicom", "annotation": "patient"}, 400, "annotation"),
        ({"windowCenter": "40"}, 400, "windowWidth"),
        ({"windowCenter": "40", "windowWidth": "0"}, 400, "windowWidth"),
        ({"windowCenter": "x", "windowWidth": "1"}, 400, "windowCenter"),
        ({"rows": "0"}, 400, "rows"),
        ({"columns": "99999"}, 400, "columns"),
        ({"region": "0.5,0.5,0.2,0.9"}, 400, "region"),
        ({"imageQuality": "101"}, 400, "imageQuality"),
        ({"contentType": "application/dicom", "frameNumber": "1"}, 400, "frameNumber"),
        ({"contentType": "image/jpeg", "transferSyntax": EXPLICIT_LE}, 400, "transferSyntax"),
        ({"contentType": "text/html"}, 406, "contentType"),
        ({"contentType": "application/dicom", "transferSyntax": "1.2.840.10008.1.2.4.50"}, 406, "transferSyntax"),
        ({"contentType": "application/dicom", "transferSyntax": "1.2.840.10008.1.2.2"}, 406, "transferSyntax"),
    ],
)
def test_bad_parameters(api_a: Api, ct: StoredInstance, extra: dict[str, str], status: int, field: str) -> None:
    r = api_a.get("/wado", params=params(ct) | extra)
    assert r.status_code == status, r.text
    assert problem(r)["field"] == field


def test_unknown_instance_404(api_a: Api, ct: StoredInstance) -> None:
    r = api_a.get("/wado", params=params(ct) | {"objectUID": "1.2.3.4.5"})
    assert r.status_code == 404 and problem(r)
    r = api_a.get("/wado", params=params(ct) | {"seriesUID": "1.2.3.4.5", "contentType": "application/dicom"})
    assert r.status_code == 404


def test_transfer_syntax(container: Container, api_a: Api, tmp_path: Path) -> None:
    implicit = variant(tmp_path, "MR_small_implicit.dcm")
    i = store(container, [implicit])[0]
    assert i.transfer_syntax == "1.2.840.10008.1.2"
    same = api_a.get("/wado", params=params(i, contentType="application/dicom", transferSyntax=i.transfer_syntax))
    assert same.status_code == 200 and same.content == implicit.read_bytes()
    r = api_a.get("/wado", params=params(i, contentType="application/dicom", transferSyntax=EXPLICIT_LE))
    assert r.status_code == 200
    ds, src = dcmread(io.BytesIO(r.content)), dcmread(implicit)
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT_LE and ds.PixelData == src.PixelData
    assert ds.SOPInstanceUID == i.sop_uid


def test_charset_accepted(api_a: Api, ct: StoredInstance) -> None:
    r = api_a.get("/wado", params=params(ct, contentType="application/dicom", charset="UTF-8"))
    assert r.status_code == 200 and r.content == sample("CT_small.dcm").read_bytes()


def test_no_key_or_token_is_401(client: TestClient, ct: StoredInstance) -> None:
    r = client.get("/wado", params=params(ct, contentType="application/dicom"))
    assert r.status_code == 401 and problem(r)["field"] == "key"
    r = client.get("/wado", params=params(ct), headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401


def _principal(org: tuple[str, ...]) -> Principal:
    return Principal(org[0], org[4], "hospital")


def test_keys(container: Container, client: TestClient, ct: StoredInstance) -> None:
    other = store(container, [sample("MR_small.dcm")])[0]
    issued = container.imaging.issue_key(_principal(ORG_B), "download", ct.study_uid)
    q = params(ct, contentType="application/dicom")
    r = client.get("/wado", params=q | {"key": issued.key})
    assert r.status_code == 200 and r.content == sample("CT_small.dcm").read_bytes()
    r = client.get("/wado", params=params(ct), headers={"X-Image-Key": issued.key})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    # the key opens its own study only
    r = client.get("/wado", params=params(other, contentType="application/dicom", key=issued.key))
    assert r.status_code == 404 and problem(r)
    # an unknown key
    r = client.get("/wado", params=q | {"key": "A" * 22})
    assert r.status_code == 401 and problem(r)
    # revoked
    container.imaging.revoke_key(_principal(ORG_B), issued.key)
    r = client.get("/wado", params=q | {"key": issued.key})
    assert r.status_code == 403 and problem(r)


def test_expired_key_is_410(container: Container, client: TestClient, ct: StoredInstance) -> None:
    issued = container.imaging.issue_key(_principal(ORG_B), "viewer", ct.study_uid)
    q = params(ct, contentType="application/dicom", key=issued.key)
    assert client.get("/wado", params=q).status_code == 200
    container.clock.offset += container.settings.viewer_key_ttl_seconds + 1
    r = client.get("/wado", params=q)
    assert r.status_code == 410 and r.json()["code"] == "link_expired" and problem(r)


def test_cors_only_for_configured_origins(container: Container, ct: StoredInstance) -> None:
    container.settings.his_origins = "https://viewer.example.org"
    with TestClient(create_app(container)) as tc:
        token = tc.post("/api/v1/auth/token", json={"org_code": ORG_A[0], "username": ORG_A[4], "password": ORG_A[5]}).json()
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        good = tc.get("/wado", params=params(ct), headers=auth | {"Origin": "https://viewer.example.org"})
        assert good.status_code == 200 and good.headers["access-control-allow-origin"] == "https://viewer.example.org"
        bad = tc.get("/wado", params=params(ct), headers=auth | {"Origin": "https://evil.example.org"})
        assert bad.status_code == 200 and "access-control-allow-origin" not in bad.headers
        pre = tc.options("/dicom-web/studies", headers={
            "Origin": "https://viewer.example.org", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        assert pre.status_code == 204 and "Authorization" in pre.headers["access-control-allow-headers"]
        page = tc.get("/", headers={"Origin": "https://viewer.example.org"})
        assert "access-control-allow-origin" not in page.headers


def test_blob_gone_is_404_not_500(container: Container, api_a: Api, ct: StoredInstance) -> None:
    container.imaging._blobs.remove(ct.sha256)
    r = api_a.get("/wado", params=params(ct, contentType="application/dicom"))
    assert r.status_code == 404 and problem(r)


def _log(c: Container) -> list[dict[str, Any]]:
    from huren.store import audit as audit_store

    with c.db.read() as conn:
        return audit_store.list_access(conn, c.keys.fields(), limit=1000)


def test_reads_are_in_the_access_log_once_per_view(container: Container, client: TestClient, api_b: Api, ct: StoredInstance) -> None:
    before = {r["id"] for r in _log(container)}
    for _ in range(3):  # three frames of one view: one entry
        assert api_b.get("/wado", params=params(ct)).status_code == 200
    new = [r for r in _log(container) if r["id"] not in before and r["action"] == "image.retrieve"]
    assert len(new) == 1 and new[0]["org_code"] == ORG_B[0] and ct.study_uid in new[0]["target"]
    issued = container.imaging.issue_key(_principal(ORG_B), "viewer", ct.study_uid)
    seen = {r["id"] for r in _log(container)}
    assert client.get("/wado", params=params(ct, key=issued.key)).status_code == 200
    used = [r for r in _log(container) if r["id"] not in seen]
    assert any(r["action"] == "image.retrieve" and "key:" in str(r["username"]) for r in used), used


def test_default_content_type_follows_the_object(container: Container, api_a: Api, ct: StoredInstance) -> None:
    """PS3.18 §9: JPEG for a single-frame image the client accepts; the file for a multi-frame
    image or an object without pixel data; rendering parameters ask for JPEG."""
    multi = store(container, [sample("SC_rgb_rle_2frame.dcm")])[0]
    r = api_a.get("/wado", params=params(multi))
    assert r.headers["content-type"] == "application/dicom" and r.content == sample("SC_rgb_rle_2frame.dcm").read_bytes()
    r = api_a.get("/wado", params=params(multi, frameNumber="2"))
    assert r.headers["content-type"] == "image/jpeg"
    r = api_a.get("/wado", params=params(ct), headers={"Accept": "application/dicom"})
    assert r.headers["content-type"] == "application/dicom" and r.content == sample("CT_small.dcm").read_bytes()
    plan = store(container, [sample("rtplan.dcm")])[0]
    r = api_a.get("/wado", params=params(plan))
    assert r.status_code == 200 and r.content == sample("rtplan.dcm").read_bytes()
    r = api_a.get("/wado", params=params(plan, contentType="image/jpeg"))
    assert r.status_code == 406 and problem(r)["rule"] == "pixel_data"

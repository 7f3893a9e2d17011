"""WADO-RS rendered study and series (multipart, one part per frame, Content-Location), and the
compressed syntaxes through /rendered, /frames (as stored, or decoded) and transfer-syntax."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.uid import generate_uid

from huren.services.container import Container
from huren.services.imaging import StoredInstance
from tests.conftest import ORG_A, Api
from tests.integration.test_dicomweb import DW, parts
from tests.integration.test_dicomweb_client import client_for, server  # noqa: F401 (the fixture)
from tests.integration.test_wado import sample, store
from tests.integration.test_wado_anonymize import _copy, compressed  # noqa: F401 (the fixture)


def _into(tmp: Path, name: str, study: str, series: str, number: int) -> Path:
    ds = dcmread(sample(name))
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study, series, number
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    out = tmp / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(out)
    return out


@pytest.fixture
def study(container: Container, tmp_path: Path) -> dict[str, Any]:
    """One study: a series of two CT images, a series with a two-frame RGB image and an RT plan (no pixels)."""
    uid, ct, other = generate_uid(), generate_uid(), generate_uid()
    got = store(container, [_into(tmp_path, "CT_small.dcm", uid, ct, 1), _into(tmp_path, "CT_small.dcm", uid, ct, 2),
                            _into(tmp_path, "SC_rgb_rle_2frame.dcm", uid, other, 1), _into(tmp_path, "rtplan.dcm", uid, other, 2)])
    return {"study": uid, "ct": ct, "other": other, "files": got}


def _img(data: bytes) -> Any:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_rendered_study_one_part_per_frame(api_a: Api, study: dict[str, Any]) -> None:
    r = api_a.get(f"{DW}/studies/{study['study']}/rendered")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("multipart/related") and 'type="image/jpeg"' in r.headers["content-type"]
    got = parts(r)
    assert len(got) == 4  # 2 CT + 2 frames of the RGB image; the plan has no pixels
    assert all(h["content-type"] == "image/jpeg" and b[:2] == b"\xff\xd8" for h, b in got)
    ct1, ct2, rgb = study["files"][:3]
    where = [h["content-location"] for h, _ in got]
    base = api_a.client.app.state.container.settings.public_base + DW
    assert f"{base}/studies/{ct1.study_uid}/series/{ct1.series_uid}/instances/{ct1.sop_uid}/rendered" in where
    assert f"{base}/studies/{rgb.study_uid}/series/{rgb.series_uid}/instances/{rgb.sop_uid}/frames/2/rendered" in where
    one = api_a.get(f"{DW}/studies/{ct2.study_uid}/series/{ct2.series_uid}/instances/{ct2.sop_uid}/rendered")
    part = next(b for h, b in got if h["content-location"].endswith(f"{ct2.sop_uid}/rendered"))
    assert part == one.content  # the same rendering as the instance resource


def test_rendered_series_with_parameters(api_a: Api, study: dict[str, Any]) -> None:
    path = f"{DW}/studies/{study['study']}/series/{study['ct']}/rendered"
    r = api_a.get(path, params={"window": "40,400", "viewport": "64,64"}, headers={"Accept": 'multipart/related; type="image/png"'})
    assert r.status_code == 200, r.text
    got = parts(r)
    assert len(got) == 2 and all(h["content-type"] == "image/png" and _img(b).shape == (64, 64) for h, b in got)
    bone = parts(api_a.get(path, params={"window": "300,1500", "viewport": "64,64"}, headers={"Accept": "image/png"}))
    assert not np.array_equal(_img(got[0][1]), _img(bone[0][1]))
    rgb = parts(api_a.get(f"{DW}/studies/{study['study']}/series/{study['other']}/rendered"))
    assert len(rgb) == 2 and _img(rgb[0][1]).shape == (100, 100, 3) and rgb[0][1] != rgb[1][1]


def test_rendered_study_refusals(container: Container, api_a: Api, study: dict[str, Any], tmp_path: Path) -> None:
    assert api_a.get(f"{DW}/studies/{study['study']}/rendered", headers={"Accept": "image/gif"}).status_code == 406
    assert api_a.get(f"{DW}/studies/{study['study']}/rendered", params={"quality": "0"}).status_code == 400
    assert api_a.get(f"{DW}/studies/1.2.3.4.5/rendered").status_code == 404
    assert api_a.get(f"{DW}/studies/{study['study']}/series/1.2.3.4.5/rendered").status_code == 404
    plan = store(container, [_into(tmp_path, "rtplan.dcm", generate_uid(), generate_uid(), 1)])[0]
    r = api_a.get(f"{DW}/studies/{plan.study_uid}/rendered")
    assert r.status_code == 406 and r.json()["problems"][0]["rule"] == "pixel_data"


def test_study_and_series_thumbnails(api_a: Api, study: dict[str, Any]) -> None:
    for path in (f"{DW}/studies/{study['study']}/thumbnail", f"{DW}/studies/{study['study']}/series/{study['other']}/thumbnail"):
        r = api_a.get(path, headers={"Accept": "image/png"})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png" and max(_img(r.content).shape[:2]) <= 128


def test_rendered_study_needs_a_reader(client: Any, study: dict[str, Any]) -> None:
    assert client.get(f"{DW}/studies/{study['study']}/rendered").status_code == 401


@pytest.mark.parametrize("ts", ["1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
                                "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5"])
def test_compressed_through_wado_rs(container: Container, api_a: Api, compressed: dict[str, StoredInstance],  # noqa: F811
                                    ts: str, tmp_path: Path) -> None:
    ref = store(container, [_copy(tmp_path, sample("MR_small.dcm"))])[0]
    i = compressed[ts]
    base = f"{DW}/studies/{i.study_uid}/series/{i.series_uid}/instances/{i.sop_uid}"
    ref_base = f"{DW}/studies/{ref.study_uid}/series/{ref.series_uid}/instances/{ref.sop_uid}"
    png = {"Accept": "image/png"}
    assert np.array_equal(_img(api_a.get(f"{base}/rendered", headers=png).content), _img(api_a.get(f"{ref_base}/rendered", headers=png).content))
    assert api_a.get(f"{base}/frames/1/rendered").headers["content-type"] == "image/jpeg"
    pixels = dcmread(sample("MR_small.dcm")).PixelData
    [(h, native)] = parts(api_a.get(f"{base}/frames/1", headers={"Accept": 'multipart/related; type="application/octet-stream"'}))
    assert native == pixels and h["content-type"].startswith("application/octet-stream")
    [(h, stored)] = parts(api_a.get(f"{base}/frames/1", headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"}))
    assert h["content-type"].endswith(f"transfer-syntax={ts}") and stored != pixels
    r = api_a.get(base, headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1'})
    assert r.status_code == 200, r.text
    [(h, body)] = parts(r)
    ds = dcmread(io.BytesIO(body))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and ds.PixelData == pixels and ds.SOPInstanceUID == i.sop_uid
    assert h["content-type"].endswith("transfer-syntax=1.2.840.10008.1.2.1")


def test_dicomweb_client_retrieves_a_rendered_series(container: Container, server: str, study: dict[str, Any]) -> None:  # noqa: F811
    """dicomweb-client over real HTTP (it sends a bare ``Accept: image/jpeg`` and returns the body)."""
    dw = client_for(server, ORG_A)
    body = dw.retrieve_series_rendered(study["study"], study["ct"], media_types=("image/jpeg",))
    assert body.count(b"\r\nContent-Type: image/jpeg\r\n") == 2 and body.count(b"\xff\xd8\xff") == 2
    one = dw.retrieve_instance_rendered(study["study"], study["ct"], study["files"][0].sop_uid, media_types=("image/jpeg",))
    assert one[:2] == b"\xff\xd8" and one in body

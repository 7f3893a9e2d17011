"""WADO-URI (XC-E12) beyond the stored file: anonymize=yes (PS3.15 basic profile), annotation
burned in, transferSyntax made from compressed files, and compressed syntaxes rendered."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.uid import generate_uid

from huren.api import wado
from huren.services.container import Container
from huren.services.imaging import StoredInstance
from tests.conftest import ORG_B, Api
from tests.integration.test_wado import _log, params, problem, sample, store, variant

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"


def _identified(tmp: Path, name: str = "CT_small.dcm", **more: Any) -> Path:
    return variant(tmp, name, SpecificCharacterSet="ISO_IR 192", PatientName="Wang^Wu=王五", PatientID="110101198001011234",
                   PatientBirthDate="19800101", InstitutionName="新疆医科大学第一附属医院", ReferringPhysicianName="李医生", **more)


def _copy(tmp: Path, src: Path) -> Path:
    """The file with a new SOP Instance UID (its pixel data, compressed or not, as it was), without
    MR_small's trailing padding: the ingest check (wire/dicom.py) wants an encapsulated file to end
    with its sequence delimiter."""
    ds = dcmread(src)
    if 0xFFFCFFFC in ds:
        del ds[0xFFFCFFFC]
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    out = tmp / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(out)
    return out


@pytest.fixture
def compressed(container: Container, tmp_path: Path) -> dict[str, StoredInstance]:
    """MR_small.dcm in every lossless syntax (bundled, or made by dcmtk), each its own instance of one study."""
    made = {}
    for ts, option in (("1.2.840.10008.1.2.4.57", "+el"), ("1.2.840.10008.1.2.4.70", "+e1")):
        dst = tmp_path / f"{ts}.src.dcm"
        subprocess.run(["/usr/bin/dcmcjpeg", option, str(sample("MR_small.dcm")), str(dst)], check=True, capture_output=True)
        made[ts] = dst
    made |= {"1.2.840.10008.1.2.4.80": sample("MR_small_jpeg_ls_lossless.dcm"), "1.2.840.10008.1.2.4.90": sample("MR_small_jp2klossless.dcm"),
             "1.2.840.10008.1.2.5": sample("MR_small_RLE.dcm")}
    files = {ts: _copy(tmp_path, p) for ts, p in made.items()}
    got = store(container, list(files.values()))
    assert [g.transfer_syntax for g in got] == list(files)
    return dict(zip(files, got, strict=True))


def test_anonymized_file(container: Container, api_a: Api, tmp_path: Path) -> None:
    path = _identified(tmp_path)
    i = store(container, [path])[0]
    r = api_a.get("/wado", params=params(i, anonymize="yes"))  # contentType defaults to application/dicom
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/dicom"
    ds, src = dcmread(io.BytesIO(r.content)), dcmread(path)
    assert ds.PatientName == "ANONYMOUS" and ds.PatientID.startswith("ANON-") and not ds.get("PatientBirthDate")
    assert "InstitutionName" not in ds and not ds.get("ReferringPhysicianName")
    assert "王五".encode() not in r.content and b"110101198001011234" not in r.content
    assert ds.PixelData == src.PixelData and ds.PatientIdentityRemoved == "YES"
    assert ds.StudyInstanceUID.startswith("2.25.") and ds.StudyInstanceUID != i.study_uid
    assert ds.SOPInstanceUID in r.headers["content-disposition"] and i.sop_uid not in r.headers["content-disposition"]
    again = dcmread(io.BytesIO(api_a.get("/wado", params=params(i, anonymize="yes", contentType="application/dicom")).content))
    assert again.SOPInstanceUID == ds.SOPInstanceUID and again.StudyInstanceUID == ds.StudyInstanceUID  # per platform


def test_anonymized_series_stays_together(container: Container, api_a: Api, tmp_path: Path) -> None:
    first = _identified(tmp_path)
    second = _identified(tmp_path, StudyInstanceUID=dcmread(first).StudyInstanceUID, SeriesInstanceUID=dcmread(first).SeriesInstanceUID)
    a, b = store(container, [first, second])
    da = dcmread(io.BytesIO(api_a.get("/wado", params=params(a, anonymize="yes")).content))
    db = dcmread(io.BytesIO(api_a.get("/wado", params=params(b, anonymize="yes")).content))
    assert da.StudyInstanceUID == db.StudyInstanceUID and da.SeriesInstanceUID == db.SeriesInstanceUID
    assert da.SOPInstanceUID != db.SOPInstanceUID and da.PatientID == db.PatientID


def test_large_anonymized_file_streamed(container: Container, api_a: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wado, "SPOOL_BYTES", 64 * 1024)  # the stored file spooled to disk, beside the blobs
    rows = 1024  # 2 MiB of native pixels: the Pixel Data element copied from the spooled file
    big = _identified(tmp_path, Rows=rows, Columns=rows, PixelData=np.arange(rows * rows, dtype=np.uint16).tobytes())
    i = store(container, [big])[0]
    incoming = container.settings.data_dir / "blobs" / ".incoming"
    assert incoming.is_dir()
    r = api_a.get("/wado", params=params(i, anonymize="yes"))
    assert r.status_code == 200 and len(r.content) > 2 * rows * rows
    ds = dcmread(io.BytesIO(r.content))
    assert ds.PixelData == dcmread(big).PixelData and ds.PatientName == "ANONYMOUS"


def test_anonymized_and_transcoded(api_a: Api, compressed: dict[str, StoredInstance]) -> None:
    i = compressed["1.2.840.10008.1.2.4.80"]
    r = api_a.get("/wado", params=params(i, anonymize="yes", transferSyntax=EXPLICIT_LE))
    assert r.status_code == 200, r.text
    ds = dcmread(io.BytesIO(r.content))
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT_LE and ds.PatientName == "ANONYMOUS"
    assert ds.PixelData == dcmread(sample("MR_small.dcm")).PixelData


def test_anonymize_refusals(container: Container, api_a: Api, tmp_path: Path) -> None:
    i = store(container, [_identified(tmp_path, BurnedInAnnotation="YES")])[0]
    r = api_a.get("/wado", params=params(i, anonymize="yes"))
    assert r.status_code == 406 and problem(r)["rule"] == "burned_in"
    r = api_a.get("/wado", params=params(i, anonymize="yes", contentType="image/jpeg"))
    assert r.status_code == 400 and problem(r)["field"] == "anonymize"


def test_anonymized_read_is_logged(container: Container, api_b: Api, tmp_path: Path) -> None:
    i = store(container, [_identified(tmp_path)])[0]
    before = {r["id"] for r in _log(container)}
    assert api_b.get("/wado", params=params(i, anonymize="yes")).status_code == 200
    new = [r for r in _log(container) if r["id"] not in before]
    assert any(r["action"] == "image.retrieve" and r["org_code"] == ORG_B[0] and i.study_uid in r["target"] for r in new), new


def test_annotation_burned_in(container: Container, api_a: Api, tmp_path: Path) -> None:
    i = store(container, [_identified(tmp_path)])[0]

    def png(**kw: str) -> Any:
        r = api_a.get("/wado", params=params(i, contentType="image/png", rows="256", columns="256", **kw))
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
        return np.asarray(Image.open(io.BytesIO(r.content)))

    plain, patient, both = png(), png(annotation="patient"), png(annotation="patient,technique")
    assert not np.array_equal(plain[:40, :120], patient[:40, :120]) and np.array_equal(plain[:40, 150:], patient[:40, 150:])
    assert not np.array_equal(plain[:40, 150:], both[:40, 150:])
    jpeg = api_a.get("/wado", params=params(i, annotation="technique"))  # annotation asks for an image
    assert jpeg.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize("ts", ["1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
                                "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5"])
def test_compressed_rendered_like_the_reference(container: Container, api_a: Api, compressed: dict[str, StoredInstance], ts: str,
                                               tmp_path: Path) -> None:
    ref = store(container, [_copy(tmp_path, sample("MR_small.dcm"))])[0]
    i = compressed[ts]

    def png(x: StoredInstance) -> Any:
        r = api_a.get("/wado", params=params(x, contentType="image/png"))
        assert r.status_code == 200, r.text
        return np.asarray(Image.open(io.BytesIO(r.content)))

    assert np.array_equal(png(i), png(ref))
    assert api_a.get("/wado", params=params(i)).headers["content-type"] == "image/jpeg"
    for target in (EXPLICIT_LE, IMPLICIT_LE):
        r = api_a.get("/wado", params=params(i, contentType="application/dicom", transferSyntax=target))
        assert r.status_code == 200, r.text
        ds = dcmread(io.BytesIO(r.content))
        assert ds.file_meta.TransferSyntaxUID == target and ds.SOPInstanceUID == i.sop_uid
        assert ds.PixelData == dcmread(sample("MR_small.dcm")).PixelData

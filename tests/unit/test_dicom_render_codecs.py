"""Compressed pixel data decoded by the pydicom plugins (pylibjpeg-libjpeg, -openjpeg, -rle):
JPEG lossless (.57 / .70, made from MR_small.dcm by dcmtk's dcmcjpeg), JPEG-LS, JPEG 2000, RLE,
compared with the uncompressed reference; the transfer-syntax conversions of dicom_transcode."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file

from huren.wire import dicom_render as dr
from huren.wire import dicom_transcode as tc

REFERENCE = "MR_small.dcm"
#: transfer syntax → pydicom's bundled file of it, each MR_small.dcm compressed losslessly
BUNDLED = {
    "1.2.840.10008.1.2.4.80": "MR_small_jpeg_ls_lossless.dcm",
    "1.2.840.10008.1.2.4.90": "MR_small_jp2klossless.dcm",
    "1.2.840.10008.1.2.5": "MR_small_RLE.dcm",
}
#: transfer syntax → dcmcjpeg option (JPEG lossless: process 14, any predictor / selection value 1)
DCMCJPEG = {"1.2.840.10008.1.2.4.57": "+el", "1.2.840.10008.1.2.4.70": "+e1"}


def _path(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    assert path is not None, name
    return Path(path)


@pytest.fixture(scope="module")
def compressed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = {ts: _path(name).read_bytes() for ts, name in BUNDLED.items()}
    tmp = tmp_path_factory.mktemp("jpeg")
    for ts, option in DCMCJPEG.items():
        dst = tmp / f"{ts}.dcm"
        subprocess.run(["/usr/bin/dcmcjpeg", option, str(_path(REFERENCE)), str(dst)], check=True, capture_output=True)
        out[ts] = dst.read_bytes()
    return out


def _png(ds: Any, **kw: Any) -> np.ndarray[Any, Any]:
    return np.asarray(Image.open(io.BytesIO(dr.render(ds, dr.RenderOptions(fmt="png", **kw)))))


SYNTAXES = sorted([*BUNDLED, *DCMCJPEG])


@pytest.mark.parametrize("ts", SYNTAXES)
def test_decoded_like_the_uncompressed_reference(compressed: dict[str, bytes], ts: str) -> None:
    ds = dr.load(compressed[ts])
    assert str(ds.file_meta.TransferSyntaxUID) == ts
    ref = dr.load(_path(REFERENCE).read_bytes())
    assert dr.decoded_frame_bytes(ds, 1) == ref.PixelData  # lossless: the very samples
    for kw in ({}, {"window_center": 600.0, "window_width": 1600.0}, {"rows": 32, "columns": 32}):
        assert np.array_equal(_png(ds, **kw), _png(ref, **kw)), kw
    jpeg = Image.open(io.BytesIO(dr.render(ds, dr.RenderOptions())))
    assert jpeg.format == "JPEG" and jpeg.size == (64, 64)


@pytest.mark.parametrize("ts", SYNTAXES)
@pytest.mark.parametrize("target", sorted(tc.TARGETS))
def test_transcoded_to_native_little_endian(compressed: dict[str, bytes], ts: str, target: str) -> None:
    assert tc.can_transcode(ts, target)
    out = dcmread(io.BytesIO(tc.transcode(compressed[ts], target)))
    ref = dcmread(_path(REFERENCE))
    assert out.file_meta.TransferSyntaxUID == target
    assert out.PixelData == ref.PixelData and out.SOPInstanceUID == dcmread(io.BytesIO(compressed[ts])).SOPInstanceUID
    assert out.PhotometricInterpretation == "MONOCHROME2"


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_gdcm.dcm", "SC_rgb_gdcm_KY.dcm"])
def test_colour_lossless_equals_rle(name: str) -> None:
    """Colour: JPEG lossless (.70) and JPEG 2000 (.91, reversible) of the RGB image pydicom also
    bundles as RLE (no uncompressed twin is bundled): the same rendered pixels."""
    ds, ref = dr.load(_path(name).read_bytes()), dr.load(_path("SC_rgb_rle.dcm").read_bytes())
    assert _png(ds).shape == (100, 100, 3)
    assert np.array_equal(_png(ds), _png(ref))


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "JPEGLSNearLossless_16.dcm", "SC_rgb_jls_lossy_line.dcm", "JPGExtended.dcm"])
def test_lossy_and_near_lossless_render(name: str) -> None:
    """No uncompressed twin bundled: decoded, rendered to the image's size, not blank."""
    ds = dr.load(_path(name).read_bytes())
    img = _png(ds)
    assert img.shape[:2] == (int(ds.Rows), int(ds.Columns)) and img.std() > 0


def test_what_cannot_be_transcoded() -> None:
    assert not tc.can_transcode("1.2.840.10008.1.2.2", dr.EXPLICIT_LE)  # big endian: not converted
    assert not tc.can_transcode("1.2.840.10008.1.2.4.100", dr.EXPLICIT_LE)  # MPEG-2: no decoder
    assert not tc.can_transcode(dr.EXPLICIT_LE, "1.2.840.10008.1.2.4.50")  # never compressed on the fly
    assert tc.can_transcode("1.2.840.10008.1.2.1.99", dr.IMPLICIT_LE)
    with pytest.raises(dr.NotRenderable) as err:
        tc.transcode(_path("MR_small_bigendian.dcm").read_bytes(), dr.EXPLICIT_LE)
    assert err.value.status == 406 and err.value.problems[0].field == "transferSyntax"


def test_decoded_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tc, "MAX_DECODED_BYTES", 64 * 64 * 2 - 1)
    with pytest.raises(dr.NotRenderable, match="过大"):
        tc.transcode(_path("MR_small_RLE.dcm").read_bytes(), dr.EXPLICIT_LE)
    monkeypatch.setattr(tc, "MAX_DECODED_BYTES", 64 * 64 * 2)
    assert dcmread(io.BytesIO(tc.transcode(_path("MR_small_RLE.dcm").read_bytes(), dr.EXPLICIT_LE))).PixelData

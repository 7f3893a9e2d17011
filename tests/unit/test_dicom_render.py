"""Rendering frames of pydicom's bundled files: sizes, windowing (request, file, rescale),
MONOCHROME1, colour, frames and bulk data, the Explicit VR LE re-encoding."""

from __future__ import annotations

import io
import tempfile
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from huren.errors import InvalidInput
from huren.wire import dicom_render as dr
from huren.wire.dicom_transcode import to_explicit_le


def _bytes(name: str) -> bytes:
    path = get_testdata_file(name)
    assert path is not None
    with open(path, "rb") as fh:
        return fh.read()


def _ds(name: str) -> Dataset:
    return dr.load(_bytes(name))


def _png(ds: Dataset, **kw: Any) -> np.ndarray[Any, Any]:
    return np.asarray(Image.open(io.BytesIO(dr.render(ds, dr.RenderOptions(fmt="png", **kw)))))


def test_jpeg_has_the_image_size() -> None:
    img = Image.open(io.BytesIO(dr.render(_ds("CT_small.dcm"), dr.RenderOptions())))
    assert img.format == "JPEG" and img.size == (128, 128) and img.mode == "L"


def test_rows_columns_are_maxima_keeping_aspect() -> None:
    ds = _ds("CT_small.dcm")
    assert _png(ds, rows=64).shape == (64, 64)
    assert _png(ds, rows=50, columns=100).shape == (50, 50)
    assert _png(_ds("examples_palette.dcm"), columns=400).shape[:2] == (175, 400)  # 800 × 350 halved


def test_request_window_follows_the_linear_voi_function() -> None:
    ds = _ds("CT_small.dcm")
    values = dr.apply_rescale(ds.pixel_array, ds)
    got = _png(ds, window_center=40.0, window_width=400.0)
    assert np.array_equal(got, dr.window_linear(values, 40.0, 400.0))
    other = _png(ds, window_center=300.0, window_width=50.0)
    assert not np.array_equal(got, other)
    below, above = values <= 300 - 0.5 - 49 / 2, values > 300 - 0.5 + 49 / 2
    assert below.any() and above.any()
    assert (other[below] == 0).all() and (other[above] == 255).all()


def test_file_window_used_when_none_asked() -> None:
    ds = _ds("MR_small.dcm")  # WindowCenter 600, WindowWidth 1600
    assert np.array_equal(_png(ds), _png(ds, window_center=600.0, window_width=1600.0))
    assert not np.array_equal(_png(ds), _png(ds, window_center=100.0, window_width=200.0))


def test_rescale_applied_before_the_window() -> None:
    ds = _ds("MR_small.dcm")
    plain = _png(ds, window_center=600.0, window_width=1600.0)
    ds.RescaleSlope, ds.RescaleIntercept = 1, 1000
    assert np.array_equal(_png(ds, window_center=1600.0, window_width=1600.0), plain)
    assert not np.array_equal(_png(ds, window_center=600.0, window_width=1600.0), plain)


def test_monochrome1_inverted() -> None:
    ds = _ds("MR_small.dcm")
    normal = _png(ds)
    ds.PhotometricInterpretation = "MONOCHROME1"
    assert np.array_equal(_png(ds), 255 - normal)


def test_colour_images_are_rgb() -> None:
    for name in ("SC_rgb_rle_2frame.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_ybr_full_422_uncompressed.dcm", "examples_palette.dcm"):
        assert _png(_ds(name)).shape[-1] == 3, name
    # YBR_FULL_422 is converted once: the top-left pixel of pydicom's test image is red
    assert tuple(_png(_ds("SC_ybr_full_422_uncompressed.dcm"))[0, 0]) == (254, 0, 0)


def test_frame_numbers() -> None:
    ds = _ds("SC_rgb_rle_2frame.dcm")
    assert not np.array_equal(_png(ds, frame=1), _png(ds, frame=2))
    with pytest.raises(InvalidInput, match="1 到 2"):
        _png(ds, frame=3)


def test_region_crops() -> None:
    assert _png(_ds("CT_small.dcm"), region=(0.0, 0.0, 0.5, 0.25)).shape == (32, 64)


def test_thumbnail_small() -> None:
    img = Image.open(io.BytesIO(dr.thumbnail(_ds("examples_palette.dcm"))))
    assert max(img.size) == dr.THUMBNAIL_SIDE


def test_no_pixel_data_not_renderable() -> None:
    with pytest.raises(dr.NotRenderable) as err:
        dr.render(_ds("rtplan.dcm"), dr.RenderOptions())
    assert err.value.status == 406


def test_missing_codec_is_406_in_chinese() -> None:
    """A syntax no installed plugin decodes (MPEG-2 here: pydicom has no decoder for video)."""
    ds = _ds("MR_small_jpeg_ls_lossless.dcm")
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
    with pytest.raises(dr.NotRenderable, match="无法解码") as err:
        dr.render(ds, dr.RenderOptions())
    assert err.value.status == 406 and err.value.problems[0].rule == "codec"


def test_native_frame_bytes() -> None:
    ds = _ds("MR_small.dcm")
    data, media, ts = dr.frame_bytes(ds, 1)
    assert data == ds.PixelData and media == "application/octet-stream" and ts == dr.EXPLICIT_LE
    big, _, _ = dr.frame_bytes(_ds("MR_small_bigendian.dcm"), 1)
    assert big == data  # swapped to little endian
    frames = _ds("SC_rgb_rle_2frame.dcm")
    assert dr.decoded_frame_bytes(frames, 2) != dr.decoded_frame_bytes(frames, 1)


def test_encapsulated_frames_as_stored_or_decoded() -> None:
    data, media, ts = dr.frame_bytes(_ds("SC_rgb_jpeg_dcmtk.dcm"), 1)
    assert data[:2] == b"\xff\xd8" and media == "image/jpeg" and ts == "1.2.840.10008.1.2.4.50"
    _, media, _ = dr.frame_bytes(_ds("MR_small_RLE.dcm"), 1)
    assert media == "image/x-dicom-rle"
    assert dr.decoded_frame_bytes(_ds("MR_small_RLE.dcm"), 1) == _ds("MR_small.dcm").PixelData


def test_implicit_to_explicit_le() -> None:
    raw = _bytes("MR_small_implicit.dcm")
    out = dcmread(io.BytesIO(to_explicit_le(raw)))
    src = dcmread(io.BytesIO(raw))
    assert out.file_meta.TransferSyntaxUID == dr.EXPLICIT_LE
    assert out.PixelData == src.PixelData and out.PatientName == src.PatientName
    assert [e.tag for e in out] == [e.tag for e in src]


def test_header_uids() -> None:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    study, cls, sop = dr.header_uids(path)
    assert cls == "1.2.840.10008.5.1.4.1.1.2" and study and sop and study.startswith("1.3.6.1.4.1.5962")
    assert dr.header_uids(__file__) == (None, None, None)


@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_bigendian.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_jpeg_dcmtk.dcm",
                                  "JPEG2000.dcm", "rtdose.dcm", "SC_ybr_full_422_uncompressed.dcm"])
def test_frames_read_in_place_equal_frames_read_whole(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With Pixel Data left in the file (deferred), each frame is read alone from the open file,
    and equals the frame cut from the value read whole."""
    whole = _ds(name)
    monkeypatch.setattr(dr, "DEFER_BYTES", 64)
    with tempfile.SpooledTemporaryFile(max_size=1024) as fh:  # as the API spools a stored file
        fh.write(_bytes(name))
        fh.seek(0)
        lazy = dr.load(fh)  # type: ignore[arg-type]
        assert dr._deferred_pixels(lazy) is not None
        for frame in range(1, dr.number_of_frames(whole) + 1):
            assert dr.frame_bytes(lazy, frame) == dr.frame_bytes(whole, frame), frame
        assert dr.render(lazy, dr.RenderOptions(fmt="png")) == dr.render(whole, dr.RenderOptions(fmt="png"))
    raw = _bytes("MR_small_implicit.dcm")
    assert to_explicit_le(raw) == (monkeypatch.undo() or to_explicit_le(raw))

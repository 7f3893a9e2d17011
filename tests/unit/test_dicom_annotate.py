"""Burned-in annotation (WADO-URI ``annotation=patient,technique``): the lines, Chinese names read
with the platform's character-set rule, drawn with a CJK font (distinct glyphs, not boxes)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from huren.wire import dicom_annotate as ann
from huren.wire import dicom_render as dr


def _ds(name: str = "MR_small.dcm") -> Dataset:
    path = get_testdata_file(name, download=False)
    assert path is not None
    with open(path, "rb") as fh:
        return dr.load(fh.read())


def _png(ds: Dataset, **kw: Any) -> np.ndarray[Any, Any]:
    opts = dr.RenderOptions(fmt="png", rows=256, columns=256, **kw)
    return np.asarray(Image.open(io.BytesIO(dr.render(ds, opts))))


def test_cjk_font_installed() -> None:
    assert ann.FONT_PATH is not None and "CJK" in ann.FONT_PATH  # fonts-noto-cjk on this machine


def test_patient_lines_read_chinese() -> None:
    ds = _ds()
    ds.SpecificCharacterSet, ds.PatientName, ds.PatientID = "ISO_IR 192", "Zhang^San=张三", "P001"
    ds.PatientSex, ds.PatientBirthDate = "F", "19800102"
    assert ann.patient_lines(ds) == ["姓名：张三", "ID：P001", "女 生于 1980-01-02"]


def test_mislabelled_gb18030_name_is_read_as_chinese() -> None:
    """Bytes in GB18030 labelled ISO_IR 100, as Chinese modalities write them."""
    from pydicom import dcmread
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    path = get_testdata_file("MR_small.dcm", download=False)
    assert path is not None
    ds = dcmread(path, defer_size=1024)
    raw = "李四".encode("gb18030")
    ds._dict[Tag(0x00100010)] = RawDataElement(Tag(0x00100010), "PN", len(raw), raw, 0, False, True)
    ds._dict[Tag(0x00080005)] = RawDataElement(Tag(0x00080005), "CS", 10, b"ISO_IR 100", 0, False, True)
    assert ann.patient_lines(ds)[0] == "姓名：李四"


def test_technique_lines() -> None:
    ds = _ds()
    lines = ann.technique_lines(ds, 1, 1, (40.0, 400.0))
    assert lines[0] == "MR 帧 1/1" and lines[1] == "窗位 40 窗宽 400"


def test_annotation_is_burned_in_and_names_differ() -> None:
    ds = _ds()
    ds.SpecificCharacterSet = "ISO_IR 192"
    plain = _png(ds)
    ds.PatientName = "张三"
    zhang = _png(ds, annotation=frozenset({"patient"}))
    ds.PatientName = "李四"
    li = _png(ds, annotation=frozenset({"patient"}))
    both = _png(ds, annotation=frozenset({"patient", "technique"}))
    assert zhang.shape == plain.shape
    top_left = (slice(0, 40), slice(0, 128))
    assert not np.array_equal(zhang[top_left], plain[top_left])  # text drawn
    assert not np.array_equal(zhang[top_left], li[top_left])  # distinct CJK glyphs, not the same missing-glyph boxes
    assert np.array_equal(zhang[100:, :], plain[100:, :])  # only the corners are written
    top_right = (slice(0, 40), slice(160, 256))
    assert np.array_equal(li[top_right], plain[top_right]) and not np.array_equal(both[top_right], plain[top_right])


def test_colour_image_annotated() -> None:
    img = _png(_ds("SC_rgb_rle.dcm"), annotation=frozenset({"technique"}))
    assert img.shape[-1] == 3


@pytest.mark.parametrize("side", [16, 64, 2048])
def test_font_scales_with_the_image(side: int) -> None:
    img = Image.new("L", (side, side))
    out = ann.burn(img, ["姓名：张三"], [])
    assert out.size == img.size and np.asarray(out).max() > 150  # white text (anti-aliased at small sizes)

"""Encapsulated (compressed) pixel data at ingest: a file whose pixel data is followed by other
elements (Data Set Trailing Padding, as dcmtk's dcmcjpeg and pydicom's own samples write) is kept;
one cut short anywhere — inside a fragment, before the delimiter, inside the trailing elements — is not."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from huren.errors import InvalidInput
from huren.wire import dicom

SAMPLES = ("MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm")


def _read(data: bytes) -> object:
    return dicom.read_header(io.BytesIO(data), len(data))


@pytest.mark.parametrize("name", SAMPLES)
def test_trailing_elements_after_encapsulated_pixel_data_are_kept(name: str) -> None:
    data = Path(str(get_testdata_file(name))).read_bytes()
    assert not data.endswith(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")  # the sample has elements after its pixels
    rec = _read(data)
    assert rec.metadata["7FE00010"] == {"vr": "OB"}  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", SAMPLES)
def test_cut_short_anywhere_is_refused(name: str) -> None:
    data = Path(str(get_testdata_file(name))).read_bytes()
    delim = data.rindex(b"\xfe\xff\xdd\xe0")
    for cut in (delim - 100, delim + 4, len(data) - 3):
        with pytest.raises(InvalidInput) as exc:
            _read(data[:cut])
        assert exc.value.problems[0].rule == "dicom", cut

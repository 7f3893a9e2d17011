"""huren.wire.dicom_walk: the struct header walk gives the same InstanceRecord (or the same refusal)
as the pydicom read, for pydicom's own test files, the demo corpus (GB18030 / UTF-8 names, a GBK
file labelled ISO_IR 100) and those files cut short or damaged; and it does take the fast path
for the common transfer syntaxes."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.uid import UID

from bench.corpus import make_corpus
from huren.errors import HurenError
from huren.wire import dicom, dicom_walk
from tests.unit.test_dicom_wire import with_name


def _outcome(data: bytes, *, fast: bool, check_media: bool) -> object:
    try:
        return dicom._read(io.BytesIO(data), len(data), check_media, fast=fast)
    except HurenError as exc:
        return (type(exc).__name__, str(exc), [(p.field, p.rule, p.message) for p in exc.problems])


def _walks(data: bytes) -> bool:
    fh = io.BytesIO(data)
    return dicom._walk(fh, len(data)) is not None


def _same(data: bytes) -> bool:
    """Both reads agree (with and without the media check); whether the fast walk took it."""
    for check_media in (False, True):
        fast, slow = _outcome(data, fast=True, check_media=check_media), _outcome(data, fast=False, check_media=check_media)
        assert fast == slow
    return _walks(data)


def _part10(path: str) -> bytes | None:
    if not Path(path).is_file():
        return None
    data = Path(path).read_bytes()
    return data if data[128:132] == b"DICM" else None


PYDICOM_FILES = sorted(p for p in get_testdata_files() if _part10(p) is not None)


@pytest.mark.parametrize("path", PYDICOM_FILES, ids=lambda p: Path(p).name)
def test_pydicom_test_files_read_the_same(path: str) -> None:
    data = _part10(path)
    assert data is not None
    _same(data)


def test_most_pydicom_files_take_the_fast_path() -> None:
    fast = [p for p in PYDICOM_FILES if _walks(Path(p).read_bytes())]
    # big endian, deflated and the odd ones go to pydicom; the common syntaxes do not
    assert len(fast) >= len(PYDICOM_FILES) // 2, (len(fast), len(PYDICOM_FILES))
    names = {Path(p).name for p in fast}
    assert {"CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "rtplan.dcm"} <= names
    assert "MR_small_bigendian.dcm" not in names and "image_dfl.dcm" not in names


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    c = make_corpus(tmp_path_factory.mktemp("corpus"), patients=6, instances=3)
    return [i.path.read_bytes() for i in c.instances]


def test_demo_corpus_reads_the_same_on_the_fast_path(corpus_files: list[bytes]) -> None:
    charsets = set()
    for data in corpus_files:
        assert _same(data)
        charsets.add(dicom._read(io.BytesIO(data), len(data)).charset)
    assert charsets == {"GB18030", "ISO_IR 192"}


@pytest.mark.parametrize(("name", "charset", "label"), [
    ("张^伟", "GB18030", None), ("李^娜", "ISO_IR 192", None), ("王^芳", "GBK", "ISO_IR 100"),
    ("王^芳", "GBK", ""), ("Müller^Hans", "ISO_IR 100", None), ("欧阳^娜娜", "GB18030", "ISO_IR 192"),
])
def test_charsets_and_mislabelled_files_read_the_same(name: str, charset: str, label: str | None) -> None:
    data = with_name(name, charset, label=label)
    assert _same(data)


def test_implicit_vr_and_sequences_of_undefined_length_read_the_same() -> None:
    ds = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    item = Dataset()
    item.CodeValue, item.CodeMeaning = "T-D3000", "胸部"
    ds.SpecificCharacterSet = "GB18030"
    ds.AnatomicRegionSequence = Sequence([item])
    for implicit in (True, False):
        buf = io.BytesIO()
        ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1")
        ds.save_as(buf, implicit_vr=implicit, little_endian=True)
        data = buf.getvalue()
        assert _same(data)
        rec = dicom._read(io.BytesIO(data), len(data))
        assert rec.metadata["00082218"]["Value"][0]["00080104"]["Value"] == ["胸部"]


def test_cut_short_and_damaged_files_are_refused_the_same(corpus_files: list[bytes]) -> None:
    rng = random.Random(7)
    samples = [corpus_files[0], corpus_files[-1], Path(str(get_testdata_file("JPEG2000.dcm"))).read_bytes(),
               Path(str(get_testdata_file("rtplan.dcm"))).read_bytes()]
    refused = 0
    for data in samples:
        for cut in sorted({1, 100, 131, 132, 140, 200, 300, 400, 600, 1000, len(data) // 2, len(data) - 1,
                           *(rng.randrange(1, len(data)) for _ in range(25))}):
            if cut < len(data):
                _same(data[:cut])
                refused += isinstance(_outcome(data[:cut], fast=True, check_media=False), tuple)
        for _ in range(40):  # one byte changed in the header: a VR, a length, a tag
            at = rng.randrange(128, min(len(data), 2000))
            damaged = bytearray(data)
            damaged[at] = rng.randrange(256)
            _same(bytes(damaged))
        bad_preamble = data[:128] + b"DICX" + data[132:]
        assert isinstance(_outcome(bad_preamble, fast=True, check_media=False), tuple)
        _same(bad_preamble)
    assert refused > 40


def test_walk_leaves_the_file_at_pixel_data() -> None:
    data = Path(str(get_testdata_file("CT_small.dcm"))).read_bytes()
    fh = io.BytesIO(data)
    walked = dicom_walk.walk(fh, len(data), dicom.DEFER_SIZE)
    assert walked is not None and walked.transfer_syntax == "1.2.840.10008.1.2.1"
    assert data[fh.tell() : fh.tell() + 4] == b"\xe0\x7f\x10\x00"
    ref = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, defer_size=dicom.DEFER_SIZE)
    assert dict(walked.dataset._dict) == dict(ref._dict)


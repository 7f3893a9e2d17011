"""De-identification per the PS3.15 basic profile (dicom_anonymize): identity attributes gone or
emptied, UIDs replaced consistently per platform secret, private and trailing attributes removed,
Pixel Data copied byte for byte (also from the file, not read), a valid file (dcmtk's dcmdump)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from huren.wire import dicom_anonymize as an

SECRET = bytes(range(32))
IDENTITY = ("PatientBirthDate", "PatientSex", "InstitutionName", "InstitutionAddress",
            "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "StationName", "AccessionNumber",
            "StudyID", "StudyDate", "StudyTime", "OtherPatientIDs", "PatientAddress", "PatientTelephoneNumbers",
            "DeviceSerialNumber", "StudyDescription", "PatientAge")


def _path(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    assert path is not None, name
    return Path(path)


def _identified(src: str, tmp: Path) -> Path:
    """A bundled file given a full Chinese identity, a private block, a nested reference and padding."""
    ds = dcmread(_path(src))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Zhang^San=张三", "110101199001011234", "19900101", "M"
    ds.InstitutionName, ds.InstitutionAddress = "北京协和医院", "北京市东城区帅府园1号"
    ds.ReferringPhysicianName, ds.PerformingPhysicianName, ds.OperatorsName = "李医生", "王医生", "赵技师"
    ds.StationName, ds.AccessionNumber, ds.StudyID, ds.PatientAge = "CT01", "A123", "S9", "036Y"
    ds.OtherPatientIDs, ds.PatientAddress, ds.PatientTelephoneNumbers = "OTHER1", "北京", "13800000000"
    ds.DeviceSerialNumber, ds.StudyDescription = "SN-1", "胸部CT 张三"
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ds.SOPClassUID, "1.2.3.4.5.6.7"
    ref.PatientName = "嵌套^姓名"
    ds.ReferencedImageSequence = Sequence([ref])
    block = ds.private_block(0x0009, "HUREN TEST", create=True)
    block.add_new(0x01, "LO", "张三的私有信息")
    ds.add_new(0xFFFCFFFC, "OB", b"\0" * 8)  # trailing padding, after Pixel Data
    out = tmp / f"{src}.id.dcm"
    ds.save_as(out, enforce_file_format=True)
    return out


def _anonymized(path: Path, secret: bytes = SECRET) -> tuple[bytes, Dataset]:
    with path.open("rb") as fh:
        data = b"".join(an.anonymize(fh, secret))
    return data, dcmread(io.BytesIO(data))


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_jp2klossless.dcm", "SC_rgb_rle_2frame.dcm", "MR_small_implicit.dcm",
                                  "JPEG2000.dcm", "MR_small_bigendian.dcm"])
@pytest.mark.parametrize("defer", [64 * 1024, 16])  # Pixel Data read with the header / copied from the file
def test_identity_removed_pixels_kept(name: str, defer: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(an, "DEFER_BYTES", defer)
    src_path = _identified(name, tmp_path)
    src = dcmread(src_path)
    data, out = _anonymized(src_path)
    for keyword in IDENTITY:
        assert not out.get(keyword), (keyword, out.get(keyword))
    assert "张三" not in data.decode("utf-8", "replace") and b"110101199001011234" not in data
    assert out.PatientName == "ANONYMOUS" and out.PatientID.startswith("ANON-")
    assert out.PatientIdentityRemoved == "YES" and out.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert out.PixelData == src.PixelData and out.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID
    assert out.SOPClassUID == src.SOPClassUID and out.Rows == src.Rows
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert out[keyword].value == an.pseudonym_uid(src[keyword].value, SECRET) != src[keyword].value
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    item = out.ReferencedImageSequence[0]
    assert item.ReferencedSOPInstanceUID == an.pseudonym_uid("1.2.3.4.5.6.7", SECRET) and "PatientName" in item
    assert item.PatientName == "ANONYMOUS" and item.ReferencedSOPClassUID == src.SOPClassUID
    assert not any(el.tag.is_private for el in out) and 0xFFFCFFFC not in out
    dump = subprocess.run(["/usr/bin/dcmdump", "+E", "-q", "-"], input=data, capture_output=True, check=False)
    assert dump.returncode == 0, dump.stderr


def test_mapping_is_deterministic_per_secret(tmp_path: Path) -> None:
    path = _identified("CT_small.dcm", tmp_path)
    _, one = _anonymized(path)
    _, two = _anonymized(path)
    _, other = _anonymized(path, bytes(32))
    assert one.StudyInstanceUID == two.StudyInstanceUID and one.PatientID == two.PatientID
    assert other.StudyInstanceUID != one.StudyInstanceUID and other.PatientID != one.PatientID
    uid = an.pseudonym_uid("1.2.840.113619.2.55.3.1", SECRET)
    assert uid.startswith("2.25.") and len(uid) <= 64 and uid[5:].isdigit()


def test_private_sop_class_kept_other_names_emptied(tmp_path: Path) -> None:
    ds = dcmread(_path("CT_small.dcm"))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.113619.4.30"  # a vendor's SOP class
    ds.FrameOfReferenceUID = "1.2.3.99"
    ds.add_new(0x00321032, "PN", "申请^医生")  # RequestingPhysician, also in the X list
    ds.add_new(0x00081060, "PN", "阅片^医生")
    item = Dataset()
    item.add_new(0x0040A123, "PN", "观察者")  # a name in a sequence
    item.add_new(0x00080100, "SH", "CODE1")
    ds.add_new(0x00400260, "SQ", Sequence([item]))  # Performed Protocol Code Sequence: kept, its names not
    path = tmp_path / "vendor.dcm"
    ds.save_as(path)
    data, out = _anonymized(path)
    assert out.SOPClassUID == "1.2.840.113619.4.30" and out.file_meta.MediaStorageSOPClassUID == "1.2.840.113619.4.30"
    assert out.FrameOfReferenceUID == an.pseudonym_uid("1.2.3.99", SECRET)
    assert "阅片".encode() not in data and "观察者".encode() not in data and "申请".encode() not in data
    assert out[0x00400260][0][0x00080100].value == "CODE1"


def test_burned_in_annotation_refused(tmp_path: Path) -> None:
    ds = dcmread(_path("CT_small.dcm"))
    ds.BurnedInAnnotation = "YES"
    path = tmp_path / "burned.dcm"
    ds.save_as(path)
    with pytest.raises(an.NotAnonymizable) as err, path.open("rb") as fh:
        an.anonymize(fh, SECRET)
    assert err.value.status == 406 and err.value.problems[0].rule == "burned_in"


def test_damaged_file_refused() -> None:
    with pytest.raises(an.NotAnonymizable):
        an.anonymize(io.BytesIO(b"not a dicom file at all" * 10), SECRET)


def test_encapsulated_span_is_the_whole_element(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Copied from the file: the sequence delimiter included, nothing after it."""
    monkeypatch.setattr(an, "DEFER_BYTES", 16)
    raw = _path("SC_rgb_rle_2frame.dcm").read_bytes()
    data, out = _anonymized(_path("SC_rgb_rle_2frame.dcm"))
    tail: Any = raw[raw.rindex(b"\xfe\xff\xdd\xe0"):]
    assert data.endswith(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00") and tail.startswith(b"\xfe\xff\xdd\xe0")
    assert out.NumberOfFrames == 2

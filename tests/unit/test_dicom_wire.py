"""huren.wire.dicom: Part-10 headers into index records, malformed files refused, Chinese
character sets (declared and mislabelled) normalised once (issue 12)."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from huren.errors import InvalidInput
from huren.wire import dicom


def _file(name: str) -> bytes:
    return Path(str(get_testdata_file(name))).read_bytes()


def _read(data: bytes) -> dicom.InstanceRecord:
    return dicom.read_header(io.BytesIO(data), len(data))


def with_name(name: str, charset: str, *, label: str | None = None, base: str = "CT_small.dcm") -> bytes:
    """CT_small with ``PatientName`` encoded in ``charset`` and (``label``) the charset element
    rewritten to claim another one ("" removes it): a mislabelled file as some modalities send."""
    ds = pydicom.dcmread(str(get_testdata_file(base)))
    ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.StudyDescription = "胸部平扫" if charset != "ISO_IR 100" else "Thorax"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buf = io.BytesIO()
    ds.save_as(buf)
    data = buf.getvalue()
    if label is None:
        return data
    value = charset.encode() + (b" " if len(charset) % 2 else b"")
    old = b"\x08\x00\x05\x00CS" + len(value).to_bytes(2, "little") + value
    assert data.count(old) == 1
    if label == "":
        return data.replace(old, b"")
    lv = label.encode() + (b" " if len(label) % 2 else b"")
    return data.replace(old, b"\x08\x00\x05\x00CS" + len(lv).to_bytes(2, "little") + lv)


def test_ct_and_mr_headers_become_records() -> None:
    ct = _read(_file("CT_small.dcm"))
    assert (ct.modality, ct.sop_class_uid, ct.transfer_syntax) == ("CT", "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
    assert ct.patient_name == "CompressedSamples^CT1" and ct.patient_id == "1CT1"
    assert (ct.rows, ct.columns, ct.frames) == (128, 128, 1)
    assert ct.metadata["7FE00010"] == {"vr": "OW"} and "Value" not in ct.metadata["7FE00010"]
    assert ct.metadata["00080005"]["Value"] == ["ISO_IR 192"]
    assert not any(k.startswith("0010") for k in ct.metadata)
    assert ct.patient_json["00100010"]["Value"] == [{"Alphabetic": "CompressedSamples^CT1"}]
    mr = _read(_file("MR_small.dcm"))
    assert mr.modality == "MR" and mr.study_uid != ct.study_uid and mr.charset_in == ""


@pytest.mark.parametrize("cut", [100, 600, 1500, 20000, -1, -5])
def test_truncated_files_are_refused(cut: int) -> None:
    data = _file("CT_small.dcm")
    with pytest.raises(InvalidInput) as exc:
        _read(data[:cut])
    assert exc.value.problems[0].rule in ("dicom", "uid")


def test_bad_preamble_and_wrong_vr_are_refused() -> None:
    data = _file("CT_small.dcm")
    with pytest.raises(InvalidInput) as exc:
        _read(b"\0" * 128 + b"XXXX" + data[132:])
    assert exc.value.problems[0].rule == "dicom"
    i = data.find(bytes.fromhex("10001000") + b"PN")
    bad = data[: i + 4] + b"ZZ" + data[i + 6 :]
    with pytest.raises(InvalidInput) as exc:
        _read(bad)
    assert exc.value.problems[0].rule == "dicom" and "ZZ" in exc.value.message


def test_bad_uid_and_unknown_sop_class() -> None:
    data = _file("CT_small.dcm")
    uid = pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID.encode()
    bad = data.replace(uid, b"1.2.03.x" + b"9" * (len(uid) - 8))
    with pytest.raises(InvalidInput) as exc:
        _read(bad)
    assert exc.value.problems[0].rule == "uid" and exc.value.problems[0].field == "StudyInstanceUID"
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.SOPClassUID = "1.2.3.4.5"
    ds.file_meta.MediaStorageSOPClassUID = "1.2.3.4.5"
    buf = io.BytesIO()
    ds.save_as(buf)
    with pytest.raises(InvalidInput) as exc:
        _read(buf.getvalue())
    assert exc.value.problems[0].rule == "sop_class"


@pytest.mark.parametrize(("keyword", "value", "field"), [
    ("MediaStorageSOPInstanceUID", "1.2.826.0.1.3680043.8.498.99", "SOPInstanceUID"),
    ("MediaStorageSOPClassUID", "1.2.840.10008.5.1.4.1.1.4", "SOPClassUID"),
])
def test_file_meta_naming_another_instance_or_class_is_refused(keyword: str, value: str, field: str) -> None:
    ds = pydicom.dcmread(io.BytesIO(_file("CT_small.dcm")))
    setattr(ds.file_meta, keyword, value)
    buf = io.BytesIO()
    ds.save_as(buf)
    data = buf.getvalue()
    with pytest.raises(InvalidInput) as exc:
        dicom.read_header(io.BytesIO(data), len(data), check_media=True)  # a file the AE wrote from a C-STORE
    assert (exc.value.problems[0].rule, exc.value.problems[0].field) == ("uid", field)
    assert value in exc.value.message
    assert _read(data).sop_uid == ds.SOPInstanceUID  # a file from elsewhere: its writer's meta is not checked
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID  # consistent again: kept
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    buf = io.BytesIO()
    ds.save_as(buf)
    data = buf.getvalue()
    assert dicom.read_header(io.BytesIO(data), len(data), check_media=True).sop_uid == ds.SOPInstanceUID


@pytest.mark.parametrize("charset", ["GB18030", "GBK", "ISO_IR 192"])
def test_declared_chinese_character_sets(charset: str) -> None:
    rec = _read(with_name("张三^李四", charset))
    assert rec.patient_name == "张三^李四" and rec.study_description == "胸部平扫"
    assert rec.charset_in == charset and rec.charset == charset


def test_iso_2022_ir_58() -> None:
    rec = _read(with_name("王^小明", "\\ISO 2022 IR 58"))
    assert rec.patient_name == "王^小明"


@pytest.mark.parametrize("label", ["ISO_IR 100", ""])
def test_gbk_mislabelled_as_latin1_or_unlabelled_is_fixed(label: str) -> None:
    data = with_name("欧阳娜娜", "GBK", label=label)
    assert "欧阳娜娜".encode("gbk") in data
    rec = _read(data)
    assert rec.charset_in == label and rec.charset == "GB18030"
    assert rec.patient_name == "欧阳娜娜" and rec.study_description == "胸部平扫"
    assert rec.patient_json["00100010"]["Value"] == [{"Alphabetic": "欧阳娜娜"}]


def test_utf8_mislabelled_is_fixed_and_real_latin1_is_believed() -> None:
    rec = _read(with_name("买买提·艾力", "ISO_IR 192", label="ISO_IR 100"))
    assert rec.patient_name == "买买提·艾力" and rec.charset == "ISO_IR 192"
    rec = _read(with_name("Müller^Jürgen", "ISO_IR 100"))
    assert rec.patient_name == "Müller^Jürgen" and rec.charset == "ISO_IR 100"


def test_the_charset_rule() -> None:
    gb = "张三".encode("gb18030")
    assert dicom.detect_charset("ISO_IR 100", gb) == "GB18030"
    assert dicom.detect_charset("", gb) == "GB18030"
    assert dicom.detect_charset("ISO_IR 100", "Zoë".encode("latin-1")) == "ISO_IR 100"
    assert dicom.detect_charset("ISO_IR 100", b"plain ascii") == "ISO_IR 100"
    assert dicom.detect_charset("GBK", gb) == "GBK"
    assert dicom.detect_charset("ISO_IR 144", "Иван".encode("iso8859-5")) == "ISO_IR 144"  # Cyrillic: believed
    assert dicom.detect_charset("ISO_IR 100", "張".encode()) == "ISO_IR 192"
    assert dicom.detect_charset("ISO_IR 192", gb) == "GB18030"  # labelled UTF-8, written in GBK
    assert dicom.detect_charset("ISO_IR 192", "张三".encode()) == "ISO_IR 192"


def test_gbk_labelled_utf8_is_fixed() -> None:
    rec = _read(with_name("诸葛亮", "GBK", label="ISO_IR 192"))
    assert rec.patient_name == "诸葛亮" and rec.charset == "GB18030"


def test_fast_json_equals_pydicom_on_its_test_files() -> None:
    """huren.wire.dicom_json converts raw elements itself: the same JSON as pydicom's, element
    for element, over every readable single-charset file pydicom ships."""
    import warnings

    import pydicom.data

    from huren.wire.dicom_json import dataset_json

    compared = 0
    for name in sorted(map(str, (Path(pydicom.data.__file__).parent / "test_files").glob("*.dcm"))):  # bundled, never downloaded
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(name, stop_before_pixels=True)
                codecs = list(ds.original_character_set)
                little = ds.original_encoding[1] is not False
                mine = dataset_json(ds, codecs, little, 1024)
                ref = pydicom.dcmread(name, stop_before_pixels=True).to_json_dict(1024, lambda _el: "bulk")
            except Exception:  # files pydicom itself cannot read or convert are not compared
                continue
        for tag, value in ref.items():
            if "BulkDataURI" in value:
                value = {"vr": value["vr"]}
            assert mine[tag] == value or _no_bulk(value) == mine[tag], (Path(name).name, tag, mine[tag], value)
        compared += 1
    assert compared > 50


def _no_bulk(obj: object) -> object:
    if isinstance(obj, dict):
        return {"vr": obj["vr"]} if "BulkDataURI" in obj else {k: _no_bulk(v) for k, v in obj.items()}
    return [_no_bulk(v) for v in obj] if isinstance(obj, list) else obj


def test_several_character_sets_are_kept_as_the_file_writes_them() -> None:
    """A file naming two character sets (ISO 2022 Japanese) keeps them joined with a backslash,
    as DICOM writes them — not as a Python list — and they are believed."""
    import io
    from pathlib import Path

    from pydicom.data import get_testdata_file

    from huren.wire import dicom as wire

    data = Path(str(get_testdata_file("J2K_pixelrep_mismatch.dcm"))).read_bytes()
    rec = wire.read_header(io.BytesIO(data), len(data))
    assert rec.charset_in == rec.charset == "ISO 2022 IR 13\\ISO 2022 IR 87"

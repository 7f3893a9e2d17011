"""DICOM files on the wire: a Part-10 header read into an :class:`InstanceRecord` (index values and
the instance's DICOM JSON), with the character set normalised once, at ingest.

One header parse per instance: ``huren.wire.dicom_walk`` (a ``struct`` walk giving the same raw
elements as pydicom) for well-formed implicit / explicit VR little endian files, otherwise
``dcmread(stop_before_pixels=True, defer_size=…, force=False)``; then the Pixel Data element's
header is checked against the file's size (a file cut short is refused, even inside its pixel
data). The bytes are never re-encoded: the store keeps the file as received, this module only
reads it.

**Character sets** (issue 12). The text values (PN, LO, SH, ST, LT, UT, UC) are decoded with the
file's *Specific Character Set* when it names a Chinese or Unicode one (``GB18030``, ``GBK``,
``ISO_IR 192``, ``ISO 2022 IR 58``). A file labelled ``ISO_IR 100`` (Latin-1), ``ISO_IR 6`` or
nothing at all, or with a label pydicom does not know, is checked: when its text holds bytes
≥ 0x80 that are

1. valid UTF-8 → decoded as UTF-8 (``ISO_IR 192``);
2. otherwise, valid GB18030 whose non-ASCII characters are all Chinese (CJK ideographs, CJK
   punctuation, full-width forms, the middle dot of minority names), *and* not sensible Latin-1
   (sensible Latin-1: every high byte stands alone between ASCII characters and is a Latin-1
   letter, as in "Müller") → decoded as GB18030 (which includes GBK and GB2312);
3. otherwise → the label is believed.

A file labelled ``ISO_IR 192`` whose text is not valid UTF-8 but is such GB18030 is decoded as GB18030 too,
and so is one labelled ``ISO 2022 IR 58`` whose text has no escape sequence (GB2312 bytes written as
they are, as pydicom and many devices write them). Several values (``\\ISO 2022 IR 58``) are kept
joined with a backslash, as the file writes them.

The index and the metadata hold Unicode; served metadata says ``SpecificCharacterSet`` ``ISO_IR 192``.
:attr:`InstanceRecord.charset_in` keeps the label as received, :attr:`InstanceRecord.charset` what
was used.

**Metadata.** The DICOM JSON model (PS3.18 F.2) of every element before Pixel Data, group 0010
(the patient) split out into :attr:`InstanceRecord.patient_json` (the store seals it). Bulk data is
*not* kept in the metadata: binary values over :data:`BULK_THRESHOLD` bytes, values pydicom
deferred, and Pixel Data are listed with their VR only (no ``Value``, no ``BulkDataURI``); the
DICOMweb layer may add ``BulkDataURI``\\s pointing at its frame / bulk-data routes.
"""

from __future__ import annotations

import re
import struct
import unicodedata
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from pydicom import config as _pydicom_config
from pydicom.charset import convert_encodings, python_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID_dictionary  # type: ignore[attr-defined]

from huren.domain import imaging
from huren.domain.imaging import InstanceRecord
from huren.errors import InvalidInput, Problem
from huren.wire import dicom_walk
from huren.wire.dicom_json import dataset_json

# A value pydicom finds invalid while reading (a bad UID, a too-long string) is not warned about:
# the rules below refuse what the platform cannot keep, with the field named, and a server has no
# one to read a warning. (Process-wide: pydicom has one setting.)
_pydicom_config.settings.reading_validation_mode = _pydicom_config.IGNORE

#: elements read with their values up to this size; larger ones are left on disk (never bulk in memory)
DEFER_SIZE = 64 * 1024
#: binary values (OB, OW, OF, OD, OL, OV, UN) larger than this are listed without their value
BULK_THRESHOLD = 1024
BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})
_LONG_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"SQ", b"UT", b"UC", b"UR"})
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
__all__ = ["InstanceRecord", "detect_charset", "read_header"]

UNICODE = "ISO_IR 192"
CHINESE = frozenset({"GB18030", "GBK", UNICODE, "ISO 2022 IR 58", "ISO 2022 58", "ISO 2022 GBK"})
#: the ISO 2022 labels of GB2312, whose text should switch to it with ESC $ ) A
ISO_2022_GB = frozenset({"ISO 2022 IR 58", "ISO 2022 58"})
LATIN_OR_NONE = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO 2022 IR 6", "ISO 2022 IR 100"})
_IMPLICIT = "1.2.840.10008.1.2"
_BIG = "1.2.840.10008.1.2.2"
_DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")
_SEQ_DELIM = b"\xfe\xff\xdd\xe0\0\0\0\0"


def _bad(message: str, rule: str = "dicom", fld: str = "file") -> InvalidInput:
    return InvalidInput(message, [Problem(fld, rule, message)])


# -- character sets -----------------------------------------------------------------------------
def _is_chinese_char(ch: str) -> bool:
    o = ord(ch)
    return (
        0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2FA1F or 0xF900 <= o <= 0xFAFF
        or 0x3000 <= o <= 0x303F or 0xFF00 <= o <= 0xFFEF or o in (0x00B7, 0x2022, 0x2014, 0x2026)
        or 0x2E80 <= o <= 0x2FDF
    )


def _sensible_latin1(data: bytes) -> bool:
    """Every byte ≥ 0x80 alone between ASCII bytes, and a Latin-1 letter (À…ÿ but × ÷)."""
    for i, b in enumerate(data):
        if b < 0x80:
            continue
        if b < 0xC0 or b in (0xD7, 0xF7):
            return False
        if (i > 0 and data[i - 1] >= 0x80) or (i + 1 < len(data) and data[i + 1] >= 0x80):
            return False
    return True


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_gb(data: bytes) -> bool:
    """Valid GB18030 whose non-ASCII characters are all Chinese, and not sensible Latin-1."""
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        return False
    return all(ch.isascii() or _is_chinese_char(ch) for ch in text) and not _sensible_latin1(data)


def _joined(value: Any) -> str:
    """A Specific Character Set pydicom already converted (one value or several) as the file
    writes it: values joined with ``\\`` (``str()`` of several would be a Python list)."""
    if isinstance(value, str):
        return value.strip(" \0")
    return "\\".join(str(v).strip(" \0") for v in value)


def detect_charset(declared: str, sample: bytes) -> str:
    """The character set to decode a file's text with (see the module's docstring for the rule).
    ``declared``: the file's Specific Character Set values joined with ``\\``; ``sample``: the raw
    bytes of its text values."""
    values = [v.strip().upper() for v in declared.split("\\")]
    known = all(v in python_encoding or v == "" for v in values)
    high = any(b >= 0x80 for b in sample)
    if values == [UNICODE] and high and not _is_utf8(sample) and _is_gb(sample):
        return "GB18030"  # labelled UTF-8, written in GBK
    if ISO_2022_GB & set(values) and high and b"\x1b" not in sample and _is_gb(sample):
        return "GB18030"  # labelled ISO 2022 IR 58 but written without its escape sequences (GB2312 bytes as they are)
    if known and any(v in CHINESE for v in values):
        return declared
    if known and not all(v in LATIN_OR_NONE for v in values):
        return declared  # another character set named by the file (Cyrillic, Japanese …): believed
    if high and _is_utf8(sample):
        return UNICODE
    if high and _is_gb(sample):
        return "GB18030"
    return declared if known else ""


# -- the header -----------------------------------------------------------------------------------
def _pixel_check(fh: BinaryIO, ts: str, size: int) -> str | None:
    """The VR of the Pixel Data element the reader stopped at, after checking that its value fits
    the file; None when it stopped at the end (no pixel data). InvalidInput for a truncated file."""
    pos = fh.tell()
    head = fh.read(12)
    if len(head) < 8:
        return None
    endian = ">" if ts == _BIG else "<"
    group, elem = struct.unpack(endian + "HH", head[:4])
    if (group << 16 | elem) not in PIXEL_TAGS:
        return None
    if ts == _IMPLICIT:
        vr, length, hdr = "OW", struct.unpack("<I", head[4:8])[0], 8
    elif head[4:6] in _LONG_VRS:
        if len(head) < 12:
            raise _bad("DICOM 文件不完整（像素数据被截断）")
        vr, length, hdr = head[4:6].decode("ascii"), struct.unpack(endian + "I", head[8:12])[0], 12
    else:
        raise _bad("DICOM 文件的像素数据值表示（VR）无效")
    if length == 0xFFFFFFFF:  # encapsulated: its items, then the sequence delimiter, within the file
        fh.seek(max(pos, size - 8))
        if fh.read(8) != _SEQ_DELIM:  # not at the very end: elements follow (trailing padding…)
            _check_tail(fh, _encapsulated_end(fh, pos + hdr, size), size, ts, endian)
        return "OB"
    if pos + hdr + length > size:
        raise _bad("DICOM 文件不完整（像素数据长度超出文件大小，文件可能被截断）")
    _check_tail(fh, pos + hdr + length, size, ts, endian)
    return vr


#: (FFFE,E000) Item, (FFFE,E0DD) Sequence Delimitation Item: the tags of encapsulated pixel data
_ITEM, _DELIM = b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0"
MAX_FRAGMENTS = 1_000_000


def _encapsulated_end(fh: BinaryIO, at: int, size: int) -> int:
    """Where the encapsulated pixel data starting at ``at`` ends: its items (offset table, fragments)
    walked to the sequence delimiter (PS3.5 A.4), each within the file; InvalidInput otherwise."""
    for _ in range(MAX_FRAGMENTS):
        fh.seek(at)
        head = fh.read(8)
        if len(head) < 8:
            break
        length = struct.unpack("<I", head[4:8])[0]
        if head[:4] == _DELIM:
            return at + 8
        if head[:4] != _ITEM or length == 0xFFFFFFFF or at + 8 + length > size:
            break
        at += 8 + length
    raise _bad("DICOM 文件不完整（封装的像素数据缺少结束标记，文件可能被截断）")


def _check_tail(fh: BinaryIO, at: int, size: int, ts: str, endian: str) -> None:
    """The elements after Pixel Data (trailing padding, private tags) must end with the file."""
    for _ in range(10_000):
        if at == size:
            return
        fh.seek(at)
        head = fh.read(12)
        if len(head) < 8:
            break
        if ts == _IMPLICIT:
            length, hdr = struct.unpack("<I", head[4:8])[0], 8
        elif head[4:6] in _LONG_VRS:
            if len(head) < 12:
                break
            length, hdr = struct.unpack(endian + "I", head[8:12])[0], 12
        else:
            length, hdr = struct.unpack(endian + "H", head[6:8])[0], 8
        if length == 0xFFFFFFFF:
            return  # a sequence of undefined length after the pixels: not walked
        at += hdr + length
        if at > size:
            break
    else:
        return
    raise _bad("DICOM 文件不完整（像素数据之后的数据元素被截断）")


def _check_complete(ds: Dataset, size: int) -> None:
    """The last element read must lie within the file (pydicom stops quietly at a short read)."""
    if not ds._dict:
        raise _bad("DICOM 文件不含数据元素")
    last = ds._dict[max(ds._dict)]
    if isinstance(last, RawDataElement) and last.length != 0xFFFFFFFF and last.value_tell + last.length > size:
        raise _bad("DICOM 文件不完整（数据元素被截断）")


def _text_sample(ds: Dataset) -> bytes:
    out = []
    for tag, el in ds._dict.items():
        if not isinstance(el, RawDataElement) or not isinstance(el.value, bytes) or tag >> 16 == 0x0002:
            continue
        vr = el.VR
        if vr is None:
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
        if vr in TEXT_VRS:
            out.append(el.value)
    return b"\\".join(out)


def _drop_bulk(ds: Dataset) -> dict[str, Any]:
    """Remove the top-level elements not to be read (deferred, large binary): their JSON stubs."""
    stubs: dict[str, Any] = {}
    for tag in list(ds._dict):
        el = ds._dict[tag]
        if not isinstance(el, RawDataElement):
            continue
        vr = el.VR
        if vr is None:
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                vr = "UN"
        if (el.value is None and el.length not in (0, 0xFFFFFFFF)) or (vr in BINARY_VRS and el.length > BULK_THRESHOLD):
            stubs[f"{int(tag):08X}"] = {"vr": vr if len(vr) == 2 else "UN"}
            del ds._dict[tag]
    return stubs


def read_header(src: Path | BinaryIO, size: int, *, check_media: bool = False) -> InstanceRecord:
    """Parse a Part-10 file's header (never its pixel data); InvalidInput (rule ``dicom``,
    ``uid`` or ``sop_class``) for what the platform does not keep. ``check_media``: the file meta's
    Media Storage SOP Instance / Class UIDs must be the data set's own (rule ``uid``) — for a file
    the DICOM AE wrote from a C-STORE, whose file meta is the command's: a data set that does not
    match its request. (Files from elsewhere keep their writer's meta, right or not: pydicom's own
    ``rtplan.dcm`` names another instance there.)"""
    if isinstance(src, Path):
        with open(src, "rb") as fh:
            return _read(fh, size, check_media)
    return _read(src, size, check_media)


def _walk(fh: BinaryIO, size: int) -> dicom_walk.Walked | None:
    """The fast header read (``huren.wire.dicom_walk``); None — ``fh`` back where it was — when
    pydicom must read the file."""
    start = fh.tell()
    try:
        walked = dicom_walk.walk(fh, size, DEFER_SIZE)
    except Exception:  # whatever the walker did not expect: pydicom's read decides
        walked = None
    if walked is None:
        fh.seek(start)
    return walked


def _read(fh: BinaryIO, size: int, check_media: bool = False, *, fast: bool = True) -> InstanceRecord:
    walked = _walk(fh, size) if fast else None
    try:
        if walked is not None:
            ds, ts = walked.dataset, walked.transfer_syntax
            media: tuple[str, ...] | None = (walked.media_sop_uid, walked.media_class_uid)
        else:
            ds = pydicom.dcmread(fh, stop_before_pixels=True, defer_size=DEFER_SIZE, force=False)
            ts = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "")
            media = None
        if not imaging.valid_uid(ts):
            raise _bad("DICOM 文件头缺少有效的传输语法（TransferSyntaxUID）", "uid", "TransferSyntaxUID")
        pixel_vr = None if ts in _DEFLATED else _pixel_check(fh, ts, size)
        if pixel_vr is None and ts not in _DEFLATED:
            _check_complete(ds, size)
        declared = ds._dict.get(BaseTag(0x00080005))
        declared_text = ""
        if declared is not None:
            raw = declared.value if isinstance(declared, RawDataElement) else None
            declared_text = (raw or b"").decode("ascii", "replace").strip(" \0") if raw is not None else _joined(ds.SpecificCharacterSet)
        charset = detect_charset(declared_text, _text_sample(ds))
        if charset != declared_text:  # pydicom decodes with the charset it read: told the one to use
            ds._read_charset = convert_encodings(charset.split("\\") if charset else ["ISO_IR 6"])
        stubs = _drop_bulk(ds)
        js = dataset_json(ds, list(ds.original_character_set), ts != _BIG, BULK_THRESHOLD)
    except InvalidInput:
        raise
    except Exception as exc:  # whatever pydicom raises on a malformed file: refused, never a 500
        raise _bad(f"无法解析的 DICOM 文件（{_reason(exc)}）") from None
    js = js | stubs
    if pixel_vr is not None:
        js["7FE00010"] = {"vr": pixel_vr}
    js["00080005"] = {"vr": "CS", "Value": [UNICODE]}
    patient = {k: v for k, v in js.items() if k.startswith("0010")}
    meta = {k: js[k] for k in sorted(js) if not k.startswith("0010")}
    rec = _record(meta, patient, ts, declared_text, charset)
    if check_media:
        if media is None:
            fm = ds.file_meta
            media = tuple(str(getattr(fm, k, "") or "") for k in ("MediaStorageSOPInstanceUID", "MediaStorageSOPClassUID"))
        _check_media(media, rec)
    return rec


def _check_media(media: tuple[str, ...], rec: InstanceRecord) -> None:
    """The file meta's Media Storage SOP Instance / Class UIDs (``media``), when given, must name the
    data set's own (for C-STORE the file meta comes from the command: a data set not matching its request)."""
    for given_raw, keyword, own, name in zip(media, ("MediaStorageSOPInstanceUID", "MediaStorageSOPClassUID"),
                                              (rec.sop_uid, rec.sop_class_uid), ("SOPInstanceUID", "SOPClassUID"), strict=True):
        given = given_raw.strip(" \0")
        if given and given != own:
            msg = f"DICOM 文件头的 {keyword}（{given[:64]}）与数据集的 {name}（{own}）不一致"
            raise _bad(msg, "uid", name)


def _reason(exc: Exception) -> str:
    text = re.sub(r"\s+", " ", str(exc))[:120]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _value(js: dict[str, Any], tag: str) -> Any:
    el = js.get(tag)
    if not el:
        return None
    v = el.get("Value")
    return v[0] if v else None


def _text(js: dict[str, Any], tag: str, limit: int = 256) -> str:
    v = _value(js, tag)
    if v is None:
        return ""
    if isinstance(v, dict):  # PN: Alphabetic=Ideographic=Phonetic
        parts = [str(v.get(k, "")) for k in ("Alphabetic", "Ideographic", "Phonetic")]
        while parts and not parts[-1]:
            parts.pop()
        v = "=".join(parts)
    return unicodedata.normalize("NFC", str(v)).strip()[:limit]


def _int(js: dict[str, Any], tag: str) -> int | None:
    v = _value(js, tag)
    try:
        n = int(v) if v is not None else None
    except (TypeError, ValueError):
        return None
    return n if n is not None and -(2**31) <= n < 2**31 else None


def _uid(js: dict[str, Any], tag: str, name: str) -> str:
    return imaging.check_uid(_value(js, tag), name)


def _record(meta: dict[str, Any], patient: dict[str, Any], ts: str, charset_in: str, charset: str) -> InstanceRecord:
    sop_class = _uid(meta, "00080016", "SOPClassUID")
    if not imaging.is_storage_class(sop_class) or sop_class not in UID_dictionary:
        msg = f"不支持的 SOP 类（SOPClassUID “{sop_class}”不是已知的存储类）"
        raise InvalidInput(msg, [Problem("SOPClassUID", "sop_class", msg)])
    return InstanceRecord(
        sop_uid=_uid(meta, "00080018", "SOPInstanceUID"),
        sop_class_uid=sop_class,
        study_uid=_uid(meta, "0020000D", "StudyInstanceUID"),
        series_uid=_uid(meta, "0020000E", "SeriesInstanceUID"),
        transfer_syntax=ts,
        patient_name=_text(patient, "00100010"),
        patient_id=_text(patient, "00100020", 64),
        patient_birth_date=_text(patient, "00100030", 8),
        patient_sex=_text(patient, "00100040", 16),
        study_date=_text(meta, "00080020", 8),
        study_time=_text(meta, "00080030", 16),
        accession_number=_text(meta, "00080050", 64),
        study_id=_text(meta, "00200010", 16),
        study_description=_text(meta, "00081030"),
        referring_physician=_text(meta, "00080090"),
        institution_name=_text(meta, "00080080"),
        modality=_text(meta, "00080060", 16),
        series_number=_int(meta, "00200011"),
        series_description=_text(meta, "0008103E"),
        body_part=_text(meta, "00180015", 64),
        series_date=_text(meta, "00080021", 8),
        series_time=_text(meta, "00080031", 16),
        instance_number=_int(meta, "00200013"),
        rows=_int(meta, "00280010"),
        columns=_int(meta, "00280011"),
        frames=max(1, _int(meta, "00280008") or 1),
        charset_in=charset_in,
        charset=charset or "ISO_IR 6",
        metadata=meta,
        patient_json=patient,
    )

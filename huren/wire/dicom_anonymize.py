"""A de-identified copy of a stored instance (WADO-URI ``anonymize=yes``, PS3.18 §9.5.1.2.3): the
PS3.15 Annex E Basic Application Level Confidentiality Profile, without options.

What is done (recursively, in every sequence item):

* the identity attributes of the profile's table E.1-1 marked D / Z / X (:data:`ZERO`, :data:`REMOVE`):
  names, IDs, birth date and the other patient attributes, addresses and telephone numbers,
  institution and department, physicians and operators, station and device serial number,
  accession number and study ID, the study / series / acquisition / content dates and times,
  descriptions and comments, the request and procedure-step attributes; Patient's Name becomes
  ``ANONYMOUS`` and Patient ID a pseudonym (``ANON-`` + 10 hex digits, the same for the same ID);
* every other person name (PN) anywhere is emptied;
* every UID that is not a UID of the DICOM registry (SOP Class, transfer syntax, coding schemes …
  are kept, as is every ``…ClassUID`` attribute, a vendor's private SOP class too) is replaced (U) by ``2.25.<integer>``: the first 128 bits of HMAC-SHA256 of the UID
  under a secret of the platform. The mapping is deterministic for one platform — the same study
  gives the same pseudonymous Study / Series / SOP Instance UIDs on every request, so the
  instances of one study, and their references to each other, stay together — and unrelated
  between platforms; it cannot be reversed without the secret;
* private attributes, overlays' data and comments (60xx), curves (50xx), digital signatures and
  everything after Pixel Data (FFFA, FFFC, private groups) are removed;
* Patient Identity Removed = YES, De-identification Method and its code (DCM 113100) are added.

An instance whose pixels carry burned-in identity (Burned In Annotation = YES) is refused: the
basic profile without the Clean Pixel Data option may not release it.

Streaming: the attributes before Pixel Data are read and rewritten with pydicom; the Pixel Data
element itself (native or encapsulated) is copied from the stored file as is, in chunks, never
held whole (the source is a seekable file, e.g. the spooled stored file)."""

from __future__ import annotations

import hmac
import io
from collections.abc import Iterator
from typing import Any, BinaryIO, Literal

from pydicom import dcmread
from pydicom._uid_dict import UID_dictionary
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import UID

from huren.errors import HurenError, Problem

PIXEL_DATA = 0x7FE00010
CHUNK = 1024 * 1024
#: values larger than this are left in the file when it is read (Pixel Data is then copied, not read)
DEFER_BYTES = 64 * 1024
METHOD = "PS3.15 Basic Application Level Confidentiality Profile (huren)"
#: (tag) → zero length (Z); PatientName and PatientID get dummies (D) in _clean
ZERO = frozenset({
    0x00100030, 0x00100040, 0x00080050, 0x00200010, 0x00080020, 0x00080030, 0x00080090, 0x00080023, 0x00080033,
    0x00400513, 0x00400562, 0x00102203, 0x00180010, 0x00181030,
})
#: (tag) → removed (X)
REMOVE = frozenset({
    # patient
    0x00100021, 0x00100032, 0x00100050, 0x00101000, 0x00101001, 0x00101002, 0x00101005, 0x00101010, 0x00101020,
    0x00101030, 0x00101040, 0x00101060, 0x00101080, 0x00101081, 0x00101090, 0x00102000, 0x00102110, 0x00102150,
    0x00102152, 0x00102154, 0x00102155, 0x00102160, 0x00102180, 0x001021A0, 0x001021B0, 0x001021C0, 0x001021D0,
    0x001021F0, 0x00104000, 0x00380010, 0x00380300, 0x00380400, 0x00380500, 0x00381234, 0x00102297,
    0x00102299, 0x00101100, 0x00080092, 0x00080094, 0x00080096, 0x0008009C, 0x0008009D, 0x00081048, 0x00081049,
    0x00081050, 0x00081052, 0x00081060, 0x00081062, 0x00081070, 0x00081072, 0x00081010, 0x00081040, 0x00081041,
    0x00080080, 0x00080081, 0x00080082, 0x00081080, 0x00081084, 0x00081030, 0x0008103E, 0x00081032, 0x00081110,
    0x00081120, 0x00081111, 0x00181000, 0x00181004, 0x00181005, 0x00181007, 0x00181008, 0x00181009, 0x0018100A,
    0x00181020, 0x00181400, 0x00181203, 0x00181200, 0x00181201, 0x00080021, 0x00080022, 0x00080031, 0x00080032,
    0x0008002A, 0x00080024, 0x00080034, 0x00080015, 0x00080014, 0x00080201, 0x00204000, 0x00209158, 0x00082111,
    0x00400241, 0x00400242, 0x00400243, 0x00400244, 0x00400245, 0x00400250, 0x00400251, 0x00400253, 0x00400254,
    0x00400275, 0x00400280, 0x00401001, 0x00401004, 0x00401005, 0x00401010, 0x00401011, 0x00401101, 0x00401102,
    0x00401103, 0x00401400, 0x00402001, 0x00402008, 0x00402009, 0x00402010, 0x00402016, 0x00402017, 0x00402400,
    0x00400001, 0x00400002, 0x00400003, 0x00400004, 0x00400005, 0x00400006, 0x00400007, 0x00400009, 0x0040000B,
    0x00400010, 0x00400011, 0x00400012, 0x00321020, 0x00321021, 0x00321030, 0x00321032, 0x00321033, 0x00321060,
    0x00321070, 0x00324000, 0x00320012, 0x00320032, 0x00320033, 0x00321000, 0x00321001, 0x00321010, 0x00321011,
    0x00321040, 0x00321041, 0x00321050, 0x00321051, 0x0040A730, 0x0040A123, 0x0040A075, 0x0040A073, 0x0040A027,
    0x0040A078, 0x00404037, 0x00404036, 0x00404035, 0x00404034, 0x00404030, 0x00404028, 0x00404027, 0x00404025,
    0x00380004, 0x0038001E, 0x00380020, 0x00380021, 0x00380040, 0x00380050, 0x00380060, 0x00380061, 0x00380062,
    0x00101050, 0x00880140, 0x00880200, 0x00880904, 0x00880906, 0x00880910, 0x00880912, 0x00120010,
    0x00120020, 0x00120021, 0x00120030, 0x00120031, 0x00120040, 0x00120042, 0x00120050, 0x00120051, 0x00120060,
    0x00120071, 0x00120072, 0x00120081, 0x00120082, 0x00120062, 0x00120063, 0x00120064, 0x4FFE0001, 0xFFFAFFFA,
    0x04000100, 0x04000105, 0x04000115, 0x04000310, 0x04000401, 0x04000402, 0x04000403, 0x04000404, 0x04000550,
    0x04000561, 0x20300020, 0x30060002, 0x30060004, 0x30060006, 0x30060008, 0x300E0008, 0x40000010, 0x40004000,
    0x40080042, 0x40080102, 0x4008010A, 0x4008010B, 0x4008010C, 0x40080111, 0x40080114, 0x40080115, 0x40080118,
    0x40080119, 0x4008011A, 0x40080202, 0x40080300, 0x00209161, 0x00189424, 0x00181002, 0x00080012, 0x00080013,
})
#: UI attributes that name a kind of thing, not an instance: never replaced (nor any *ClassUID)
KEEP_UIDS = frozenset({"TransferSyntaxUID", "CodingSchemeUID", "ContextUID", "MappingResourceUID",
                       "ContextGroupExtensionCreatorUID", "PrivateCodingSchemeCreatorUID"})
_REPEATING = (0x5000, 0x6000)  # curves, overlays (groups 50xx / 60xx): data and comments removed


class NotAnonymizable(HurenError):
    """The instance cannot be released de-identified (burned-in identity, a damaged file)."""

    code = "not_acceptable"
    status = 406


def pseudonym_uid(uid: str, secret: bytes) -> str:
    """``2.25.<integer>`` (PS3.5 B.2) from the first 128 bits of HMAC-SHA256(secret, uid)."""
    digest = hmac.digest(secret, uid.strip("\0 ").encode("ascii", "replace"), "sha256")
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def pseudonym_id(value: str, secret: bytes) -> str:
    return "ANON-" + hmac.digest(secret, b"patient-id/" + value.encode("utf-8"), "sha256")[:5].hex().upper()


def _keep_uid(uid: str) -> bool:
    return uid in UID_dictionary  # the registry's UIDs (SOP classes, transfer syntaxes, coding schemes …)


def _map_uid_value(value: Any, secret: bytes) -> Any:
    if isinstance(value, str | UID):
        return value if not value or _keep_uid(str(value)) else UID(pseudonym_uid(str(value), secret))
    if isinstance(value, list) or type(value).__name__ == "MultiValue":
        return [_map_uid_value(v, secret) for v in value]
    return value


def _clean(ds: Dataset, secret: bytes) -> None:
    for tag in list(ds.keys()):
        t = int(tag)
        group = t >> 16
        if group & 1 or t & 0xFFFF == 0 or group == 0xFFFA or group == 0xFFFC or (group & 0xFF00) in _REPEATING or t in REMOVE:
            del ds[tag]
            continue
        if t == 0x00100010:
            ds[tag] = DataElement(tag, "PN", "ANONYMOUS")
            continue
        if t == 0x00100020:
            old = ds[tag].value
            ds[tag] = DataElement(tag, "LO", pseudonym_id(str(old or ""), secret) if old else "")
            continue
        if t in ZERO:
            ds[tag].value = None
            continue
        el = ds[tag]
        if el.VR == "UI":
            if not (el.keyword.endswith("ClassUID") or el.keyword in KEEP_UIDS):  # a vendor's SOP class stays
                el.value = _map_uid_value(el.value, secret)
        elif el.VR == "PN":
            el.value = None  # any other person's name, wherever it is (Z)
        elif el.VR == "SQ":
            for item in el.value:
                _clean(item, secret)


def anonymize_dataset(ds: Dataset, secret: bytes) -> Dataset:
    """``ds`` de-identified in place (see the module's docstring); its file meta follows."""
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        raise NotAnonymizable("该影像的像素中含有烧录的患者信息，无法提供匿名化副本",
                              [Problem("anonymize", "burned_in", "图像像素含烧录的患者信息（BurnedInAnnotation=YES）")])
    _clean(ds, secret)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "113100", "DCM", "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    meta: FileMetaDataset = ds.file_meta
    for keyword in ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle", "ReceivingApplicationEntityTitle",
                    "PrivateInformationCreatorUID", "PrivateInformation"):
        if keyword in meta:
            delattr(meta, keyword)
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _pixel_span(fh: BinaryIO, raw: RawDataElement, implicit: bool, little: bool) -> tuple[int, int]:
    """(start, end) in ``fh`` of the whole Pixel Data element (header included)."""
    assert raw.value_tell is not None
    start = raw.value_tell - (8 if implicit else 12)
    order: Literal["little", "big"] = "little" if little else "big"
    if raw.length != 0xFFFFFFFF:
        return start, raw.value_tell + raw.length
    pos = raw.value_tell
    while True:  # encapsulated: items up to the sequence delimiter
        fh.seek(pos)
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError("truncated encapsulated pixel data")
        group, elem = int.from_bytes(head[0:2], order), int.from_bytes(head[2:4], order)
        length = int.from_bytes(head[4:8], order)
        if (group, elem) == (0xFFFE, 0xE0DD):
            return start, pos + 8
        if (group, elem) != (0xFFFE, 0xE000):
            raise ValueError("unexpected element in encapsulated pixel data")
        pos += 8 + length


def anonymize(fh: BinaryIO, secret: bytes) -> Iterator[bytes]:
    """The de-identified Part-10 file of the stored file ``fh`` (seekable), chunk after chunk:
    the rewritten attributes, then the Pixel Data element copied as stored. The first chunk is
    computed before this returns, so a refusal (406) comes before any byte is sent."""
    try:
        ds = dcmread(fh, defer_size=DEFER_BYTES)
        ts = UID(str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2.1")))
        raw = ds.get_item(PIXEL_DATA, keep_deferred=True)
        span: tuple[int, int] | None = None
        if isinstance(raw, RawDataElement) and raw.value is None and raw.value_tell is not None and not ts.is_deflated:
            span = _pixel_span(fh, raw, ts.is_implicit_VR, ts.is_little_endian)
            del ds[PIXEL_DATA]  # copied from the file below, not read
        tail = [t for t in ds.keys() if int(t) > PIXEL_DATA]  # noqa: SIM118 (iterating a Dataset gives elements)
        for t in tail:
            del ds[t]
        anonymize_dataset(ds, secret)
        head = io.BytesIO()
        dcmwrite(head, ds, enforce_file_format=True)
    except NotAnonymizable:
        raise
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError, AttributeError) as exc:
        raise NotAnonymizable("影像文件无法解析，无法匿名化", [Problem("anonymize", "dicom", "存储的影像文件无法解析")]) from exc
    return _chunks(head.getvalue(), fh, span)


def _chunks(head: bytes, fh: BinaryIO, span: tuple[int, int] | None) -> Iterator[bytes]:
    yield head
    if span is None:
        return
    pos, end = span
    fh.seek(pos)
    while pos < end:
        data = fh.read(min(CHUNK, end - pos))
        if not data:
            raise OSError("stored file ended inside Pixel Data")
        pos += len(data)
        yield data

"""A Part-10 header read with ``struct`` instead of ``pydicom.dcmread`` (issue 12: ingest speed).

:func:`walk` reads the preamble, the file meta (group 0002) and the data set's top-level elements
up to Pixel Data, and gives the same :class:`pydicom.dataset.Dataset` of raw elements that
``dcmread(stop_before_pixels=True, defer_size=…)`` gives for the same bytes — the same
``RawDataElement`` tuples (VR, length, value, offset), values over the defer size left unread, the
same original encoding — so the rest of ``huren.wire.dicom`` (character set detection, JSON,
rules) runs unchanged on it. A top-level element of undefined length (a sequence, mostly) is read
by pydicom's own element reader, from where it starts.

It handles only the well-formed files of the common transfer syntaxes: implicit VR little
endian, explicit VR little endian and the encapsulated ones read as explicit VR little endian.
Anything else — big endian, deflated, a private transfer syntax, no ``DICM``, a file meta that is
not explicit VR, a command group, a VR pydicom would guess at, an implicit/explicit mismatch, an
element running past the end of the file, an item tag at the top level — gives None, and the
caller reads the file with pydicom as before (which also words the refusal of a malformed file).
The equality is tested on pydicom's own test files and the demo corpus
(tests/unit/test_dicom_walk.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from pydicom import uid as _uid
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.filereader import data_element_generator
from pydicom.tag import BaseTag
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR
from pydicom.values import convert_string

_VRS = {v.encode("ascii"): str(v) for v in VR}
_LONG = frozenset(str(v) for v in EXPLICIT_VR_LENGTH_32)
_IMPLICIT = "1.2.840.10008.1.2"
_NOT_FAST = frozenset({"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99", *map(str, _uid.PrivateTransferSyntaxes)})
_PIXELS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})
_EXPLICIT = struct.Struct("<HH2sH")
_IMPLICIT_HEAD = struct.Struct("<HHI")
_U32 = struct.Struct("<I")
_CHARSET = 0x00080005
READ_AHEAD = 64 * 1024


@dataclass(frozen=True, slots=True)
class Walked:
    dataset: Dataset
    transfer_syntax: str  # as str(file_meta.TransferSyntaxUID or "")
    media_sop_uid: str  # the file meta's Media Storage SOP Instance UID ("" when absent)
    media_class_uid: str


class _Buf:
    """The file's bytes from ``base``, read ahead in blocks as the walk needs them."""

    def __init__(self, fh: BinaryIO, start: int, size: int) -> None:
        self.fh, self.size = fh, size
        self.base = start
        self.data = fh.read(min(READ_AHEAD, max(0, size - start)))

    def get(self, at: int, n: int) -> bytes | None:
        """``n`` bytes at absolute offset ``at``; None when the file ends before them."""
        if at + n > self.size:
            return None
        end = at + n - self.base
        if at < self.base or end > len(self.data):
            if at < self.base or at > self.base + len(self.data) + READ_AHEAD:  # far ahead: read from there
                self.fh.seek(at)
                self.base, self.data = at, self.fh.read(max(n, READ_AHEAD))
            else:
                self.fh.seek(self.base + len(self.data))
                self.data += self.fh.read(max(end - len(self.data), READ_AHEAD))
            end = at + n - self.base
            if end > len(self.data):
                return None
        off = at - self.base
        return self.data[off:end]


def _meta_text(el: RawDataElement | None) -> str | None:
    """A file meta UI value as pydicom's ``str(value or "")``; None for one it would make a list."""
    if el is None or not el.value:
        return ""
    text = el.value.decode(default_encoding).rstrip("\0 ")
    return None if "\\" in text else text


def walk(fh: BinaryIO, size: int, defer_size: int) -> Walked | None:
    """The header of the Part-10 file ``fh`` (positioned at its start, ``size`` bytes long), or None
    when pydicom must read it (see the module's docstring). Leaves ``fh`` at the element it stopped
    at (Pixel Data), or at the end of the file."""
    start = fh.tell()
    buf = _Buf(fh, start, size)
    head = buf.get(start, 132)
    if head is None or head[128:] != b"DICM":
        return None
    at = start + 132
    meta: dict[int, RawDataElement] = {}
    while True:  # the file meta: explicit VR little endian, defined lengths
        h = buf.get(at, 8)
        if h is None:
            break
        group, elem, vr_b, length = _EXPLICIT.unpack(h)
        if group != 2:
            break
        vr = _VRS.get(vr_b)
        if vr is None:
            return None
        hdr = 8
        if vr in _LONG:
            ext = buf.get(at + 8, 4)
            if ext is None:
                return None
            length, hdr = _U32.unpack(ext)[0], 12
        if length == 0xFFFFFFFF:
            return None
        value = buf.get(at + hdr, length) if length else cast(bytes | None, empty_value_for_VR(vr, raw=True))
        if value is None:
            return None
        tag = 0x00020000 | elem
        meta[tag] = RawDataElement(BaseTag(tag), vr, length, value, at + hdr, False, True)
        at += hdr + length
    ts = _meta_text(meta.get(0x00020010))
    media_sop, media_class = _meta_text(meta.get(0x00020003)), _meta_text(meta.get(0x00020002))
    if not meta or not ts or ts in _NOT_FAST or media_sop is None or media_class is None:
        return None
    implicit = ts == _IMPLICIT
    first = buf.get(at, 8)
    if first is None:  # no data set
        return None
    looks_implicit = not (0x40 < first[4] < 0x5B and 0x40 < first[5] < 0x5B)
    if looks_implicit != implicit:
        return None  # pydicom warns and switches: its path
    raw: dict[BaseTag, Any] = {}
    encoding: Any = default_encoding
    data, base = buf.data, buf.base
    new_raw = tuple.__new__  # RawDataElement(...) without the NamedTuple's Python-level __new__
    while True:
        off = at - base
        if off < 0 or off + 12 > len(data):
            if size - at < 8:
                at = size  # fewer than 8 bytes left: pydicom stops there quietly
                break
            if buf.get(at, min(12, size - at)) is None:
                return None
            data, base = buf.data, buf.base
            off = at - base
        if implicit:
            group, elem, length = _IMPLICIT_HEAD.unpack_from(data, off)
            vr_s: str | None = None
            hdr = 8
        else:
            group, elem, vr_b, length = _EXPLICIT.unpack_from(data, off)
            vr_s = _VRS.get(vr_b)
            if vr_s is None:
                return None
            hdr = 8
            if vr_s in _LONG:
                if at + 12 > size:
                    return None
                length, hdr = _U32.unpack_from(data, off + 8)[0], 12
        tag = group << 16 | elem
        if group == 0xFFFE or group == 0:
            return None
        if tag in _PIXELS:
            break
        if length == 0xFFFFFFFF:  # pydicom's own reader for this one element (a sequence, mostly)
            fh.seek(at)
            gen = data_element_generator(fh, implicit, True, None, defer_size, encoding)
            el = next(gen, None)
            if el is None or el.tag != tag:
                return None
            raw[el.tag] = el
            at = fh.tell()
            if at > size:
                return None
            buf = _Buf(fh, at, size)
            data, base = buf.data, buf.base
            continue
        value_tell = at + hdr
        if value_tell + length > size:
            return None
        if length > defer_size and tag != _CHARSET:
            value = None
        elif length:
            voff = off + hdr
            if voff + length <= len(data):
                value = data[voff : voff + length]
            else:
                value = buf.get(value_tell, length)
                if value is None:
                    return None
                data, base = buf.data, buf.base
        else:
            value = cast(bytes | None, empty_value_for_VR(vr_s, raw=True))
        btag = BaseTag(tag)
        raw[btag] = new_raw(RawDataElement, (btag, vr_s, length, value, value_tell, implicit, True, True, False))
        if tag == _CHARSET:
            encoding = convert_encodings(convert_string(value or b"", True))
        at = value_tell + length
    if not raw:
        return None
    ds = Dataset(raw, parent_encoding=default_encoding)
    # as read_dataset then dcmread end: the encoding from the data set's (0008,0005), converted in place
    ds.set_original_encoding(implicit, True, ds._character_set)
    fh.seek(at)
    return Walked(ds, ts, media_sop, media_class)

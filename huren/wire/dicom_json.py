"""The DICOM JSON model (PS3.18 F.2) of a dataset's elements as read, straight from their raw bytes.

pydicom's ``Dataset.to_json_dict`` first turns every raw element into a DataElement (validation,
value conversion, MultiValue objects) — most of the cost of ingesting an instance. Here the common
elements are converted directly from their bytes (text in the dataset's one character set, numbers
with ``struct``); sequences, VRs the dictionary leaves ambiguous, implicit-VR private tags,
ISO 2022 code extensions and anything that does not convert cleanly go through pydicom as before.
The output equals pydicom's for every element of pydicom's own test files (tests/unit/test_dicom_wire.py).
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

_NUM = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_SIZE = {f: struct.calcsize(f) for f in _NUM.values()}
_SINGLE = frozenset({"ST", "LT", "UT", "UR"})  # one value: a backslash is data
_CHARSET = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})
BINARY = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
_PN = ("Alphabetic", "Ideographic", "Phonetic")
_TEXT = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})


def raw_json(tag: int, el: RawDataElement, codec: str, little: bool, bulk: int) -> dict[str, Any] | None:
    """One raw element as a JSON object, or None when pydicom should convert it. Binary values
    over ``bulk`` bytes are given with their VR only."""
    vr = el.VR
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return None
    raw = el.value
    if not isinstance(raw, bytes):
        return None
    if vr in _TEXT:  # the most common: text, one codec
        text = raw.decode(codec if vr in _CHARSET else "ascii").rstrip(" \0")
        if not text:
            return {"vr": vr}
        values = [text] if vr in _SINGLE else text.split("\\")
        if vr == "PN":
            names: list[Any] = []
            for v in values:
                groups = {k: g for k, g in zip(_PN, v.split("="), strict=False) if g}
                names.append(groups or None)
            return {"vr": vr, "Value": names}
        if vr == "IS":
            return {"vr": vr, "Value": [int(v) for v in values]}
        if vr == "DS":
            return {"vr": vr, "Value": [float(v) for v in values]}
        return {"vr": vr, "Value": values}
    if vr in BINARY:
        if not raw or len(raw) > bulk:
            return {"vr": vr}
        return {"vr": vr, "InlineBinary": base64.b64encode(raw).decode()}
    fmt = _NUM.get(vr)
    if fmt is not None:
        size = _SIZE[fmt]
        n, rest = divmod(len(raw), size)
        if rest:
            return None
        nums = list(struct.unpack(("<" if little else ">") + fmt * n, raw))
        return {"vr": vr, "Value": nums} if nums else {"vr": vr}
    if vr == "AT":
        if len(raw) % 4:
            return None
        pairs = struct.unpack(("<" if little else ">") + "HH" * (len(raw) // 4), raw)
        tags = [f"{pairs[i]:04X}{pairs[i + 1]:04X}" for i in range(0, len(pairs), 2)]
        return {"vr": vr, "Value": tags} if tags else {"vr": vr}
    return None  # SQ, an ambiguous or unknown VR: pydicom's (which refuses an unknown one)


_BULK = "\0bulk"


def _strip(obj: Any) -> Any:
    """pydicom's JSON with the bulk data markers replaced by the VR alone."""
    if isinstance(obj, dict):
        if obj.get("BulkDataURI") == _BULK:
            return {"vr": obj["vr"]}
        return {k: _strip(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def dataset_json(ds: Dataset, codecs: list[str], little: bool, bulk: int) -> dict[str, Any]:
    """The JSON object of a dataset read from a file (its top-level elements, in tag order);
    binary values over ``bulk`` bytes, at any depth, given with their VR only."""
    codec = codecs[0] if len(codecs) == 1 else None
    out: dict[str, Any] = {}
    for tag in sorted(ds._dict, key=int):  # BaseTag compares in Python: as ints, the same order
        el = ds._dict[tag]
        j = None
        if codec is not None and isinstance(el, RawDataElement):
            try:
                j = raw_json(int(tag), el, codec, little, bulk)
            except (ValueError, UnicodeDecodeError, struct.error, LookupError):
                j = None
        if j is None:
            j = _strip(ds[tag].to_json_dict(bulk_data_element_handler=lambda _el: _BULK, bulk_data_threshold=bulk))
        out[f"{int(tag):08X}"] = j
    return out

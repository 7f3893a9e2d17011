"""Text burned into a rendered image (WADO-URI ``annotation``, PS3.18 §9.5.1.2.2): ``patient``
(the patient's name, ID, sex and birth date) and ``technique`` (modality, frame, window, and the
acquisition's kVp / mAs / slice thickness when the file has them).

Names are decoded from the file's raw bytes with the platform's character-set rule
(:func:`huren.wire.dicom.detect_charset`: GB18030 / UTF-8 files mislabelled ``ISO_IR 100`` are read
as what they are), so a Chinese name is drawn as Chinese. The text is drawn with the Noto Sans CJK
font of the system (Debian ``fonts-noto-cjk``); without it, Pillow's built-in font, which has no
Chinese glyphs (:data:`FONT_PATH` is None then, and the operator documentation says so).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import PersonName

from huren.wire.dicom import detect_charset

ANNOTATIONS = frozenset({"patient", "technique"})
#: CJK fonts tried in order (the first that exists is used)
FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)
FONT_PATH: str | None = next((p for p in FONT_CANDIDATES if Path(p).is_file()), None)
_TEXT = (0x00100010, 0x00100020)  # PatientName, PatientID: the values whose bytes decide the charset


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if FONT_PATH is not None:
        return ImageFont.truetype(FONT_PATH, size)  # index 0 of the collection: Simplified Chinese first in Noto
    return ImageFont.load_default(size)


def _encodings(ds: Dataset) -> list[str]:
    declared = ds.get_item(0x00080005)
    text = ""
    if isinstance(declared, RawDataElement) and declared.value is not None:
        text = declared.value.decode("ascii", "replace").strip(" \0")
    elif declared is not None and declared.value:
        text = "\\".join(declared.value) if isinstance(declared.value, list) else str(declared.value)
    sample = b"\\".join(
        el.value for el in (ds.get_item(t) for t in _TEXT) if isinstance(el, RawDataElement) and isinstance(el.value, bytes)
    )
    charset = detect_charset(text, sample)
    return list(convert_encodings(charset.split("\\") if charset else ["ISO_IR 6"]))


def _text(ds: Dataset, tag: int, encodings: list[str], vr: str = "LO") -> str:
    el = ds.get_item(tag)
    if el is None or el.value is None:
        return ""
    if isinstance(el, RawDataElement) and isinstance(el.value, bytes):
        raw = el.value.rstrip(b" \0")
        if vr == "PN":
            name = PersonName(raw, encodings)
            return _name(name)
        return decode_bytes(raw, encodings, set()).strip()
    value = el.value
    return _name(value) if isinstance(value, PersonName) else str(value).strip()


def _name(name: PersonName) -> str:
    """The ideographic form of a name when the file has one (张三), else the alphabetic one."""
    for group in (name.ideographic, name.alphabetic, name.phonetic):
        if group:
            return " ".join(p for p in str(group).split("^") if p)
    return ""


def patient_lines(ds: Dataset) -> list[str]:
    enc = _encodings(ds)
    name, pid = _text(ds, 0x00100010, enc, "PN"), _text(ds, 0x00100020, enc)
    sex = {"M": "男", "F": "女", "O": "其他"}.get(_text(ds, 0x00100040, enc).upper(), "")
    birth = _text(ds, 0x00100030, enc)
    lines = [f"姓名：{name or '（无）'}", f"ID：{pid or '（无）'}"]
    extra = " ".join(v for v in (sex, f"生于 {birth[:4]}-{birth[4:6]}-{birth[6:8]}" if len(birth) == 8 else "") if v)
    return lines + ([extra] if extra else [])


def technique_lines(ds: Dataset, frame: int, frames: int, window: tuple[float, float] | None) -> list[str]:
    enc = _encodings(ds)
    first = " ".join(v for v in (_text(ds, 0x00080060, enc), f"帧 {frame}/{frames}") if v)
    lines = [first]
    if window is not None:
        lines.append(f"窗位 {_num(window[0])} 窗宽 {_num(window[1])}")
    acq = [f"{label} {_num(v)}{unit}" for label, key, unit in (("kVp", 0x00180060, ""), ("mAs", 0x00181152, ""),
                                                                 ("层厚", 0x00180050, "mm"))
           if (v := _float(ds, key)) is not None]
    if acq:
        lines.append(" ".join(acq))
    return lines


def _float(ds: Dataset, tag: int) -> float | None:
    try:
        el = ds.get(tag, None)
        value: Any = el.value if el is not None else None
        return None if value in (None, "") else float(value[0] if isinstance(value, list) else value)
    except (TypeError, ValueError, IndexError, KeyError):
        return None


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.1f}"


def burn(img: Image.Image, top_left: list[str], top_right: list[str]) -> Image.Image:
    """The image with the lines drawn in its upper corners (white, outlined in black so they read on
    any background), the font scaled to the image's height."""
    if not top_left and not top_right:
        return img
    out = img.copy()
    draw = ImageDraw.Draw(out)
    size = max(9, min(out.size[1] // 22, 48))
    f = font(size)
    white, black = (255 if out.mode == "L" else (255, 255, 255)), (0 if out.mode == "L" else (0, 0, 0))
    stroke = max(1, size // 12)
    margin = max(2, size // 4)
    step = size + max(1, size // 5)
    for i, line in enumerate(top_left):
        draw.text((margin, margin + i * step), line, font=f, fill=white, stroke_width=stroke, stroke_fill=black)
    for i, line in enumerate(top_right):
        width = draw.textlength(line, font=f)
        draw.text((max(margin, out.size[0] - margin - width), margin + i * step), line, font=f, fill=white,
                  stroke_width=stroke, stroke_fill=black)
    return out

"""GB 11643-1999 resident identity numbers (18 digits, ISO 7064 MOD 11-2 check character)."""

from __future__ import annotations

import re
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"^[0-9]{17}[0-9X]\Z")
#: an 18-character resident ID number (or a 15-digit first-generation one) inside other text
_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9A-Za-z])")


def check_char(first17: str) -> str:
    """The check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("need exactly 17 digits")
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def problem(id_no: str) -> str | None:
    """None when ``id_no`` is a well-formed resident ID number, else a Chinese reason."""
    value = id_no.upper()
    if not _SHAPE.match(value):
        return "居民身份证号码应为18位（前17位数字，末位数字或X）"
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "居民身份证号码中的出生日期无效"
    if check_char(value[:17]) != value[17]:
        return "居民身份证号码校验位错误（GB 11643）"
    return None


def make(region6: str, born: date, sequence: int) -> str:
    """Build a valid number from a 6-digit region code, a birth date and a 3-digit sequence."""
    first17 = f"{region6}{born:%Y%m%d}{sequence % 1000:03d}"
    return first17 + check_char(first17)


def mask(id_no: str) -> str:
    """An ID number as it may be shown or logged: the first 4 and last 2 characters kept, the rest
    starred (``6501************3X``); a value of 6 characters or fewer is starred whole."""
    if len(id_no) <= 6:
        return "*" * len(id_no)
    return id_no[:4] + "*" * (len(id_no) - 6) + id_no[-2:]


def mask_in_text(text: str) -> str:
    """``text`` with every resident ID number shape in it masked (:func:`mask`)."""
    return _IN_TEXT.sub(lambda m: mask(m.group(0)), text)

"""Imaging, the pure part: DICOM UIDs, study states, query levels, image keys (kinds and lifetimes).

Pure: no pydicom here (``huren.wire.dicom`` parses files), no store. Used by the imaging service,
the DIMSE and DICOMweb transports, and the pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any, Final

from huren.errors import InvalidInput, Problem

#: PS3.5 §9.1: components of digits, no leading zero (except "0"), at most 64 characters
UID_MAX: Final = 64
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")

#: study states: RECEIVING until its sender commits it (storage commitment, STOW-RS, the gateway's commit)
RECEIVING: Final = "receiving"
COMPLETE: Final = "complete"
STATES: Final = (RECEIVING, COMPLETE)

LEVELS: Final = ("PATIENT", "STUDY", "SERIES", "IMAGE")

#: how a study reached the platform (Sender.channel)
CHANNELS: Final = ("dimse", "stow", "gateway", "adopt")

#: commit failures (CommitResult.failed reason codes; PS3.4 storage commitment maps both to 0x0112 / 0x0110)
MISSING: Final = "missing"
SHA_MISMATCH: Final = "sha256"

#: the storage SOP classes live under this root (PS3.4 B.5)
STORAGE_ROOT: Final = "1.2.840.10008.5.1.4."


@dataclass(slots=True)
class InstanceRecord:
    """What the index keeps of one instance (text as Unicode, from the normalised character set);
    made from a file's header by ``huren.wire.dicom.read_header``."""

    sop_uid: str
    sop_class_uid: str
    study_uid: str
    series_uid: str
    transfer_syntax: str
    patient_name: str
    patient_id: str
    patient_birth_date: str
    patient_sex: str
    study_date: str
    study_time: str
    accession_number: str
    study_id: str
    study_description: str
    referring_physician: str
    institution_name: str
    modality: str
    series_number: int | None
    series_description: str
    body_part: str
    series_date: str
    series_time: str
    instance_number: int | None
    rows: int | None
    columns: int | None
    frames: int
    charset_in: str  # the Specific Character Set as received
    charset: str  # the one used to decode the text
    metadata: dict[str, Any] = field(default_factory=dict)  # DICOM JSON without group 0010
    patient_json: dict[str, Any] = field(default_factory=dict)  # DICOM JSON of group 0010


# -- image keys (XC-E7…E11, YB-4.3) ---------------------------------------------------------------
VIEWER: Final = "viewer"
DOWNLOAD: Final = "download"
FILM: Final = "film"
KEY_KINDS: Final = (VIEWER, DOWNLOAD, FILM)
KEY_KIND_NAMES: Final = {VIEWER: "调阅密钥", DOWNLOAD: "下载密钥", FILM: "云胶片链接"}
#: a key is 16 random bytes as unpadded base64url: 22 characters of [A-Za-z0-9_-]
KEY_BYTES: Final = 16
KEY_LEN: Final = 22
_KEY = re.compile(r"^[A-Za-z0-9_-]{22}$")
#: the longest any key may live (a film link: 30 days by default; never more than a year)
KEY_TTL_MAX: Final = 366 * 86400
KEY_TTL_MIN: Final = 60

#: reasons a key check fails (KeyCheck.reason)
KEY_UNKNOWN: Final = "不存在"
KEY_EXPIRED: Final = "已过期"
KEY_REVOKED: Final = "已撤销"
KEY_WRONG_KIND: Final = "类型不符"

#: one view of a study is logged once per (caller or key, study, action) within this many seconds
LOG_DEDUPE_SECONDS: Final = 300

# -- AE titles (dicom_node) ---------------------------------------------------------------------
AE_MAX: Final = 16
_AE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE: no backslash, no control characters
NODE_PURPOSES: Final = ("sender", "pacs", "both")


def valid_uid(value: str) -> bool:
    return 0 < len(value) <= UID_MAX and bool(_UID.match(value))


def check_uid(value: object, field: str = "StudyInstanceUID", problems: list[Problem] | None = None) -> str:
    """``value`` when it is a valid DICOM UID; InvalidInput (rule ``uid``) otherwise — or, given
    ``problems``, the problem appended there and "" returned (to report every bad UID at once)."""
    text = value.strip("\0 ") if isinstance(value, str) else ""
    if not valid_uid(text):
        shown = str(value)[:80] if value is not None else ""
        msg = f"{field} 不是有效的 DICOM UID（数字与点组成，最长 64 个字符）：“{shown}”"
        if problems is not None:
            problems.append(Problem(field, "uid", msg))
            return ""
        raise InvalidInput(msg, [Problem(field, "uid", msg)])
    return text


def split_uids(value: str, field: str = "StudyInstanceUID", limit: int = 500) -> list[str]:
    """A UID list as QIDO / C-FIND give it (``\\`` or ``,`` separated), each checked."""
    parts = [p for p in re.split(r"[\\,]", value) if p.strip()]
    if len(parts) > limit:
        msg = f"{field} 最多可列出 {limit} 个 UID"
        raise InvalidInput(msg, [Problem(field, "limit", msg)])
    return [check_uid(p.strip(), field) for p in parts]


def is_storage_class(sop_class_uid: str) -> bool:
    return sop_class_uid.startswith(STORAGE_ROOT)


def check_key_kind(kind: str) -> str:
    if kind not in KEY_KINDS:
        msg = f"密钥类型必须是 {'、'.join(KEY_KINDS)} 之一：“{kind[:20]}”"
        raise InvalidInput(msg, [Problem("kind", "enum", msg)])
    return kind


def looks_like_key(value: str) -> bool:
    return bool(_KEY.match(value))


def key_expiry(issued_at: datetime, ttl_seconds: int) -> datetime:
    if not KEY_TTL_MIN <= ttl_seconds <= KEY_TTL_MAX:
        msg = f"有效期必须在 {KEY_TTL_MIN} 秒到 {KEY_TTL_MAX} 秒之间"
        raise InvalidInput(msg, [Problem("ttl_seconds", "range", msg)])
    return issued_at + timedelta(seconds=ttl_seconds)


@dataclass(frozen=True, slots=True)
class KeyState:
    valid: bool
    reason: str | None


def key_state(*, kind: str, expires_at: datetime, revoked: bool, now: datetime, allowed: Iterable[str] | None = None) -> KeyState:
    """Whether a stored key may be used now (revocation first, then expiry, then kind)."""
    if revoked:
        return KeyState(False, KEY_REVOKED)
    if now >= expires_at:
        return KeyState(False, KEY_EXPIRED)
    if allowed is not None and kind not in tuple(allowed):
        return KeyState(False, KEY_WRONG_KIND)
    return KeyState(True, None)


def check_ae(value: str, field: str = "ae_title") -> str:
    text = value.strip()
    if not _AE.match(text):
        msg = f"AE 标题必须为 1–16 个可见 ASCII 字符（不含反斜杠）：“{value[:20]}”"
        raise InvalidInput(msg, [Problem(field, "ae_title", msg)])
    return text


# -- query matching (PS3.4 C.2.2.2) -----------------------------------------------------------------
def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """A DICOM wildcard (``*`` any run, ``?`` one character) as a case-insensitive full match."""
    parts = ("." + "*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


_DATE = re.compile(r"^\d{8}$")


def date_range(value: str, field: str = "StudyDate") -> tuple[str | None, str | None]:
    """A DA match (``20240101``, ``20240101-``, ``-20241231``, ``20240101-20241231``) as bounds."""
    v = value.strip().replace(".", "")
    lo, sep, hi = v.partition("-")
    lo, hi = lo.strip(), hi.strip()
    if not sep:
        hi = lo
    if (lo and not _DATE.match(lo)) or (hi and not _DATE.match(hi)) or not (lo or hi):
        msg = f"{field} 必须是 YYYYMMDD 或 YYYYMMDD-YYYYMMDD 形式的日期或日期范围：“{value[:40]}”"
        raise InvalidInput(msg, [Problem(field, "date", msg)])
    return lo or None, hi or None


# -- YB-5: the dictionaries of seed 003 (package data: huren/domain/data/yb_dictionaries.tsv) -------
YB_DICTIONARIES: Final = ("patientType", "sex", "examRsltCode", "imgExamType", "prfs", "chargeType", "doctorType")
YB_TITLES: Final = {
    "patientType": "患者类型", "sex": "性别", "examRsltCode": "检查检验结果代码", "imgExamType": "影像检查类型",
    "prfs": "职业", "chargeType": "费用类型", "doctorType": "人员类型",
}


@cache
def _yb() -> dict[str, dict[str, str]]:
    text = resources.files("huren.domain").joinpath("data/yb_dictionaries.tsv").read_text(encoding="utf-8")
    out: dict[str, dict[str, str]] = {name: {} for name in YB_DICTIONARIES}
    for line in text.splitlines()[1:]:
        if line.strip():
            name, code, title = line.split("\t")
            out[name][code] = title
    return out


def yb_dictionary(name: str) -> Mapping[str, str]:
    """The codes of one YB-5 dictionary (code → name), exactly as seed 003 prints them."""
    if name not in YB_DICTIONARIES:
        raise KeyError(name)
    return _yb()[name]


def yb_name(dictionary: str, code: str) -> str | None:
    return yb_dictionary(dictionary).get(code.strip())


def check_yb(dictionary: str, code: str, field: str | None = None) -> str:
    """``code`` when it is in the YB-5 dictionary; InvalidInput (rule ``dictionary``) naming the allowed codes otherwise."""
    value = code.strip() if isinstance(code, str) else ""
    codes = yb_dictionary(dictionary)
    if value not in codes:
        allowed = "、".join(f"{k} {v}" for k, v in codes.items())
        msg = f"{field or dictionary}（{YB_TITLES[dictionary]}）的取值“{str(code)[:20]}”不在字典中，可选：{allowed}"
        raise InvalidInput(msg, [Problem(field or dictionary, "dictionary", msg)])
    return value

"""The parameters of the medical-insurance imaging cloud's endpoints (seed 003 YB-4.3 … 4.5) and
their checks, apart from the web (``huren.gateway.imaging_api`` serves them): the seed's
encodeURI-with-``$`` convention, its ``hospitalld`` spelling, missing and bad fields named in
Chinese (:class:`Bad`), the XJ Modality list, the YB-5 sex / doctorType dictionaries, resident ID
numbers sent SM2-encrypted (or plain), the deletion notice's time.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from huren.crypto import sm2
from huren.domain import dictionaries, idcard
from huren.domain.imaging import yb_dictionary

MAX_QUERY = 8192
MAX_VALUE = 256
#: the YB-5 dictionaries (seed 003 §5.2 sex, §5.7 doctorType) the login's fields follow
YB_SEX = yb_dictionary("sex")
YB_DOCTOR_TYPE = yb_dictionary("doctorType")
_DOLLAR = re.compile(r"\$([0-9A-Fa-f]{2})")
_PHONE = re.compile(r"\+?[0-9][0-9-]{5,19}")
_FIELD_TEXT = re.compile(r"[^\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]+")


class Bad(Exception):
    """Parameters missing or bad: ``missing`` names, ``bad`` (name, Chinese reason)."""

    def __init__(self, missing: list[str], bad: list[tuple[str, str]]) -> None:
        self.missing, self.bad = missing, bad
        parts = []
        if missing:
            parts.append(f"传参数不规范（少传参数）：缺少 {'、'.join(missing)}")
        if bad:
            parts.append(("" if missing else "传参数不规范：") + "；".join(f"{n} {why}" for n, why in bad))
        super().__init__("；".join(parts))


def dollar_decode(raw: str) -> str:
    """The seed's encodeURI-with-``$`` text decoded: ``$E5$BC$A0`` → 张 (``%XX`` too); UnicodeDecodeError
    when the bytes are not UTF-8."""
    return unquote(_DOLLAR.sub(r"%\1", raw), errors="strict")


def query_params(raw: str) -> dict[str, str]:
    """The query string's parameters, ``$``-decoded and trimmed (the seed's templates carry stray
    spaces and ``{name}`` keys); Bad for a repeated, over-long or undecodable parameter."""
    if len(raw) > MAX_QUERY:
        raise Bad([], [("query", f"参数总长度超过 {MAX_QUERY} 字符")])
    out: dict[str, str] = {}
    bad: list[tuple[str, str]] = []
    for pair in raw.split("&"):
        if not pair.strip():
            continue
        key, _, value = pair.partition("=")
        try:
            name = dollar_decode(key).strip().strip("{}").strip()
        except UnicodeDecodeError:
            bad.append((key[:32], "参数名不是合法的 UTF-8 编码"))
            continue
        name = "hospitalId" if name == "hospitalld" else name  # the seed's table spells it so
        try:
            text = dollar_decode(value).strip()
        except UnicodeDecodeError:
            bad.append((name, "不是合法的 encodeURI 编码（UTF-8，% 以 $ 代替）"))
            continue
        if name in out:
            bad.append((name, "重复出现"))
        elif len(text) > MAX_VALUE:
            bad.append((name, f"超过 {MAX_VALUE} 字符"))
        elif text and not _FIELD_TEXT.fullmatch(text):
            bad.append((name, "含有控制字符"))
        else:
            out[name] = text
    if bad:
        raise Bad([], bad)
    return out


def utf8(raw: bytes, where: str) -> str:
    """Bytes sent unencoded (some clients do) are taken as UTF-8; Bad otherwise."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Bad([], [(where, "不是合法的 UTF-8 编码")]) from None


def require(params: Mapping[str, str], names: tuple[str, ...]) -> None:
    missing = [n for n in names if not params.get(n)]
    if missing:
        raise Bad(missing, [])


def check_modality(value: str) -> str | None:
    known = dictionaries.load("MODALITY")
    if value in known:
        return None
    return f"“{value[:16]}”不在检查模式字典（XJ Modality：{'、'.join(known)}）中"


def decrypt_id(value: str, key: sm2.Sm2Key | None, order: sm2.CipherOrder = "C1C3C2") -> str:
    """A resident ID number sent plain or SM2-encrypted (hex, or Base64, of C1C3C2 / C1C2C3 / DER);
    ValueError with a Chinese reason."""
    plain = value.strip().upper()
    if len(plain) == 18 and idcard.problem(plain) is None:
        return plain
    if key is None:
        raise ValueError("无法解密：前置机未配置 SM2 私钥")
    try:
        raw = bytes.fromhex(value) if re.fullmatch(r"[0-9A-Fa-f]+", value) else base64.b64decode(value, validate=True)
        text = sm2.sm2_decrypt(key, raw, order).decode("utf-8").strip().upper()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("不是本前置机 SM2 公钥加密的身份证号（SM2 解密失败）") from None
    why = idcard.problem(text)
    if why:
        raise ValueError(f"解密后不是有效的居民身份证号：{why}")
    return text


HRBALL_LOGIN = (
    "hisUserId", "type", "doctorName", "hospitalId", "department", "departmentCode", "doctorSex", "doctorType",
    "doctorCode", "doctorIdCardNo",
)


@dataclass(frozen=True, slots=True)
class Login:
    his_user_id: str
    client: str
    doctor_name: str
    hospital_id: str
    department: str
    department_code: str
    doctor_sex: str
    doctor_type: str
    doctor_code: str
    id_no_masked: str
    phone: str
    expires: float  # time.time() when the login is over (kept across restarts: huren.gateway.yb_sessions)


def hrball_login(params: Mapping[str, str], *, client: str, hospital_ids: frozenset[str], key: sm2.Sm2Key | None,
                 order: sm2.CipherOrder = "C1C3C2", ttl: float = 43200.0, now: float | None = None) -> Login:
    """The YB-4.4.3.1 login parameters checked (each bad field named); Bad otherwise. The login
    lasts ``ttl`` seconds from ``now`` (the wall clock's ``time.time()`` unless given); the
    doctor's ID number is checked and kept masked only."""
    require(params, HRBALL_LOGIN)
    bad: list[tuple[str, str]] = []
    if params["hospitalId"] not in hospital_ids:
        bad.append(("hospitalId", f"“{params['hospitalId'][:32]}”不是本前置机的医保医疗机构"))
    if params["doctorSex"] not in YB_SEX:
        bad.append(("doctorSex", f"“{params['doctorSex'][:8]}”不在性别字典（{'、'.join(f'{k} {v}' for k, v in YB_SEX.items())}）中"))
    if params["doctorType"] not in YB_DOCTOR_TYPE:
        choices = "、".join(f"{k} {v}" for k, v in YB_DOCTOR_TYPE.items())
        bad.append(("doctorType", f"“{params['doctorType'][:8]}”不在人员类型字典（{choices}）中"))
    for name, limit in (("hisUserId", 64), ("doctorName", 64), ("department", 64), ("departmentCode", 32), ("doctorCode", 32)):
        if len(params[name]) > limit:
            bad.append((name, f"超过 {limit} 字符"))
    phone = params.get("phoneNumber", "")
    if phone and not _PHONE.fullmatch(phone):
        bad.append(("phoneNumber", "不是有效的电话号码"))
    id_no = ""
    try:
        id_no = decrypt_id(params["doctorIdCardNo"], key, order)
    except ValueError as exc:
        bad.append(("doctorIdCardNo", str(exc)))
    if bad:
        raise Bad([], bad)
    return Login(
        params["hisUserId"], client, params["doctorName"], params["hospitalId"], params["department"],
        params["departmentCode"], params["doctorSex"], params["doctorType"], params["doctorCode"], idcard.mask(id_no),
        phone, (time.time() if now is None else now) + ttl,
    )


DELETION = ("patientName", "accessionNo", "hospitalId", "operateDoctorName", "operateDateTime")
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y%m%d%H%M%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M")


def parse_moment(text: str) -> datetime | None:
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    return None


def deletion_notice(params: Mapping[str, Any], hospital_ids: frozenset[str]) -> dict[str, str]:
    """The YB-4.5 notice checked: the five fields, ``operateDateTime`` as ``YYYY-MM-DDTHH:MM:SS``."""
    values = {k: str(v).strip() for k, v in params.items() if isinstance(v, (str, int)) and not isinstance(v, bool)}
    require(values, DELETION)
    bad: list[tuple[str, str]] = []
    moment = parse_moment(values["operateDateTime"])
    if moment is None:
        bad.append(("operateDateTime", "应为“YYYY-MM-DD HH:MM:SS”格式的时间"))
    if values["hospitalId"] not in hospital_ids:
        bad.append(("hospitalId", f"“{values['hospitalId'][:32]}”不是本前置机的医保医疗机构"))
    for name in DELETION:
        if len(values[name]) > (64 if name in ("accessionNo", "hospitalId") else 128):
            bad.append((name, "过长"))
    if bad or moment is None:
        raise Bad([], bad)
    return {n: values[n] for n in DELETION} | {"operateDateTime": moment.isoformat(timespec="seconds")}

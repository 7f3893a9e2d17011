"""The medical-insurance imaging cloud's endpoints on the gateway (seed 003 YB-4.3 … 4.5), for the
hospital's PACS and the doctors' workstations, on their own listener (``[imaging] listen``):

===========================================================  =========================================
``GET  /getway/reportAndFilm/api/qrurl``                     YB-4.3: the patient's cloud-film URL
``GET  /getway/reportAndFilm/api/qrcode``                    YB-4.3: that URL as a QR image (Base64 PNG)
                                                             with "扫描查看数字影像" under it
``GET  /hrball/``                                            YB-4.4.3.1: the viewing plugin's login
                                                             (type=1) / logout (type=2)
``GET  /iuWorkStation/swipingIdCardNo``                      YB-4.4.3.2: the patient's exams with
                                                             images at other hospitals (bubble alert)
``POST /getway/api/imageDeletion``                           YB-4.5: image deletion notice (JSON or form)
===========================================================  =========================================

Every answer is the seed's envelope ``{"code": …, "message": …, "data": …}`` with the same HTTP
status: 200 请求成功, 202 传参数不规范 (a parameter missing or bad, each named), 401 the
workstation is not logged in, 403 a caller outside ``clients``, 500 内部服务错误 (the platform
unreachable, or anything unexpected — never a traceback). Query values follow the seed's encodeURI
convention: ``$`` stands for ``%`` (``$E5$BC$A0`` → 张); ``+`` is kept as it is (encodeURI
never writes it for a space). The listener, its callers and keys: ``huren.gateway.imaging``
(``[imaging]``).
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from huren.client import HurenClient
from huren.crypto import sm2
from huren.domain import dictionaries, idcard
from huren.domain.imaging import yb_dictionary
from huren.errors import PlatformRefused, PlatformUnavailable
from huren.gateway.imaging import qr_png
from huren.gateway.model import Record

log = logging.getLogger("huren.gateway.imaging_api")

MAX_QUERY = 8192
MAX_VALUE = 256
MAX_BODY = 64 * 1024
OK = "请求成功"
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


def envelope(code: int, message: str, data: Any = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "data": data}, status_code=code)


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
    expires: float


def hrball_login(params: Mapping[str, str], *, client: str, hospital_ids: frozenset[str], key: sm2.Sm2Key | None,
                 order: sm2.CipherOrder = "C1C3C2", ttl: float = 43200.0) -> Login:
    """The YB-4.4.3.1 login parameters checked (each bad field named); Bad otherwise."""
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
        phone, time.monotonic() + ttl,
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


@dataclass
class YbConf:
    org_code: str
    hospital_ids: frozenset[str]
    clients: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    hosts: frozenset[str]
    token: str = ""
    key: sm2.Sm2Key | None = None
    order: sm2.CipherOrder = "C1C3C2"
    session_seconds: float = 43200.0
    font: Path | None = None


class Sessions:
    """Logged-in workstations (hisUserId → Login), in memory: the PACS logs in again at its next login."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_user: dict[str, Login] = {}

    def put(self, login: Login) -> None:
        with self._lock:
            self._by_user[login.his_user_id] = login

    def end(self, his_user_id: str, client: str) -> bool:
        """End the workstation's login (only from the machine that logged in)."""
        with self._lock:
            s = self._by_user.get(his_user_id)
            if s is None or s.client != client:
                return False
            del self._by_user[his_user_id]
            return True

    def count(self) -> int:
        with self._lock:
            return len(self._by_user)

    def get(self, his_user_id: str, client: str) -> Login | None:
        with self._lock:
            s = self._by_user.get(his_user_id)
            if s is None or s.expires < time.monotonic():
                self._by_user.pop(his_user_id, None)
                return None
            return s if s.client == client else None


def _allowed(conf: YbConf, request: Request) -> str | None:
    """Why the caller is refused (Chinese), or None."""
    host = request.headers.get("host", "").lower()
    if host not in conf.hosts:  # a page whose DNS name is rebound to the gateway cannot read the answers
        return f"请求的主机名“{host[:64]}”不是前置机的地址"
    ip = request.client.host if request.client else ""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "无法识别调用方地址"
    if not any(addr in net for net in conf.clients):
        return f"调用方 {ip} 不在 [imaging] clients 允许之列"
    if conf.token:
        header = request.headers.get("authorization", "")
        got = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-access-token", "")
        if got != conf.token and request.query_params.get("token") != conf.token:
            return "缺少或错误的前置机影像接口令牌"
    return None


def create_yb_app(conf: YbConf, client: HurenClient, enqueue: Callable[[list[Record]], None]) -> FastAPI:
    """The YB endpoints over ``client`` (the platform) and ``enqueue`` (the outbox)."""
    app = FastAPI(title="huren 前置机医保影像云接口（YB-4.3…4.5）", docs_url=None, redoc_url=None, openapi_url=None)
    sessions = Sessions()
    app.state.sessions = sessions

    def guarded(fn: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            refusal = _allowed(conf, request)
            if refusal:
                return envelope(403, refusal)
            try:
                result: Response = await fn(request)
                return result
            except Bad as exc:
                return envelope(202, str(exc))
            except PlatformUnavailable:
                return envelope(500, "内部服务错误：医保影像云平台暂时无法连接，请稍后重试")
            except PlatformRefused as exc:
                message = exc.body.get("message", "") if isinstance(exc.body, dict) else ""
                if exc.status in (400, 404, 409, 422):
                    return envelope(202, f"传参数不规范：{message or '平台拒绝了请求'}")
                log.error("平台拒绝了影像接口请求", extra={"status": exc.status, "reason": message})
                return envelope(500, f"内部服务错误：平台拒绝了请求（HTTP {exc.status}）")
            except Exception:
                log.exception("影像接口处理出错")
                return envelope(500, "内部服务错误")

        return handler

    def params(request: Request) -> dict[str, str]:
        return query_params(utf8(request.scope.get("query_string", b""), "query"))

    def film(p: Mapping[str, str]) -> str:
        require(p, ("accessNumber", "modality", "hospitalId"))
        bad = []
        why = check_modality(p["modality"])
        if why:
            bad.append(("modality", why))
        if p["hospitalId"] not in conf.hospital_ids:
            bad.append(("hospitalId", f"“{p['hospitalId'][:32]}”不是本前置机的医保医疗机构"))
        if len(p["accessNumber"]) > 64:
            bad.append(("accessNumber", "超过 64 字符"))
        if bad:
            raise Bad([], bad)
        answer = client.film_url(p["accessNumber"], p["modality"], conf.org_code)
        url = answer.get("url") if isinstance(answer, dict) else None
        if not isinstance(url, str) or not url:
            raise RuntimeError("平台应答中没有 url")
        return url

    async def qrurl(request: Request) -> Response:
        return envelope(200, OK, await run_in_threadpool(film, params(request)))

    async def qrcode(request: Request) -> Response:
        p = params(request)
        url = await run_in_threadpool(film, p)
        png = await run_in_threadpool(qr_png, url, caption=p.get("caption", "1") != "0", font=conf.font)
        return envelope(200, OK, base64.b64encode(png).decode("ascii"))

    async def hrball(request: Request) -> Response:
        p = params(request)
        require(p, ("hisUserId", "type"))
        ip = request.client.host if request.client else ""
        if p["type"] == "2":
            ended = sessions.end(p["hisUserId"], ip)
            log.info("外院调阅插件已退出", extra={"hisUserId": p["hisUserId"], "was_logged_in": ended})
            return envelope(200, OK, {"hisUserId": p["hisUserId"], "loggedIn": False})
        if p["type"] != "1":
            raise Bad([], [("type", f"“{p['type'][:8]}”应为 1（登录）或 2（退出）")])
        login = hrball_login(p, client=ip, hospital_ids=conf.hospital_ids, key=conf.key, order=conf.order, ttl=conf.session_seconds)
        sessions.put(login)
        log.info("外院调阅插件已登录", extra={"hisUserId": login.his_user_id, "doctorCode": login.doctor_code, "client": ip})
        return envelope(200, OK, {"hisUserId": login.his_user_id, "doctorName": login.doctor_name, "loggedIn": True})

    async def swiping(request: Request) -> Response:
        p = params(request)
        require(p, ("hisUserId", "idCardNo"))
        ip = request.client.host if request.client else ""
        login = sessions.get(p["hisUserId"], ip)
        if login is None:
            return envelope(401, "外院调阅插件未登录：请先在 PACS 登录（/hrball/?type=1）后再查询")
        try:
            id_no = decrypt_id(p["idCardNo"], conf.key, conf.order)
        except ValueError as exc:
            raise Bad([], [("idCardNo", str(exc))]) from None
        id_type = p.get("idType", "01")
        answer = await run_in_threadpool(lambda: client.patient_exams(id_type, id_no, timeout=10.0))
        exams = answer.get("exams", []) if isinstance(answer, dict) else []
        log.info("外院检查提醒查询", extra={"hisUserId": login.his_user_id, "doctorCode": login.doctor_code,
                                      "patient": idcard.mask(id_no), "exams": len(exams)})
        bubble = f"该患者在外院有 {len(exams)} 次影像检查，点击查看" if exams else ""
        return envelope(200, OK, {"count": len(exams), "bubble": bubble, "exams": exams})

    async def deletion(request: Request) -> Response:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise Bad([], [("body", f"请求体超过 {MAX_BODY} 字节")])
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        body: Any
        if media == "application/json":
            import orjson

            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise Bad([], [("body", "不是合法的 JSON")]) from None
            if not isinstance(body, dict):
                raise Bad([], [("body", "应为 JSON 对象")])
        elif media in ("application/x-www-form-urlencoded", ""):
            body = query_params(utf8(raw, "body").replace("+", "%20"))  # a form's space
        else:
            raise Bad([], [("Content-Type", "应为 application/json 或 application/x-www-form-urlencoded")])
        notice = deletion_notice(body, conf.hospital_ids) | {"hospitalId": conf.org_code}
        rec = Record("image_deletion", f"image_deletion:{conf.org_code}|{notice['accessionNo']}", notice, "yb")
        await run_in_threadpool(enqueue, [rec])
        log.info("影像删除通知已接收", extra={"accessionNo": notice["accessionNo"], "operator": notice["operateDoctorName"]})
        return envelope(200, OK, {"queued": True})

    async def healthz(request: Request) -> Response:
        return envelope(200, OK, {"sessions": sessions.count()})

    for path, fn, methods in (
        ("/getway/reportAndFilm/api/qrurl", qrurl, ["GET"]),
        ("/getway/reportAndFilm/api/qrcode", qrcode, ["GET"]),
        ("/hrball/", hrball, ["GET"]),
        ("/hrball", hrball, ["GET"]),
        ("/iuWorkStation/swipingIdCardNo", swiping, ["GET", "POST"]),
        ("/getway/api/imageDeletion", deletion, ["POST"]),
        ("/healthz", healthz, ["GET"]),
    ):
        app.add_api_route(path, guarded(fn), methods=methods, include_in_schema=False)
    return app

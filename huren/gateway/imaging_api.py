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
never writes it for a space). The parameters and their checks: ``huren.gateway.yb_params``; the
listener's settings (``[imaging] listen``, ``clients``, ``hosts``, ``token``, the SM2 key …):
``yb_conf`` below.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from huren.client import HurenClient
from huren.crypto import sm2
from huren.domain import idcard
from huren.errors import PlatformRefused, PlatformUnavailable
from huren.gateway.imaging import ImagingConf, find_font, qr_png
from huren.gateway.model import Record
from huren.gateway.threaded import ServerThread
from huren.gateway.yb_params import (
    Bad,
    check_modality,
    decrypt_id,
    deletion_notice,
    hrball_login,
    query_params,
    require,
    utf8,
)
from huren.gateway.yb_sessions import YbSessions, sessions_path

if TYPE_CHECKING:
    from huren.gateway.config import GatewayConfig

log = logging.getLogger("huren.gateway.imaging_api")

MAX_BODY = 64 * 1024
OK = "请求成功"


def envelope(code: int, message: str, data: Any = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "data": data}, status_code=code)


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
        want = conf.token.encode()
        if not any(hmac.compare_digest(t.encode(), want) for t in (got, request.query_params.get("token", ""))):
            return "缺少或错误的前置机影像接口令牌"
    return None


def create_yb_app(
    conf: YbConf, client: HurenClient, enqueue: Callable[[list[Record]], None], sessions: YbSessions,
) -> FastAPI:
    """The YB endpoints over ``client`` (the platform), ``enqueue`` (the outbox) and ``sessions``
    (the workstations' logins, kept across restarts)."""
    app = FastAPI(title="huren 前置机医保影像云接口（YB-4.3…4.5）", docs_url=None, redoc_url=None, openapi_url=None)
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
            ended = await run_in_threadpool(sessions.end, p["hisUserId"], ip)
            log.info("外院调阅插件已退出", extra={"hisUserId": p["hisUserId"], "was_logged_in": ended})
            return envelope(200, OK, {"hisUserId": p["hisUserId"], "loggedIn": False})
        if p["type"] != "1":
            raise Bad([], [("type", f"“{p['type'][:8]}”应为 1（登录）或 2（退出）")])
        login = hrball_login(
            p, client=ip, hospital_ids=conf.hospital_ids, key=conf.key, order=conf.order, ttl=conf.session_seconds,
            now=sessions.clock(),
        )
        await run_in_threadpool(sessions.put, login)
        log.info("外院调阅插件已登录", extra={"hisUserId": login.his_user_id, "doctorCode": login.doctor_code, "client": ip})
        return envelope(200, OK, {"hisUserId": login.his_user_id, "doctorName": login.doctor_name, "loggedIn": True})

    async def swiping(request: Request) -> Response:
        p = params(request)
        require(p, ("hisUserId", "idCardNo"))
        ip = request.client.host if request.client else ""
        login = await run_in_threadpool(sessions.get, p["hisUserId"], ip)
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
        return envelope(200, OK, {"sessions": await run_in_threadpool(sessions.count)})

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


# -- [imaging] listen: the settings and the listener ------------------------------------------------


def yb_conf(config: GatewayConfig, conf: ImagingConf) -> YbConf:
    """The YB endpoints' settings (``huren.gateway.imaging_api.YbConf``); the SM2 key pair the PACS
    encrypts ID numbers to is created on first use in ``sm2_key_dir`` (default ``keys/yb`` beside
    the outbox; give the vendor ``sm2_public.txt``)."""
    import ipaddress

    from huren.crypto import keyfiles
    from huren.crypto.errors import GmError
    from huren.gateway.config import ConfigError
    from huren.gateway.preload_conf import allowed_hosts, parse_listen

    t = dict(conf.table)
    try:
        parse_listen(conf.listen)
    except ValueError:
        raise ConfigError('[imaging] listen 应为“主机:端口”，例如 "0.0.0.0:8766"') from None
    try:
        clients = tuple(ipaddress.ip_network(str(c), strict=False) for c in t.get("clients", ["127.0.0.1", "::1"]))
    except ValueError:
        raise ConfigError('[imaging] clients 应为 IP 地址或网段的列表，例如 ["10.1.2.30", "10.1.8.0/24"]') from None
    hosts = t.get("hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h and ":" not in h for h in hosts):
        raise ConfigError('[imaging] hosts 应为不带端口的主机名列表，例如 ["pacs-gw.hospital.local"]')
    token = t.get("token", "")
    if not isinstance(token, str) or (token and len(token) < 16):
        raise ConfigError("[imaging] token 应为至少 16 个字符的字符串（不设则只按 clients 限制调用方）")
    ids = t.get("hospital_ids", [config.platform.org_code])
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise ConfigError('[imaging] hospital_ids 应为医保医疗机构代码的列表，例如 ["H65010200001"]')
    order = str(t.get("sm2_order", "C1C3C2")).upper()
    if order not in ("C1C3C2", "C1C2C3"):
        raise ConfigError('[imaging] sm2_order 应为 "C1C3C2" 或 "C1C2C3"')
    raw = str(t.get("sm2_key_dir", "") or "")
    key_dir = Path(raw).expanduser() if raw else config.outbox.path.parent / "keys" / "yb"
    key_dir = key_dir if key_dir.is_absolute() else config.base_dir / key_dir
    try:
        key = (
            keyfiles.load_platform_key(key_dir) if (key_dir / keyfiles.PRIVATE_KEY_FILE).exists()
            else keyfiles.init_platform_key(key_dir)
        )
    except GmError as exc:
        raise ConfigError(f"[imaging] sm2_key_dir：{exc}") from exc
    hours = t.get("session_hours", 12)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or hours <= 0:
        raise ConfigError("[imaging] session_hours 应为正数")
    font = find_font(str(t.get("caption_font", "") or ""))
    if font is None:
        log.warning("未找到中文字体：云胶片二维码下方将不显示“扫描查看数字影像”（可在 [imaging] caption_font 指定字体文件）")
    if parse_listen(conf.listen)[0] in ("0.0.0.0", "::") and not hosts:
        raise ConfigError(
            f"[imaging] listen ({conf.listen}) 监听所有网卡时须在 hosts 中列出 PACS 与工作站访问前置机所用的地址或主机名"
            '（例如 hosts = ["10.1.2.5", "pacs-gw.hospital.local"]）：其他 Host 的请求一律拒绝'
        )
    names = allowed_hosts(conf.listen, tuple(hosts))
    return YbConf(
        org_code=config.platform.org_code, hospital_ids=frozenset(ids), clients=clients, hosts=names, token=token,
        key=key, order="C1C2C3" if order == "C1C2C3" else "C1C3C2", session_seconds=float(hours) * 3600, font=font,
    )


class YbService(ServerThread):
    """The YB endpoints served by uvicorn in a thread; ``stop()`` ends it and closes its client."""

    def __init__(self, server: Any, client: HurenClient) -> None:
        super().__init__(server, client, name="yb-api", what="医保影像云接口")


def start_yb(config: GatewayConfig, conf: ImagingConf, enqueue: Callable[[list[Record]], None]) -> YbService:
    """Start the YB endpoints on ``[imaging] listen`` (what the runner calls)."""
    from huren.gateway.preload import preload_server
    from huren.gateway.sealing import cipher_beside

    yb = yb_conf(config, conf)
    p = config.platform
    timeout = float(dict(conf.table).get("timeout_seconds", 10.0))
    sessions = YbSessions(sessions_path(config.outbox.path), cipher_beside(config.outbox.path, config.outbox.cipher))
    sessions.purge()
    client = HurenClient(p.base_url, p.org_code, p.username, p.password, timeout=timeout)
    try:
        service = YbService(preload_server(create_yb_app(yb, client, enqueue, sessions), conf.listen), client).start()
    except BaseException:
        client.close()
        raise
    log.info("医保影像云接口已启动", extra={"listen": conf.listen})
    return service

"""The Xinjiang SOAP endpoint ``/Myhealth`` (seed 002 §1.2–1.4), WSDL at ``/Myhealth?wsdl``.

Transport only: read the envelope (``wire.soap``) → unwrap ``strKey`` with the platform SM2 key
into the caller's SM4 key → SM4-decrypt ``strCredential`` and the data parameter (Base64) → check
the credential → parse the XML (``wire.xj_xml``) → call the service → answer. Uploads answer
``ok`` (a void of a cited report: ``ok:`` naming the citers), queries the seed's XML SM4-encrypted
with the caller's key in Base64, and every failure ``error:原因`` inside a normal SOAP answer —
never a stack trace, never HTTP 500. Unparseable submissions from an authenticated caller are kept
as rejected submissions (channel ``soap``), like everything the services refuse.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from lxml import etree  # type: ignore[import-untyped]
from starlette.concurrency import run_in_threadpool

from huren.context import Principal
from huren.crypto import b64, sm4
from huren.crypto.errors import GmError
from huren.domain.recognition import Visit
from huren.errors import HurenError, InvalidInput, Problem, TooLarge, Unauthorized
from huren.services.container import Container
from huren.wire import xj_xml
from huren.wire.soap import CONTENT_TYPES, METHODS, SoapCall, fault, guess_call, parse_request, response, wsdl

log = logging.getLogger("huren.soap")
router = APIRouter(include_in_schema=False)
PATHS = ("/Myhealth", "/Myhealth.asmx")
CREDENTIAL_TTL = 60.0  # seconds a checked credential is trusted without scrypt again (revocation ≤ 60 s late)
CREDENTIAL_CACHE = 1024
_HEAD = 64 * 1024  # of an oversized body, what is kept to find the method in
_MAX_PROBLEMS = 10


class SoapProfile:
    """Per process: a bounded cache of checked credentials; the platform key and the strKey
    unwrapper are the keyring's (``c.keys``, built once in bootstrap)."""

    def __init__(self, c: Container) -> None:
        self.c = c
        self._salt = secrets.token_bytes(32)
        self._creds: OrderedDict[tuple[str, str, bytes], tuple[Principal, int | None, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        return self.c.settings.max_request_bytes

    # -- the envelope's crypto -----------------------------------------------------------
    def sm4_key(self, params: Mapping[str, str]) -> bytes:
        text = params.get("strKey", "").strip()
        if not text:
            raise _missing("strKey")
        try:
            return self.c.keys.unwrapper().unwrap(text)  # NotConfigured without a platform key
        except GmError as exc:
            raise Unauthorized(
                "strKey 解密失败：应为用平台SM2公钥加密的16字节SM4密钥（Base64）",
                [Problem("strKey", "sm2", str(exc))],
            ) from exc

    def plain(self, key: bytes, params: Mapping[str, str], name: str) -> bytes:
        text = params.get(name, "").strip()
        if not text:
            raise _missing(name)
        try:
            return sm4.sm4_decrypt(key, b64.b64d(text))
        except GmError as exc:
            raise InvalidInput(
                f"{name} 解密失败：应为用strKey中的SM4密钥（ECB模式）加密后的Base64", [Problem(name, "sm4", str(exc))]
            ) from exc

    # -- the caller --------------------------------------------------------------------------
    def principal(self, cred: xj_xml.Credential, remote: str | None) -> Principal:
        ck = (cred.org_code, cred.username, hmac.new(self._salt, cred.password.encode(), hashlib.sha256).digest())
        now = time.monotonic()
        with self._lock:
            hit = self._creds.get(ck)
            if hit is not None and hit[2] > now:
                self._creds.move_to_end(ck)
        # a cached credential holds while its account's version does (disabled, enabled or a new
        # password: at once in this process, within the auth service's 60 s elsewhere)
        if hit is None or hit[2] <= now or hit[1] is None or not self.c.auth.current(cred.org_code, cred.username, hit[1]):
            # throttled per account and address, every failure logged (TooMany → error:…)
            p = self.c.auth.authenticate(cred.org_code, cred.username, cred.password, channel="soap", remote=remote)
            version = self.c.auth.version_of(cred.org_code, cred.username)
            with self._lock:
                self._creds[ck] = (p, version, now + CREDENTIAL_TTL)
                self._creds.move_to_end(ck)
                while len(self._creds) > CREDENTIAL_CACHE:
                    self._creds.popitem(last=False)
        else:
            p = hit[0]
        if p.org_code != cred.org_code:  # the institution in <org code> is the one authenticated
            raise Unauthorized("身份证据中的机构编码与认证机构不一致")
        return Principal(p.org_code, p.username, p.role, remote)

    # -- one call ----------------------------------------------------------------------------
    def handle(self, call: SoapCall, remote: str | None, base_url: str) -> str:
        """The answer text of one call (``ok…`` or Base64); HurenError for every refusal."""
        data_param = METHODS[call.method][0]
        key = self.sm4_key(call.params)
        cred_root = xj_xml.safe_parse(self.plain(key, call.params, "strCredential"), limit=self.limit, what="strCredential")
        who = self.principal(xj_xml.credential(cred_root), remote)
        self.c.transport.refuse_unsigned(who, "soap")  # the institution's signature policy holds here too
        raw = self.plain(key, call.params, data_param)
        ctx = _Call(self, who, key, raw, base_url)
        return HANDLERS[call.method](ctx, data_param)


def _missing(name: str) -> InvalidInput:
    return InvalidInput(f"缺少参数 {name}", [Problem(name, "required", f"参数 {name} 不能为空")])


class _Call:
    """What a method handler has: the services, the caller, the SM4 key and the decrypted data."""

    def __init__(self, profile: SoapProfile, who: Principal, key: bytes, raw: bytes, base_url: str) -> None:
        self.c = profile.c
        self.limit = profile.limit
        self.who = who
        self.key = key
        self.raw = raw
        self.base_url = base_url

    def xml(self, what: str, keep_as: str | None = None) -> etree._Element:
        """The decrypted parameter parsed; an unparseable submission is kept as rejected."""
        try:
            return xj_xml.safe_parse(self.raw, limit=self.limit, what=what)
        except HurenError as exc:
            if keep_as:
                self.keep(keep_as, exc)
            raise

    def keep(self, kind: str, exc: HurenError) -> None:
        problems = exc.problems or [Problem("", exc.code, exc.message)]
        rid = self.c.registry.reject(self.who, kind, "soap", problems, self.raw)
        exc.kept(rid)

    def encrypted(self, text: str) -> str:
        return b64.b64e(sm4.sm4_encrypt(self.key, text.encode("utf-8")))

    def absolute(self, rows: Sequence[dict[str, Any]]) -> None:
        """Platform links (``url``, ``pdf_url``) made absolute for the hospital's browser."""
        for row in rows:
            for name in ("url", "pdf_url"):
                value = row.get(name)
                if isinstance(value, str) and value.startswith("/"):
                    row[name] = self.base_url + value
            items = row.get("item")
            if isinstance(items, list):
                self.absolute(items)


# -- the methods ---------------------------------------------------------------------------------
def _archive(x: _Call, what: str) -> str:
    root = x.xml(what, keep_as=_kind_of(x.raw))
    try:
        kind, payload = xj_xml.report(root)
    except HurenError as exc:
        x.keep(_kind_of(x.raw), exc)
        raise
    if kind == "daily":
        x.c.registry.upload_daily(payload, x.who, channel="soap", raw=x.raw)
    else:
        x.c.registry.register(kind, payload, x.who, channel="soap", raw=x.raw)
    return "ok"


def _kind_of(raw: bytes) -> str:
    """What an unusable strReportInfo was meant to be, for the rejected list."""
    for marker, kind in ((b"lab_exam_report", "daily"), (b"labmaster", "lab"), (b"exammaster", "exam")):
        if marker in raw:
            return kind
    return "report"


def _void(kind: str) -> Callable[[_Call, str], str]:
    def run(x: _Call, what: str) -> str:
        filt = xj_xml.fields(x.xml(what, keep_as=f"void_{kind}"))
        voided = x.c.registry.void(kind, filt, x.who, channel="soap", raw=x.raw)
        return "ok" + (":" + citers(voided.citations) if voided.citations else "")

    return run


def citers(citations: Sequence[Mapping[str, str]]) -> str:
    """XJ-1.2.2.2: the institutions, departments and doctors that cited the voided report."""
    parts = []
    for c in citations:
        org = f"{c.get('org_name') or ''}（{c.get('org_code', '')}）" if c.get("org_name") else c.get("org_code", "")
        dept = c.get("dept_name") or c.get("dept_code", "")
        doc = f"{c.get('doc_name', '')}（{c.get('doc_code', '')}）" if c.get("doc_code") else c.get("doc_name", "")
        parts.append(f"机构：{org}，科室：{dept}，医生：{doc}")
    return "该报告已被引用，引用方：" + "；".join(parts)


def _patient(f: Mapping[str, str]) -> tuple[str, str, int]:
    days = 30 if f.get("days", "").strip() == "30" else 90
    return xj_xml.id_type(f), f.get("id_no", ""), days


def _list(x: _Call, what: str) -> str:
    f = xj_xml.fields(x.xml(what))
    id_type, id_no, days = _patient(f)
    items = x.c.recognition.recent(x.who, id_type, id_no, days=days, visit=Visit(event_no=f.get("event_no", "")))
    x.absolute(items)
    return x.encrypted(xj_xml.render_list(items))


def _detail(x: _Call, what: str) -> str:
    f = xj_xml.fields(x.xml(what))
    id_type, id_no, days = _patient(f)
    res = x.c.recognition.detail(x.who, id_type, id_no, days=days, visit=Visit(event_no=f.get("event_no", "")))
    for rows in res.values():
        x.absolute(rows)
    return x.encrypted(xj_xml.render_detail(res))


def _exists(x: _Call, what: str) -> str:
    ef = xj_xml.exists_filter(x.xml(what))
    a = ef.attrs
    visit = Visit(*(a.get(k, "") for k in ("event_no", "dept_code", "dept_name", "dept_std_code", "dept_std_name", "doc_code", "doc_name")))
    id_type, id_no, days = _patient(a)
    res = x.c.recognition.exists(x.who, id_type, id_no, check=ef.check, lab=ef.lab, visit=visit, days=days)
    x.absolute(res["labmaster"])
    x.absolute(res["exammaster"])
    return x.encrypted(xj_xml.render_exists(res))


def _submit(table: str) -> Callable[[_Call, str], str]:
    def run(x: _Call, what: str) -> str:
        payload = xj_xml.nodes(x.xml(what, keep_as=table))
        x.c.recognition.submit(table, payload, x.who, channel="soap", raw=x.raw)
        return "ok"

    return run


def _info(kind: str) -> Callable[[_Call, str], str]:
    def run(x: _Call, what: str) -> str:
        f = xj_xml.fields(x.xml(what))
        rows = x.c.recognition.accepted_reports(x.who, kind, xj_xml.id_type(f), f.get("id_no", ""), f.get("event_no", ""))
        x.absolute(rows)
        return x.encrypted(xj_xml.render_lab_info(rows) if kind == "lab" else xj_xml.render_exam_info(rows))

    return run


HANDLERS: dict[str, Callable[[_Call, str], str]] = {
    "ArchiveAutoReport": _archive,
    "DeleteLabInfo": _void("lab"),
    "DeleteExamInfo": _void("exam"),
    "GetCheckLabList": _list,
    "GetCheckLabInfo": _detail,
    "ExistsReCureInfo": _exists,
    "SubmitAccept": _submit("accept"),
    "SubmitQuote": _submit("quote"),
    "GetLabInfo": _info("lab"),
    "GetExamInfo": _info("exam"),
}
assert set(HANDLERS) == set(METHODS)


def error_text(exc: HurenError) -> str:
    """``error:原因`` with the first problems named."""
    text = "error:" + exc.text()
    details = [f"{p.field}：{p.message}" if p.field else p.message for p in exc.problems if p.message]
    if details:
        more = f"……等共{len(details)}项" if len(details) > _MAX_PROBLEMS else ""
        text += "：" + "；".join(details[:_MAX_PROBLEMS]) + more
    return text


# -- HTTP ----------------------------------------------------------------------------------------
def _profile(request: Request) -> SoapProfile:
    state = request.app.state
    profile: SoapProfile | None = getattr(state, "soap_profile", None)
    if profile is None:
        profile = state.soap_profile = SoapProfile(state.container)
    return profile


async def _read(request: Request, limit: int) -> tuple[bytes, bool]:
    """(body, too_large). An oversized body is read on (up to 4× the limit) and dropped, so the
    client gets to read the answer; only its head is kept, to find the method in."""
    length = request.headers.get("content-length", "")
    too_large = length.isdigit() and int(length) > limit
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if not too_large and size > limit:
            too_large = True
            chunks = [b"".join(chunks)[:_HEAD]]
        if too_large:
            if sum(len(c) for c in chunks) < _HEAD:
                chunks.append(chunk[:_HEAD])
            if size > 4 * limit:
                break
            continue
        chunks.append(chunk)
    return b"".join(chunks), too_large


def _answer(body: bytes, version: str, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=CONTENT_TYPES[version])


async def endpoint(request: Request) -> Response:
    profile = _profile(request)
    body, too_large = await _read(request, profile.limit)
    action, ctype = request.headers.get("soapaction"), request.headers.get("content-type")
    call: SoapCall | None
    try:
        if too_large:
            raise TooLarge(f"请求超过上限 {profile.limit} 字节", [])
        call = parse_request(body, limit=profile.limit)
    except HurenError as exc:
        call = guess_call(body, action, ctype)
        if call is None:
            version = "1.2" if ctype and "soap+xml" in ctype.lower() else "1.1"
            return _answer(fault(version, error_text(exc)), version, 400)
        return _answer(response(call, error_text(exc)), call.version)
    if call.method not in METHODS:
        return _answer(response(call, f"error:不支持的方法 {call.method}"), call.version)
    remote = request.client.host if request.client else None
    base = profile.c.settings.public_base  # configured, never the caller's Host header
    try:
        text = await run_in_threadpool(profile.handle, call, remote, base)
    except HurenError as exc:
        text = error_text(exc)
    except Exception:  # the protocol's own form, never a stack trace
        log.exception("SOAP %s failed", call.method)
        text = "error:服务器内部错误，请稍后重试"
    return _answer(response(call, text), call.version)


async def describe(request: Request) -> Response:
    # the configured public address and the path asked for (/Myhealth, /Myhealth.asmx), never
    # the request's Host header: a forged Host would otherwise point clients' stubs elsewhere
    location = _profile(request).c.settings.public_base + request.url.path
    return Response(wsdl(location), media_type="text/xml; charset=utf-8")


for _path in PATHS:
    router.add_api_route(_path, endpoint, methods=["POST"], include_in_schema=False)
    router.add_api_route(_path, describe, methods=["GET"], include_in_schema=False)

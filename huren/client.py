"""Client SDK: one class speaking huren's Xinjiang SOAP profile (seed 002 §1.2–1.4) and its REST API.

SOAP methods carry the seed's names and take the plain XML of their data parameter
(``strReportInfo`` / ``strFilter``); the client SM4-encrypts it and the credential with its own
key, wraps that key with the platform's SM2 public key (``strKey``), posts, and answers the plain
text: ``ok`` / ``ok:…`` / ``error:…`` for uploads, the decrypted XML (or ``error:…``) for queries::

    from huren.client import HurenClient

    with HurenClient("http://platform:8000", "457759922", "his", "密码", platform_key="04…") as hc:
        assert hc.ArchiveAutoReport(lab_xml) == "ok"
        print(hc.GetCheckLabList("<root><id_no>…</id_no><id_type>01</id_type></root>"))

By default one SM4 key serves the client's lifetime (the platform then unwraps it once);
``fresh_key_per_call=True`` makes a new key, and a new strKey, for every call.

REST: the client owns every REST path of the platform the gateway and the SDK speak to
(``PATHS``, ``report_path`` in :mod:`huren.client_rest`; ``imaging_commit_path`` and the imaging
calls — STOW-RS ``POST /dicom-web/studies`` streamed from disk or from the gateway's sealed spool:
``stow`` — in :mod:`huren.client_imaging`, a mixin of ``HurenClient``; all re-exported here), the access token (fetched once, again a minute before it expires,
and once more when a call is answered 401) and the two ways a call fails: ``PlatformUnavailable``
(the platform could not be reached, answered 5xx / 408 / 425 / 429, or refused the client's own
account — try again later) and ``PlatformRefused`` (it refused the question: a 4xx, its
``{code, message, problems}`` relayed). Nobody else spells ``/api/v1``.
"""

from __future__ import annotations

import secrets
import time
from types import TracebackType
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import httpx2

from huren.client_federation import FederationCalls
from huren.client_imaging import ImagingCalls, StowPart, StowResult, imaging_commit_path, multipart_parts, stow_result
from huren.client_rest import API, PATHS, REPORT_KINDS, TRANSIENT_STATUS, _decode, _unreachable, report_path
from huren.crypto import b64, sm2, sm4
from huren.errors import PlatformRefused, PlatformUnavailable, Problem
from huren.wire.soap import METHODS, NS, SOAP11, SOAP12
from huren.wire.xj_xml import local, safe_parse

QUERIES = frozenset({"GetCheckLabList", "GetCheckLabInfo", "ExistsReCureInfo", "GetLabInfo", "GetExamInfo"})
_ANSWER_LIMIT = 1 << 30

#: kept for callers of the SDK: a REST call the platform refused (``status``, ``body``)
HurenClientError = PlatformRefused


class HurenClient(ImagingCalls, FederationCalls):
    def __init__(
        self,
        base_url: str,
        org_code: str,
        username: str,
        password: str,
        *,
        platform_key: str | sm2.Sm2Public | None = None,
        org_name: str = "",
        order: sm2.CipherOrder = "C1C3C2",
        soap_version: str = "1.1",
        fresh_key_per_call: bool = False,
        path: str = "/Myhealth",
        timeout: float = 60.0,
        http: httpx2.Client | None = None,
    ) -> None:
        self.org_code, self.username, self.org_name = org_code, username, org_name
        self._password = password
        self._public = sm2.load_public(platform_key) if isinstance(platform_key, str) else platform_key
        self._order: sm2.CipherOrder = order
        if soap_version not in ("1.1", "1.2"):
            raise ValueError("soap_version must be 1.1 or 1.2")
        self.soap_version = soap_version
        self.fresh_key_per_call = fresh_key_per_call
        self.path = path
        self._own_http = http is None
        self.http = http if http is not None else httpx2.Client(base_url=base_url, timeout=timeout)
        self._key: tuple[bytes, str] | None = None
        self._token: tuple[str, float] | None = None

    # -- lifetime --------------------------------------------------------------------------------
    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def __enter__(self) -> HurenClient:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # -- SOAP ------------------------------------------------------------------------------------
    def _sm4_key(self) -> tuple[bytes, str]:
        """(SM4 key, its strKey): a fresh one per call, or one per client."""
        if self._public is None:
            raise ValueError("platform_key (the platform's SM2 public key) is needed for SOAP calls")
        if self._key is None or self.fresh_key_per_call:
            key = secrets.token_bytes(16)
            self._key = key, b64.b64e(sm2.sm2_encrypt(self._public, key, self._order))
        return self._key

    def credential_xml(self) -> str:
        return (
            f"<root><org code={quoteattr(self.org_code)}>{escape(self.org_name)}</org>"
            f"<visitor type=\"0\" code={quoteattr(self.username)} key={quoteattr(self._password)}></visitor></root>"
        )

    def envelope(self, method: str, params: dict[str, str]) -> bytes:
        """The SOAP request, built as bytes: the parameters are Base64 (MB-sized for a report
        with its PDF), which needs no escaping, so only a value holding ``&``, ``<`` or ``>`` is
        escaped (bench/soap.py: building the envelope of a 1 MB report 2.9 → 0.3 ms)."""
        env = SOAP11 if self.soap_version == "1.1" else SOAP12
        parts = [f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{env}"><soap:Body><{method} xmlns="{NS}">'.encode()]
        for k, v in params.items():
            plain = "&" not in v and "<" not in v and ">" not in v
            parts += (f"<{k}>".encode(), (v if plain else escape(v)).encode(), f"</{k}>".encode())
        parts.append(f"</{method}></soap:Body></soap:Envelope>".encode())
        return b"".join(parts)

    def call(self, method: str, data: str | bytes) -> str:
        """Call ``method`` with the plain XML ``data``; the plain answer text."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method}")
        key, str_key = self._sm4_key()
        plain = data.encode("utf-8") if isinstance(data, str) else data
        params = {
            METHODS[method][0]: b64.b64e(sm4.sm4_encrypt(key, plain)),
            "strCredential": b64.b64e(sm4.sm4_encrypt(key, self.credential_xml().encode("utf-8"))),
            "strKey": str_key,
        }
        answer = self.post(method, self.envelope(method, params))
        if method in QUERIES and not answer.startswith("error:"):
            return sm4.sm4_decrypt(key, b64.b64d(answer)).decode("utf-8")
        return answer

    def post(self, method: str, envelope: bytes) -> str:
        """Post a ready envelope; the text of ``<MethodResult>`` (or of a Fault)."""
        action = f"{NS}/{method}"
        if self.soap_version == "1.1":
            headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
        else:
            headers = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}
        r = self.http.post(self.path, content=envelope, headers=headers)
        return result_text(r.content, method, r.status_code)

    def ArchiveAutoReport(self, strReportInfo: str | bytes) -> str:
        return self.call("ArchiveAutoReport", strReportInfo)

    def DeleteLabInfo(self, strFilter: str | bytes) -> str:
        return self.call("DeleteLabInfo", strFilter)

    def DeleteExamInfo(self, strFilter: str | bytes) -> str:
        return self.call("DeleteExamInfo", strFilter)

    def GetCheckLabList(self, strFilter: str | bytes) -> str:
        return self.call("GetCheckLabList", strFilter)

    def GetCheckLabInfo(self, strFilter: str | bytes) -> str:
        return self.call("GetCheckLabInfo", strFilter)

    def ExistsReCureInfo(self, strFilter: str | bytes) -> str:
        return self.call("ExistsReCureInfo", strFilter)

    def SubmitAccept(self, strReportInfo: str | bytes) -> str:
        return self.call("SubmitAccept", strReportInfo)

    def SubmitQuote(self, strReportInfo: str | bytes) -> str:
        return self.call("SubmitQuote", strReportInfo)

    def GetLabInfo(self, strFilter: str | bytes) -> str:
        return self.call("GetLabInfo", strFilter)

    def GetExamInfo(self, strFilter: str | bytes) -> str:
        return self.call("GetExamInfo", strFilter)

    # -- REST ------------------------------------------------------------------------------------
    def token(self) -> str:
        """A REST access token, fetched again a minute before it expires. PlatformUnavailable
        when it cannot be had (the platform unreachable, or refusing the account)."""
        if self._token is None or self._token[1] <= time.monotonic():
            creds = {"org_code": self.org_code, "username": self.username, "password": self._password}
            try:
                r = self.http.post(PATHS["token"], json=creds)
            except httpx2.TransportError as exc:
                raise _unreachable(exc) from exc
            body = _decode(r)
            if r.status_code >= 400 or not isinstance(body, dict) or "access_token" not in body:
                message = body.get("message", "") if isinstance(body, dict) else str(body)[:200]
                raise PlatformUnavailable(
                    f"平台拒绝了网关的账号（HTTP {r.status_code}）{message}",
                    [Problem("platform", "token", f"无法取得访问令牌：HTTP {r.status_code}")],
                )
            self._token = str(body["access_token"]), time.monotonic() + max(float(body.get("expires_in", 7200)) - 60, 1)
        return self._token[0]

    def reset_token(self) -> None:
        """Forget the cached token (e.g. after a 401): the next REST call logs in again."""
        self._token = None

    def send(
        self,
        verb: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Any = None,
        timeout: float | None = None,
    ) -> httpx2.Response:
        """One REST call with the access token; the raw answer. A 401 drops the token and the
        call is made once more with a new one. PlatformUnavailable when the platform cannot be
        reached."""
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self.token()}"}
            if content is not None:
                headers["Content-Type"] = "application/json"
            try:
                request = self.http.build_request(
                    verb, path, json=json, content=content, params=params, headers=headers,
                    timeout=timeout if timeout is not None else httpx2.USE_CLIENT_DEFAULT,
                )
                r = self.http.send(request)
            except httpx2.TransportError as exc:
                raise _unreachable(exc) from exc
            if r.status_code != 401 or attempt == 2:
                return r
            self.reset_token()  # the token expired or the platform restarted with a new secret
        raise AssertionError("unreachable")

    def rest_call(
        self, verb: str, path: str, *, json: Any = None, content: bytes | None = None, params: Any = None, timeout: float | None = None
    ) -> Any:
        """``send`` and the answer's JSON. PlatformUnavailable for a 5xx or a "not now"
        (``TRANSIENT_STATUS``), PlatformRefused for another 4xx."""
        r = self.send(verb, path, json=json, content=content, params=params, timeout=timeout)
        body = _decode(r)
        if r.status_code >= 500 or r.status_code in TRANSIENT_STATUS:
            message = body.get("message", "") if isinstance(body, dict) else str(body)[:300]
            raise PlatformUnavailable(f"HTTP {r.status_code}: {message}", [Problem("platform", "unavailable", f"平台应答 HTTP {r.status_code}")])
        if r.status_code >= 400:
            raise PlatformRefused(r.status_code, body)
        return body

    def _rest(self, verb: str, path: str, payload: Any) -> Any:
        return self.rest_call(verb, path, json=payload)

    # the platform's operations, by name --------------------------------------------------------
    def rest_register(self, kind: str, payload: dict[str, Any]) -> Any:
        """Register a lab (``kind="lab"``) or exam report: ``{"labmaster": {…}, "lab_subitem": […]}``."""
        return self._rest("POST", report_path(kind), payload)

    def rest_void(self, kind: str, filt: dict[str, Any]) -> Any:
        """Void a report by its key; the answer names the citers, if any (``citations``)."""
        return self._rest("POST", report_path(kind, what="void"), filt)

    def rest_daily(self, payload: dict[str, Any]) -> Any:
        """Daily counts: ``{"lab_exam_report": […]}``."""
        return self._rest("POST", PATHS["daily"], payload)

    def rest_exists(self, query: dict[str, Any]) -> Any:
        """Exists-for-order: ``{"id_no", "id_type_code", "check": […], "lab": […], …}``."""
        return self._rest("POST", PATHS["exists"], query)

    def upload_reports(self, kind: str, body: bytes) -> Any:
        """Many reports in one request: ``body`` is the JSON ``{"reports": [...]}``."""
        return self.rest_call("POST", report_path(kind, what="batch"), content=body)

    def upload(self, name: str, body: bytes) -> Any:
        """POST the JSON ``body`` to the operation ``name`` of ``PATHS`` (rows of master data,
        decisions, reminder logs, daily counts, a void)."""
        return self.rest_call("POST", PATHS[name], content=body)

    def recognition(self, name: str, query: dict[str, Any], *, timeout: float | None = None) -> Any:
        """A recognition question (``recent``, ``detail``, ``exists``) for the patient of ``query``."""
        if name not in ("recent", "detail", "exists"):
            raise ValueError(f"unknown recognition question {name!r}")
        return self.rest_call("POST", PATHS[name], json=query, timeout=timeout)

    def catalog(self, *, timeout: float | None = None) -> Any:
        """The standard catalog: ``{"items": [{kind, code, name, …}]}``."""
        return self.rest_call("GET", PATHS["catalog"], timeout=timeout)

    def code_map(self, *, timeout: float | None = None) -> Any:
        """The institution's code map: ``{"mappings": [{kind, local_code, std_code, …}]}``."""
        return self.rest_call("GET", PATHS["code_map"], timeout=timeout)

    def depts(self, *, limit: int = 1000, offset: int = 0) -> Any:
        """A page of the institution's departments: ``{"dept": [...], "total": n}``."""
        return self.rest_call("GET", PATHS["dept"], params={"limit": limit, "offset": offset})

    def report(self, kind: str, report_id: str, *, pdf: bool = False, timeout: float | None = None) -> httpx2.Response:
        """A report (or its PDF) as the platform answers it, raw (its view is logged there)."""
        return self.send("GET", report_path(kind, report_id, "pdf" if pdf else ""), timeout=timeout)



def result_text(body: bytes, method: str, status: int = 200) -> str:
    """The ``<MethodResult>`` text of an answer envelope; ``error:…`` from a Fault or a non-SOAP answer."""
    try:
        env = safe_parse(body, limit=_ANSWER_LIMIT, what="SOAP应答")
    except Exception:
        return f"error:HTTP {status}，应答不是SOAP信封"
    for el in env.iter():
        if not isinstance(el.tag, str):
            continue
        name = local(el.tag)
        if name == f"{method}Result":
            return str(el.text or "")
        if name in ("faultstring", "Text"):
            text = str(el.text or "")
            return text if text.startswith("error:") else f"error:{text}"
    return f"error:HTTP {status}，应答中没有 {method}Result"


__all__ = [
    "API", "PATHS", "QUERIES", "REPORT_KINDS", "TRANSIENT_STATUS", "HurenClient", "HurenClientError", "StowPart", "StowResult",
    "imaging_commit_path", "multipart_parts", "report_path", "result_text", "stow_result",
]

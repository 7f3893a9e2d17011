"""XC-E-note (seed 000:120-121): image requests for a study the platform does not hold are relayed
to another conforming imaging platform, and the answer says where the images came from.

The peer is a DICOMweb root (``HUREN_IMAGING_FALLBACK_URL``, e.g. ``https://standby.example/dicom-web``:
another huren, an Orthanc with its DICOMweb plugin, a dcm4chee) with a name shown to the doctor
(``HUREN_IMAGING_FALLBACK_NAME``) and optional credentials (a bearer token, or basic auth).

**Switch-over rule** (what is relayed, and when):

1. A study this platform holds is always answered here: its index is the truth of who may see it.
   A study held but outside the reader's reach is a 404 and never relayed (no way around the access
   policy); nor is a study hidden by a YB-4.5 deletion notice.
2. A study it does not hold (``NotHeld``, raised by the image service) is relayed when the reader is
   a token of an institution whose ``image.read`` reaches every institution (doctors, hospital
   systems, administrators). An image key is never sent on; a key checked here whose own study is
   no longer held (e.g. a patient's cloud film after the study left the archive) is relayed for
   that one study only (2b), read at the peer with the platform's credentials.
3. With ``failover`` on, a held study whose bytes the archive cannot give now (``PlatformUnavailable``,
   e.g. Orthanc down) is relayed too: the standby platform keeps serving (seed: "将服务切换至符合约束
   要求的影像平台继续提供服务").
4. After ``pause_after`` consecutive failures to reach the peer (connection, timeout, 5xx), relaying
   pauses for ``pause_seconds`` (answers are then an immediate 503, not a wait for each timeout); the
   first request after the pause tries again, and one success resumes.

Only GETs of the QIDO-RS / WADO-RS resources (and WADO-URI) are relayed, UIDs checked, at most
:data:`MAX_PARAMS` query parameters of bounded length, never the caller's own key or token. JSON
answers (QIDO, metadata) are read whole up to ``max_json_bytes`` and their ``RetrieveURL`` /
``BulkDataURI`` values rewritten onto this platform's DICOMweb root (so a viewer's next request comes
back here, and is relayed again); other answers are streamed, at most ``max_bytes``. Every relay is
in the access log (``image.forward``, target ``<peer>:<path>``). The answer carries its origin:
:attr:`Relayed.label` ("影像来源：<peer name>") and the headers of :meth:`Relayed.headers`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import orjson

from huren.context import Clock, Principal
from huren.domain import imaging
from huren.domain.access import ALL
from huren.errors import Forbidden, InvalidInput, NotConfigured, NotFound, PlatformUnavailable, Problem
from huren.services import access
from huren.services.audit import AuditService
from huren.services.imaging_archive import keepalive_transport
from huren.services.imaging_forward_types import Peer, Relayed, excerpt, length_of, params_of, with_query
from huren.services.imaging_types import KeyGrant, Once, Reader

log = logging.getLogger(__name__)

MAX_ACCEPT_LEN = 512
#: the DICOMweb resources relayed (after the root): QIDO-RS searches, WADO-RS retrieves of a study,
#: series or instance, their metadata, frames, rendered and thumbnail representations
_PATH = re.compile(
    r"^/(?:studies|series|instances)$"
    r"|^/studies/(?P<study>[^/]+)"
    r"(?:/(?:series|instances|metadata|rendered|thumbnail)"
    r"|/series/(?P<series>[^/]+)(?:/(?:instances|metadata|rendered|thumbnail)"
    r"|/instances/(?P<sop>[^/]+)(?:/(?:metadata|rendered|thumbnail)|/frames/[0-9,]{1,200}(?:/(?:rendered|thumbnail))?)?)?)?$"
)
_JSON_TYPES = ("application/dicom+json", "application/json")
#: DICOM JSON attributes whose values are this platform's or the peer's URLs
_URL_TAGS = ("00081190",)  # RetrieveURL


class NotHeld(NotFound):
    """The platform holds no study with this UID (answered as any NotFound when nothing relays)."""

    def __init__(self, study_uid: str, what: str = "检查") -> None:
        msg = f"未找到该{what}的影像（不存在或无权查看）"
        super().__init__(msg, [Problem("StudyInstanceUID", "not_found", msg)])
        self.study_uid = study_uid


class ImageForwarder:
    """Relays reads of studies not held to a :class:`Peer` (see the module's switch-over rule)."""

    def __init__(
        self, peer: Peer, audit: AuditService, clock: Clock, *, public_root: str, http: httpx2.Client | None = None,
        spool_dir: Path | None = None,
    ) -> None:
        self.peer = peer
        #: where instances fetched for a DIMSE retrieve are spooled (``<data_dir>/tmp``; None: the system's)
        self.spool_dir = spool_dir
        self._audit = audit
        self.public_root = public_root.rstrip("/")  # this platform's DICOMweb root as users reach it
        headers = {"User-Agent": "huren-forward"}
        if peer.token:
            headers["Authorization"] = f"Bearer {peer.token}"
        auth = httpx2.BasicAuth(peer.username, peer.password or "") if peer.username and not peer.token else None
        self.http = http if http is not None else httpx2.Client(
            auth=auth, headers=headers, transport=keepalive_transport(), follow_redirects=False,
            timeout=httpx2.Timeout(peer.timeout, connect=min(peer.timeout, 5.0)),
        )
        self._failures = 0
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self._once = Once(clock, imaging.LOG_DEDUPE_SECONDS)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ImageForwarder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the rule ------------------------------------------------------------------------------------
    def relays(self, reader: Reader, exc: BaseException) -> bool:
        """Whether a read that failed with ``exc`` is relayed to the peer (rules 1–3)."""
        if isinstance(reader, KeyGrant):  # rule 2b: a key checked here, for its own study no longer held
            return isinstance(exc, NotHeld) and exc.study_uid == reader.study_uid
        if not isinstance(reader, Principal):
            return False
        if not (isinstance(exc, NotHeld) or (self.peer.failover and isinstance(exc, PlatformUnavailable))):
            return False
        try:
            return access.require(reader, "image.read") is ALL
        except Forbidden:
            return False

    def _gate(self) -> None:
        with self._lock:
            if time.monotonic() < self._paused_until:
                left = int(self._paused_until - time.monotonic()) + 1
                msg = f"备用影像平台“{self.peer.name}”暂时无法连接，转发已暂停，约 {left} 秒后重试"
                raise PlatformUnavailable(msg, [Problem("imaging_fallback_url", "paused", msg)])

    def _result(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self._failures = 0
                return
            self._failures += 1
            if self._failures >= self.peer.pause_after:
                self._paused_until = time.monotonic() + self.peer.pause_seconds
                self._failures = 0
                log.warning("imaging fallback %s unreachable: relaying paused for %ss", self.peer.root, self.peer.pause_seconds)

    # -- relaying --------------------------------------------------------------------------------------
    def relay(
        self, reader: Reader, path: str, params: Mapping[str, str] | Sequence[tuple[str, str]] = (), *, accept: str | None = None
    ) -> Relayed:
        """GET ``path`` (a DICOMweb resource after the root, e.g. ``/studies/1.2.3/series``) at the peer;
        a key's grant only for its own study (a search: with its StudyInstanceUID)."""
        m = _PATH.match(path)
        if m is None:
            msg = "该请求不能转发至备用影像平台"
            raise InvalidInput(msg, [Problem("path", "forward", msg)])
        study = m.group("study")
        for name, uid in (("StudyInstanceUID", study), ("SeriesInstanceUID", m.group("series")), ("SOPInstanceUID", m.group("sop"))):
            if uid is not None:
                imaging.check_uid(uid, name)
        if isinstance(reader, KeyGrant):
            asked = study or next((v for k, v in params_of(params) if k == "StudyInstanceUID"), None)
            if asked != reader.study_uid:
                raise NotHeld(asked or "-")
        out = self._get(reader, self.peer.root + path, params, accept, study or "-", path)
        if study is not None and out.body is not None and out.body.strip() in (b"", b"[]"):
            raise self._none()  # the peer answers a study it does not hold with an empty list
        return out

    def _none(self) -> NotFound:
        msg = f"本平台与备用影像平台“{self.peer.name}”均未找到该影像"
        return NotFound(msg, [Problem("StudyInstanceUID", "not_found", msg)])

    def relay_wado_uri(self, reader: Reader, params: Mapping[str, str] | Sequence[tuple[str, str]]) -> Relayed:
        """WADO-URI (``/wado?requestType=WADO&studyUID=…``) at the peer's WADO-URI address."""
        items = params_of(params)
        study = next((v for k, v in items if k == "studyUID"), "")
        imaging.check_uid(study)
        if isinstance(reader, KeyGrant) and study != reader.study_uid:
            raise NotHeld(study)
        return self._get(reader, self.peer.wado, items, None, study, "/wado")

    def _get(
        self, reader: Reader, url: str, params: Mapping[str, str] | Sequence[tuple[str, str]], accept: str | None,
        study: str, path: str,
    ) -> Relayed:
        if isinstance(reader, KeyGrant):  # checked by the caller: its own study only
            actor = Principal(reader.viewer_org or "-", f"key:{reader.key_id}", "key")
        else:
            access.require(reader, "image.read")
            actor = reader
        items = params_of(params)
        self._gate()
        who = f"{actor.org_code}/{actor.username}"
        self._once.run((who, study, "image.forward"),
                       lambda: self._audit.record(actor, "image.forward", target=f"{self.peer.name}:{path}"[:256], read=True))
        headers = {"X-Forwarded-For-Institution": quote(actor.org_code, safe="")}
        if accept:
            if len(accept) > MAX_ACCEPT_LEN:
                msg = f"Accept 头过长（最多 {MAX_ACCEPT_LEN} 个字符）"
                raise InvalidInput(msg, [Problem("Accept", "length", msg)])
            headers["Accept"] = accept
        try:
            resp = self.http.send(self.http.build_request("GET", with_query(url, items), headers=headers), stream=True)
        except httpx2.TimeoutException as exc:
            self._result(False)
            raise self._down("请求超时", exc) from None
        except httpx2.TransportError as exc:
            self._result(False)
            raise self._down("无法连接", exc) from None
        try:
            return self._answer(resp)
        except BaseException:
            resp.close()
            raise

    def _down(self, what: str, exc: BaseException | None = None) -> PlatformUnavailable:
        detail = f"（{type(exc).__name__}）" if exc is not None else ""
        msg = f"备用影像平台“{self.peer.name}”{what}{detail}，请稍后重试"
        return PlatformUnavailable(msg, [Problem("imaging_fallback_url", "unavailable", msg)])

    def _answer(self, resp: httpx2.Response) -> Relayed:
        status = resp.status_code
        if status >= 500:
            self._result(False)
            raise self._down(f"出错（HTTP {status}）")
        self._result(True)
        if status in (401, 403):
            msg = f"备用影像平台“{self.peer.name}”拒绝了本平台的凭据：请检查 HUREN_IMAGING_FALLBACK_TOKEN 或用户名、密码"
            raise NotConfigured(msg, [Problem("imaging_fallback_url", "credentials", msg)])
        if status == 404:
            raise self._none()
        if status >= 400:
            log.info("imaging fallback %s refused a relay (HTTP %s): %s", self.peer.root, status, excerpt(resp))
            msg = f"备用影像平台“{self.peer.name}”拒绝了该请求（HTTP {status}）"
            raise InvalidInput(msg, [Problem("request", "forward", msg)])
        media = resp.headers.get("content-type", "application/octet-stream")
        base = media.split(";", 1)[0].strip().lower()
        if status == 204 or base in _JSON_TYPES:
            body = self._read_json(resp) if status != 204 else b""
            resp.close()
            return Relayed(self.peer.name, status, media, body=body, length=len(body))
        length = length_of(resp)
        if length is not None and length > self.peer.max_bytes:
            msg = f"备用影像平台“{self.peer.name}”的应答过大（{length} 字节，最多 {self.peer.max_bytes} 字节）"
            raise PlatformUnavailable(msg, [Problem("imaging_fallback_url", "size", msg)])
        return Relayed(self.peer.name, status, media, chunks=self._stream(resp), length=length, _response=resp)

    def _read_json(self, resp: httpx2.Response) -> bytes:
        buf = bytearray()
        try:
            for chunk in resp.iter_bytes():
                buf += chunk
                if len(buf) > self.peer.max_json_bytes:
                    msg = f"备用影像平台“{self.peer.name}”的应答过大（最多 {self.peer.max_json_bytes} 字节）"
                    raise PlatformUnavailable(msg, [Problem("imaging_fallback_url", "size", msg)])
        except httpx2.TransportError as exc:
            raise self._down("应答中断", exc) from None
        if not buf:
            return b""
        try:
            doc = orjson.loads(bytes(buf))
        except orjson.JSONDecodeError:
            raise self._down("的应答不是有效的 JSON") from None
        return orjson.dumps(self._rewrite(doc))

    def _rewrite(self, doc: Any) -> Any:
        """RetrieveURL / BulkDataURI values moved onto this platform's DICOMweb root."""
        if isinstance(doc, list):
            return [self._rewrite(d) for d in doc]
        if not isinstance(doc, dict):
            return doc
        for tag, attr in doc.items():
            if not isinstance(attr, dict):
                continue
            uri = attr.get("BulkDataURI")
            if isinstance(uri, str):
                attr["BulkDataURI"] = self._local(uri)
            values = attr.get("Value")
            if tag in _URL_TAGS and isinstance(values, list):
                attr["Value"] = [self._local(v) if isinstance(v, str) else v for v in values]
            elif isinstance(values, list) and attr.get("vr") == "SQ":
                attr["Value"] = [self._rewrite(v) for v in values]
        return doc

    def _local(self, uri: str) -> str:
        at = uri.find("/studies/")
        return self.public_root + uri[at:] if at >= 0 else uri

    def _stream(self, resp: httpx2.Response) -> Iterator[bytes]:
        n = 0
        try:
            for chunk in resp.iter_bytes(256 * 1024):
                n += len(chunk)
                if n > self.peer.max_bytes:
                    log.warning("relay from %s cut at %s bytes", self.peer.root, self.peer.max_bytes)
                    raise PlatformUnavailable(f"备用影像平台“{self.peer.name}”的应答超过 {self.peer.max_bytes} 字节，已中止")
                yield chunk
        except httpx2.TransportError as exc:
            raise self._down("应答中断", exc) from None
        finally:
            resp.close()


def forwarder_for(
    url: str | None, audit: AuditService, clock: Clock, *, public_root: str, name: str = "备用影像平台", token: str | None = None,
    username: str | None = None, password: str | None = None, timeout: float = 10.0, failover: bool = False,
    spool_dir: Path | None = None,
) -> ImageForwarder | None:
    """The forwarder a deployment configured (``HUREN_IMAGING_FALLBACK_*``), None without a URL."""
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        msg = "HUREN_IMAGING_FALLBACK_URL 必须是 http(s) 地址（备用影像平台的 DICOMweb 根，如 https://standby.example/dicom-web）"
        raise NotConfigured(msg, [Problem("imaging_fallback_url", "format", msg)])
    peer = Peer(name=name, url=url, token=token, username=username, password=password, timeout=timeout, failover=failover)
    return ImageForwarder(peer, audit, clock, public_root=public_root, spool_dir=spool_dir)


__all__ = ["ImageForwarder", "NotHeld", "Peer", "Relayed", "forwarder_for"]

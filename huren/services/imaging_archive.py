"""Where the bytes of DICOM instances live (issue 12: "a regional platform that already runs Orthanc
can use it as the archive").

:class:`Archive` is what ``ImagingService`` asks of a backend: keep a stream (``put`` → SHA-256,
size, whether it is new, the backend's own id), stream it back byte-exact (``open``), make a
study's instances durable (``sync``), drop what the index refused (``remove``) and hear of a
YB-4.5 deletion notice (``hidden``). huren's index (patients sealed, access policy, metadata JSON
built at ingest) stays the one truth of what is held and who may see it; an archive only keeps bytes.

- :class:`LocalArchive` — the embedded default: ``huren.store.blobs.BlobStore`` (streamed, sealed
  in segments, content-addressed by SHA-256).
- :class:`OrthancArchive` — an existing Orthanc (REST API; tested with Debian's Orthanc 1.10):
  ``POST /instances`` with the bytes streamed (chunked), ``GET /instances/{id}/file`` streamed, the
  Orthanc instance id kept by the caller as ``archive_id`` (and cached here by SHA-256; without it
  ``POST /tools/lookup`` finds it by SOP Instance UID). HTTP basic authentication (Orthanc's
  ``RegisteredUsers``), one keep-alive client (SO_KEEPALIVE, TCP_NODELAY), bounded timeouts. Each
  stream read back is hashed on the way and checked against the SHA-256 the index holds.

Errors are ``huren.errors`` with Chinese messages: Orthanc down or timing out → PlatformUnavailable
(503, never a 500); credentials refused → NotConfigured; a file Orthanc cannot parse → InvalidInput
(rule ``dicom``); other bytes already held under the same instance → Conflict. A ``put`` that fails
leaves nothing to index (the caller indexes only after it returned).
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, runtime_checkable

import httpx2
import orjson

from huren.errors import Conflict, HurenError, InvalidInput, NotConfigured, PlatformUnavailable, Problem, TooLarge
from huren.store.blobs import BlobStore

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
LOCAL, ORTHANC = "local", "orthanc"
#: the answers of Orthanc's small JSON calls are read to at most this many bytes
_JSON_MAX = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Put:
    """What an archive kept: the SHA-256 and size of the bytes as received, whether they are new
    there (a refused instance removes only what was new), and the backend's own id (None: local)."""

    sha256: str
    size: int
    new: bool
    archive_id: str | None = None


@dataclass(frozen=True, slots=True)
class Ref:
    """How the index names a stored instance: its SHA-256, and what helps a remote archive find it."""

    sha256: str
    sop_uid: str | None = None
    archive_id: str | None = None


def as_ref(ref: Ref | str) -> Ref:
    return ref if isinstance(ref, Ref) else Ref(ref)


@runtime_checkable
class Archive(Protocol):
    name: str

    def put(self, source: BinaryIO | Iterable[bytes], *, max_bytes: int | None = None) -> Put: ...

    def open(self, ref: Ref | str) -> Iterator[bytes] | None:
        """The bytes, byte-exact, in chunks; None when the archive does not hold them."""
        ...

    def exists(self, ref: Ref | str) -> bool: ...

    def sync(self, refs: Iterable[Ref | str]) -> None:
        """Make the instances durable before a study's commit answers that they are kept."""
        ...

    def remove(self, put: Put) -> None:
        """Drop what :meth:`put` just kept and the index then refused (nothing refers to it)."""
        ...

    def hidden(self, refs: Iterable[Ref | str]) -> None:
        """A YB-4.5 deletion notice hid these instances (kept, never erased: a hook for mirrors)."""
        ...

    def check(self) -> None:
        """Raise PlatformUnavailable (Chinese message) when the archive cannot be used now."""
        ...


class LocalArchive:
    """The embedded archive: the blob store's streamed, sealed files (the default)."""

    name = LOCAL

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def put(self, source: BinaryIO | Iterable[bytes], *, max_bytes: int | None = None) -> Put:
        digest, size, new = self.blobs.put_stream(source, max_bytes=max_bytes)
        return Put(digest, size, new)

    def open(self, ref: Ref | str) -> Iterator[bytes] | None:
        return self.blobs.open_stream(as_ref(ref).sha256)

    def exists(self, ref: Ref | str) -> bool:
        return self.blobs.exists(as_ref(ref).sha256)

    def sync(self, refs: Iterable[Ref | str]) -> None:
        self.blobs.sync(as_ref(r).sha256 for r in refs)

    def remove(self, put: Put) -> None:
        if put.new:
            self.blobs.remove(put.sha256)

    def hidden(self, refs: Iterable[Ref | str]) -> None:
        return None  # the index hides them; the files stay (YB-4.5: marked, not erased)

    def check(self) -> None:
        if not self.blobs.root.is_dir():
            msg = f"影像存储目录不可用：{self.blobs.root}"
            raise PlatformUnavailable(msg, [Problem("archive", "unavailable", msg)])


def _unavailable(what: str, exc: BaseException | None = None) -> PlatformUnavailable:
    detail = f"（{type(exc).__name__}）" if exc is not None else ""
    msg = f"影像归档服务（Orthanc）暂不可用：{what}{detail}，请稍后重试"
    return PlatformUnavailable(msg, [Problem("archive", "unavailable", msg)])


def keepalive_transport(retries: int = 1, max_connections: int = 32) -> httpx2.HTTPTransport:
    """A pooled HTTP transport whose sockets have TCP keep-alive (a half-dead peer is noticed) and
    TCP_NODELAY (no Nagle stall between a request's headers and its first body chunk)."""
    opts: list[tuple[int, int, int]] = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1), (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            opts.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections, keepalive_expiry=30.0)
    return httpx2.HTTPTransport(retries=retries, socket_options=opts, limits=limits)


class OrthancArchive:
    """Instances kept in an Orthanc server through its REST API (see the module's docstring).

    ``url`` is Orthanc's HTTP root (``http://pacs.example:8042``); ``username``/``password`` one of
    its ``RegisteredUsers``. ``timeout`` bounds connecting and each read/write (seconds); a whole
    transfer may take longer. Orthanc must keep ``OverwriteInstances`` false (its default: other
    bytes under a held SOP Instance UID are refused here rather than silently replaced) and
    ``SyncStorageArea`` true (its default since 1.7.4: an answered ``POST /instances`` is on disk,
    which is why :meth:`sync` has nothing left to do).
    """

    name = ORTHANC

    def __init__(
        self, url: str, *, username: str | None = None, password: str | None = None, timeout: float = 30.0,
        http: httpx2.Client | None = None, cache_size: int = 100_000,
    ) -> None:
        self.url = url.rstrip("/")
        auth = httpx2.BasicAuth(username, password or "") if username else None
        self.http = http if http is not None else httpx2.Client(
            base_url=self.url, auth=auth, transport=keepalive_transport(),
            timeout=httpx2.Timeout(timeout, connect=min(timeout, 5.0)),
        )
        self._ids: OrderedDict[str, str] = OrderedDict()  # sha256 → Orthanc instance id (bounded)
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> OrthancArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ids -----------------------------------------------------------------------------------------
    def _remember(self, sha256: str, archive_id: str) -> None:
        with self._lock:
            self._ids[sha256] = archive_id
            self._ids.move_to_end(sha256)
            while len(self._ids) > self._cache_size:
                self._ids.popitem(last=False)

    def _forget(self, sha256: str) -> None:
        with self._lock:
            self._ids.pop(sha256, None)

    def archive_id(self, ref: Ref | str) -> str | None:
        """Orthanc's id of the instance: the index's, else the one remembered, else found by its SOP
        Instance UID (``POST /tools/lookup``); None when Orthanc does not hold it."""
        r = as_ref(ref)
        if r.archive_id:
            return r.archive_id
        with self._lock:
            known = self._ids.get(r.sha256)
        if known is not None:
            return known
        if not r.sop_uid:
            return None
        found = self._json("POST", "/tools/lookup", content=r.sop_uid.encode("ascii", "replace"))
        ids = [str(e["ID"]) for e in found if isinstance(e, dict) and e.get("Type") == "Instance" and e.get("ID")] \
            if isinstance(found, list) else []
        if not ids:
            return None
        self._remember(r.sha256, ids[0])
        return ids[0]

    # -- HTTP ------------------------------------------------------------------------------------------
    def _send(self, method: str, path: str, **kw: Any) -> httpx2.Response:
        try:
            return self.http.request(method, path, **kw)
        except httpx2.TimeoutException as exc:
            raise _unavailable("请求超时", exc) from None
        except httpx2.TransportError as exc:
            raise _unavailable(f"无法连接 {self.url}", exc) from None

    def _refused(self, r: httpx2.Response, what: str) -> HurenError:
        if r.status_code in (401, 403):
            msg = "影像归档服务（Orthanc）拒绝了本平台的用户名或密码：请检查 HUREN_ORTHANC_USERNAME / HUREN_ORTHANC_PASSWORD 与 Orthanc 的 RegisteredUsers"
            return NotConfigured(msg, [Problem("archive", "credentials", msg)])
        return _unavailable(f"{what}失败（HTTP {r.status_code}）")

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        r = self._send(method, path, **kw)
        if r.status_code == 404:
            return None
        if r.status_code >= 300:
            raise self._refused(r, path)
        if len(r.content) > _JSON_MAX:
            raise _unavailable("应答过大")
        try:
            return orjson.loads(r.content)
        except orjson.JSONDecodeError:
            raise _unavailable("应答不是 JSON") from None

    # -- the Archive -------------------------------------------------------------------------------------
    def put(self, source: BinaryIO | Iterable[bytes], *, max_bytes: int | None = None) -> Put:
        start = _position(source)
        for attempt in (1, 2):  # a pooled connection Orthanc closed meanwhile is retried once (a file source only)
            body = _Body(source, max_bytes)
            try:
                r = self.http.post("/instances", content=body, headers={"Content-Type": "application/dicom"})
            except (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError) as exc:
                if attempt == 1 and start is not None and hasattr(source, "seek"):
                    source.seek(start)
                    continue
                raise _unavailable(f"向 {self.url} 保存实例时连接中断", exc) from None
            except httpx2.TimeoutException as exc:
                raise _unavailable("保存实例超时", exc) from None
            except httpx2.TransportError as exc:
                raise _unavailable(f"无法连接 {self.url}", exc) from None
            return self._stored(r, body.sha.hexdigest(), body.md5.hexdigest(), body.size)
        raise AssertionError("unreachable")

    def _stored(self, r: httpx2.Response, sha: str, md5: str, size: int) -> Put:
        if 400 <= r.status_code < 500 and r.status_code not in (401, 403):  # 400 bad file, 404 "Inexistent tag"
            log.warning("Orthanc refused an instance (HTTP %s): %s", r.status_code, r.text[:300])
            msg = "影像归档服务（Orthanc）无法解析该 DICOM 文件（文件格式错误或缺少必需的属性），未保存"
            raise InvalidInput(msg, [Problem("file", "dicom", msg)])
        if r.status_code >= 300:
            raise self._refused(r, "保存实例")
        try:
            answer = orjson.loads(r.content)
            oid, status = str(answer["ID"]), str(answer.get("Status", "Success"))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise _unavailable("保存实例的应答无法识别") from None
        new = status != "AlreadyStored"
        if not new:
            held = self._send("GET", f"/instances/{oid}/attachments/dicom/md5")
            if held.status_code == 200 and held.text.strip().strip('"') != md5:
                msg = "影像归档服务（Orthanc）中已有同一 SOPInstanceUID、内容不同的文件，未保存"
                raise Conflict(msg, [Problem("SOPInstanceUID", "conflict", msg)])
        self._remember(sha, oid)
        return Put(sha, size, new, oid)

    def open(self, ref: Ref | str) -> Iterator[bytes] | None:
        r = as_ref(ref)
        oid = self.archive_id(r)
        if oid is None:
            return None
        return self._stream(oid, r.sha256)

    def _stream(self, oid: str, sha256: str) -> Iterator[bytes]:
        h = hashlib.sha256()
        try:
            with self.http.stream("GET", f"/instances/{oid}/file") as resp:
                if resp.status_code == 404:
                    self._forget(sha256)
                    raise _unavailable(f"实例 {oid} 已不在归档中")
                if resp.status_code >= 300:
                    raise self._refused(resp, "读取实例")
                for chunk in resp.iter_bytes(CHUNK):
                    h.update(chunk)
                    yield chunk
        except httpx2.TimeoutException as exc:
            raise _unavailable("读取实例超时", exc) from None
        except httpx2.TransportError as exc:
            raise _unavailable(f"读取实例时与 {self.url} 的连接中断", exc) from None
        if h.hexdigest() != sha256:
            log.error("Orthanc instance %s: SHA-256 %s, the index holds %s", oid, h.hexdigest(), sha256)
            raise _unavailable(f"实例 {oid} 的内容与登记的 SHA-256 不符")

    def exists(self, ref: Ref | str) -> bool:
        r = as_ref(ref)
        oid = self.archive_id(r)
        if oid is None:
            return False
        if r.archive_id is None and self._ids.get(r.sha256) == oid:
            return True  # put or found by lookup in this process: Orthanc answered for it
        return self._json("GET", f"/instances/{oid}") is not None

    def sync(self, refs: Iterable[Ref | str]) -> None:
        return None  # an answered POST /instances is on disk (Orthanc's SyncStorageArea, its default)

    def remove(self, put: Put) -> None:
        if not put.new or put.archive_id is None:
            return
        try:
            r = self.http.delete(f"/instances/{put.archive_id}")
            if r.status_code not in (200, 404):
                log.warning("Orthanc kept refused instance %s (HTTP %s)", put.archive_id, r.status_code)
        except httpx2.TransportError as exc:  # left in Orthanc, never indexed: harmless, logged
            log.warning("Orthanc instance %s refused by the index not removed: %s", put.archive_id, exc)
        self._forget(put.sha256)

    def hidden(self, refs: Iterable[Ref | str]) -> None:
        return None  # huren's index hides them; Orthanc keeps the files (YB-4.5: marked, not erased)

    def check(self) -> None:
        answer = self._json("GET", "/system")
        if not isinstance(answer, dict) or "Version" not in answer:
            raise _unavailable("/system 的应答无法识别")


def _position(source: BinaryIO | Iterable[bytes]) -> int | None:
    """Where a seekable file source starts (a retry seeks back there), else None."""
    seekable, tell = getattr(source, "seekable", None), getattr(source, "tell", None)
    try:
        return int(tell()) if seekable is not None and tell is not None and seekable() else None
    except (OSError, ValueError):
        return None


class _Body:
    """A request body read from ``source`` in chunks, hashed (SHA-256, MD5) and bounded on the way."""

    def __init__(self, source: BinaryIO | Iterable[bytes], max_bytes: int | None) -> None:
        self.source, self.max_bytes = source, max_bytes
        self.sha, self.md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in _chunks(self.source):
            self.size += len(chunk)
            if self.max_bytes is not None and self.size > self.max_bytes:
                msg = f"文件超过允许的大小（最大 {self.max_bytes} 字节）"
                raise TooLarge(msg, [Problem("file", "size", msg)])
            self.sha.update(chunk)
            self.md5.update(chunk)
            yield chunk


def _chunks(source: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    read = getattr(source, "read", None)
    if read is None:
        yield from source
        return
    while chunk := read(CHUNK):
        yield chunk


def open_archive(kind: str, blobs: BlobStore, *, url: str | None = None, username: str | None = None,
                 password: str | None = None, timeout: float = 30.0) -> Archive:
    """The archive a deployment configured (``HUREN_IMAGING_ARCHIVE`` = ``local`` | ``orthanc``)."""
    if kind == LOCAL:
        return LocalArchive(blobs)
    if kind == ORTHANC:
        if not url:
            msg = "HUREN_IMAGING_ARCHIVE=orthanc 需要 HUREN_ORTHANC_URL（Orthanc 的 HTTP 地址）"
            raise NotConfigured(msg, [Problem("orthanc_url", "required", msg)])
        return OrthancArchive(url, username=username, password=password, timeout=timeout)
    msg = f"未知的影像归档类型：{kind}（可选 local、orthanc）"
    raise NotConfigured(msg, [Problem("imaging_archive", "choice", msg)])


__all__ = ["Archive", "LocalArchive", "OrthancArchive", "Put", "Ref", "as_ref", "keepalive_transport", "open_archive"]

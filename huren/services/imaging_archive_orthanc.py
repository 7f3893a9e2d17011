"""An existing Orthanc as the image archive (``HUREN_IMAGING_ARCHIVE=orthanc``; tested with
Debian's Orthanc 1.10): ``POST /instances`` streamed (chunked), ``GET /instances/{id}/file`` streamed
and checked against the SHA-256 the index holds (``huren.services.imaging_archive_io``).

**Addressing.** Orthanc computes its ids (``DicomInstanceHasher``): the SHA-1 of
``PatientID|StudyInstanceUID|SeriesInstanceUID|SOPInstanceUID`` (a study: ``PatientID|StudyInstanceUID``)
as five groups of eight hex digits joined by ``-``, over the values as Orthanc reads them (UTF-8,
trailing spaces stripped). A read names the instance from the index's UIDs and PatientID and costs one
GET; only when nothing is there (a PatientID with leading spaces or not NFC, which huren normalises;
an instance whose PatientID differs from its study's) ``POST /tools/lookup`` finds it by SOP Instance
UID. Ids found or confirmed are remembered by SHA-256 (bounded).

**Deletion notices** (YB-4.5): the study gets the user metadata :data:`WITHDRAWN` (a text naming the
notice; files kept; :meth:`OrthancArchive.shown` removes it) — by name when Orthanc's configuration
declares it (``"UserMetadata": {"HurenWithdrawn": 4770}``), else by its number. Orthanc 1.10 has no
labels (1.12 does); its DICOMweb plugin shows no metadata.

Errors (Chinese): Orthanc down or timing out → PlatformUnavailable (503); credentials refused →
NotConfigured; a file Orthanc cannot parse → InvalidInput (rule ``dicom``); other bytes under a held
instance → Conflict.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import httpx2
import orjson

from huren.errors import Conflict, HurenError, InvalidInput, NotConfigured, Problem
from huren.services.imaging_archive_io import (
    WITHDRAWN,
    WITHDRAWN_INDEX,
    Body,
    Stream,
    orthanc_id,
    position,
    unavailable,
)
from huren.services.imaging_archive_types import ORTHANC, Put, Ref, StudyRef, as_ref, keepalive_transport

log = logging.getLogger(__name__)

#: the answers of Orthanc's small JSON calls are read to at most this many bytes
JSON_MAX = 1024 * 1024
class OrthancArchive:
    """Instances kept in an Orthanc through its REST API (see the module). ``url``: Orthanc's HTTP
    root; ``username``/``password``: one of its ``RegisteredUsers``; ``timeout``: connecting and each
    read/write (s). Orthanc must keep ``OverwriteInstances`` false (other bytes under a held SOP
    Instance UID are refused, not replaced) and ``SyncStorageArea`` true (an answered ``POST`` is on
    disk: :meth:`sync` has nothing to do) — both its defaults."""

    name = ORTHANC
    needs_patient_id = True  # Orthanc's instance identifier hashes the PatientID with the UIDs

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
        self._ids: OrderedDict[str, str] = OrderedDict()  # sha256 → Orthanc instance id Orthanc answered for (bounded)
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._withdrawn_key: str | None = None  # WITHDRAWN, or its number when Orthanc has it undeclared
        #: requests sent, by kind ("lookup", "file", "instance", …): what a read costs, for tests and the bench
        self.requests: dict[str, int] = {}

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

    def _known(self, r: Ref) -> str | None:
        with self._lock:
            return self._ids.get(r.sha256)

    @staticmethod
    def computed_id(r: Ref) -> str | None:
        """The id Orthanc gives the instance, from its identifiers (None when the ref lacks one)."""
        if r.patient_id is None or not (r.study_uid and r.series_uid and r.sop_uid):
            return None
        return orthanc_id(r.patient_id, r.study_uid, r.series_uid, r.sop_uid)

    def _lookup(self, uid: str | None, kind: str = "Instance") -> str | None:
        if not uid:
            return None
        found = self._json("POST", "/tools/lookup", kind="lookup", content=uid.encode("ascii", "replace"))
        ids = [str(e["ID"]) for e in found if isinstance(e, dict) and e.get("Type") == kind and e.get("ID")] \
            if isinstance(found, list) else []
        return ids[0] if ids else None

    def archive_id(self, ref: Ref | str) -> str | None:
        """Orthanc's id of the instance, confirmed: the one given or remembered, else the computed one
        if Orthanc holds it, else found by SOP Instance UID; None when Orthanc does not hold it."""
        r = as_ref(ref)
        given = r.archive_id or self._known(r)
        if given is not None:
            return given
        computed = self.computed_id(r)
        if computed is not None and self._json("GET", f"/instances/{computed}", kind="instance") is not None:
            self._remember(r.sha256, computed)
            return computed
        found = self._lookup(r.sop_uid)
        if found is not None:
            self._remember(r.sha256, found)
        return found

    # -- HTTP ------------------------------------------------------------------------------------------
    def _count(self, kind: str) -> None:
        with self._lock:
            self.requests[kind] = self.requests.get(kind, 0) + 1

    def _send(self, method: str, path: str, *, kind: str = "other", **kw: Any) -> httpx2.Response:
        self._count(kind)
        try:
            return self.http.request(method, path, **kw)
        except httpx2.TimeoutException as exc:
            raise unavailable("请求超时", exc) from None
        except httpx2.TransportError as exc:
            raise unavailable(f"无法连接 {self.url}", exc) from None

    def refused(self, r: httpx2.Response, what: str) -> HurenError:
        if r.status_code in (401, 403):
            msg = "影像归档服务（Orthanc）拒绝了本平台的用户名或密码：请检查 HUREN_ORTHANC_USERNAME / HUREN_ORTHANC_PASSWORD 与 Orthanc 的 RegisteredUsers"
            return NotConfigured(msg, [Problem("archive", "credentials", msg)])
        return unavailable(f"{what}失败（HTTP {r.status_code}）")

    def _json(self, method: str, path: str, *, kind: str = "other", limit: int = JSON_MAX, **kw: Any) -> Any:
        r = self._send(method, path, kind=kind, **kw)
        if r.status_code == 404:
            return None
        if r.status_code >= 300:
            raise self.refused(r, path)
        if len(r.content) > limit:
            raise unavailable("应答过大")
        try:
            return orjson.loads(r.content) if r.content else {}
        except orjson.JSONDecodeError:
            raise unavailable("应答不是 JSON") from None

    def get_json(self, path: str, *, limit: int = JSON_MAX) -> Any:
        """A GET of Orthanc's REST API, its JSON answer (None: 404); errors as the archive's."""
        return self._json("GET", path, kind="list", limit=limit)

    # -- the Archive -------------------------------------------------------------------------------------
    def put(self, source: BinaryIO | Iterable[bytes], *, max_bytes: int | None = None) -> Put:
        start = position(source)
        for attempt in (1, 2):  # a pooled connection Orthanc closed meanwhile is retried once (a file source only)
            body = Body(source, max_bytes)
            self._count("store")
            try:
                r = self.http.post("/instances", content=body, headers={"Content-Type": "application/dicom"})
            except (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError) as exc:
                if attempt == 1 and start is not None and hasattr(source, "seek"):
                    source.seek(start)
                    continue
                raise unavailable(f"向 {self.url} 保存实例时连接中断", exc) from None
            except httpx2.TimeoutException as exc:
                raise unavailable("保存实例超时", exc) from None
            except httpx2.TransportError as exc:
                raise unavailable(f"无法连接 {self.url}", exc) from None
            return self._stored(r, body.sha.hexdigest(), body.md5.hexdigest(), body.size)
        raise AssertionError("unreachable")

    def _stored(self, r: httpx2.Response, sha: str, md5: str, size: int) -> Put:
        if 400 <= r.status_code < 500 and r.status_code not in (401, 403):  # 400 bad file, 404 "Inexistent tag"
            log.warning("Orthanc refused an instance (HTTP %s): %s", r.status_code, r.text[:300])
            msg = "影像归档服务（Orthanc）无法解析该 DICOM 文件（文件格式错误或缺少必需的属性），未保存"
            raise InvalidInput(msg, [Problem("file", "dicom", msg)])
        if r.status_code >= 300:
            raise self.refused(r, "保存实例")
        try:
            answer = orjson.loads(r.content)
            oid, status = str(answer["ID"]), str(answer.get("Status", "Success"))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise unavailable("保存实例的应答无法识别") from None
        new = status != "AlreadyStored"
        if not new:
            held = self._send("GET", f"/instances/{oid}/attachments/dicom/md5", kind="md5")
            if held.status_code == 200 and held.text.strip().strip('"') != md5:
                msg = "影像归档服务（Orthanc）中已有同一 SOPInstanceUID、内容不同的文件，未保存"
                raise Conflict(msg, [Problem("SOPInstanceUID", "conflict", msg)])
        self._remember(sha, oid)
        return Put(sha, size, new, oid)

    def open(self, ref: Ref | str) -> Iterator[bytes] | None:
        """The instance's bytes: one GET of the id given, remembered or computed (see the module);
        only if Orthanc has nothing there, a lookup by SOP Instance UID. The request is sent here, so
        a missing instance is None and Orthanc down raises before the first byte; the stream is
        checked against the SHA-256 at its end."""
        r = as_ref(ref)
        tried = r.archive_id or self._known(r) or self.computed_id(r)
        if tried is not None:
            stream = self._open(tried, r.sha256)
            if stream is not None:
                return stream
            self._forget(r.sha256)
        found = self._lookup(r.sop_uid)
        if found is None or found == tried:
            return None
        return self._open(found, r.sha256)

    def _open(self, oid: str, sha256: str) -> Iterator[bytes] | None:
        self._count("file")
        try:
            resp = self.http.send(self.http.build_request("GET", f"/instances/{oid}/file"), stream=True)
        except httpx2.TimeoutException as exc:
            raise unavailable("读取实例超时", exc) from None
        except httpx2.TransportError as exc:
            raise unavailable(f"无法连接 {self.url}", exc) from None
        if resp.status_code >= 300:
            resp.close()
            if resp.status_code == 404:
                return None
            raise self.refused(resp, "读取实例")
        self._remember(sha256, oid)
        return Stream(resp, oid, sha256, self.url)

    def exists(self, ref: Ref | str) -> bool:
        r = as_ref(ref)
        if r.archive_id is None and self._known(r) is not None:
            return True  # put, opened or found in this process: Orthanc answered for it
        if r.archive_id is not None and self._json("GET", f"/instances/{r.archive_id}", kind="instance") is not None:
            return True
        return self.archive_id(Ref(r.sha256, r.sop_uid, None, r.study_uid, r.series_uid, r.patient_id)) is not None

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

    # -- deletion notices (YB-4.5) ---------------------------------------------------------------------
    def study_id(self, study: StudyRef) -> str | None:
        """Orthanc's id of the study: computed, else found by Study Instance UID; None: not held there."""
        if study.patient_id is not None:
            computed = orthanc_id(study.patient_id, study.study_uid)
            if self._json("GET", f"/studies/{computed}", kind="study") is not None:
                return computed
        return self._lookup(study.study_uid, "Study")

    def _withdrawn_keys(self) -> tuple[str, ...]:
        return (self._withdrawn_key,) if self._withdrawn_key else (WITHDRAWN, str(WITHDRAWN_INDEX))

    def withdrawn(self, study_id: str) -> str | None:
        """The mark a deletion notice left on an Orthanc study (its text), None when there is none."""
        found = self._json("GET", f"/studies/{study_id}/metadata?expand", kind="metadata")
        if not isinstance(found, dict):
            return None
        for key in (WITHDRAWN, str(WITHDRAWN_INDEX)):
            if isinstance(found.get(key), str):
                return str(found[key])
        return None

    def hidden(self, studies: Iterable[StudyRef], note: str = "") -> int:
        """Mark each study withdrawn in Orthanc (see the module); the files stay. A study Orthanc does
        not hold is passed over. Orthanc down → PlatformUnavailable (nothing is half done: marking
        again is harmless)."""
        text = (note or "影像删除通知：已在互认平台隐藏，文件保留").encode("utf-8")
        marked = 0
        for s in studies:
            sid = self.study_id(s)
            if sid is None:
                log.info("deletion notice: study %s is not in Orthanc, nothing marked", s.study_uid)
                continue
            for key in self._withdrawn_keys():  # a 404 with the study there (just found): the name is undeclared
                r = self._send("PUT", f"/studies/{sid}/metadata/{key}", kind="mark", content=text)
                if r.status_code != 404:
                    break
            if r.status_code >= 300:
                raise self.refused(r, "标记撤回")
            if key != self._withdrawn_key:
                self._withdrawn_key = key
                if key != WITHDRAWN:
                    log.warning('Orthanc has no UserMetadata "%s": deletion notices are marked as metadata %s', WITHDRAWN, key)
            marked += 1
        return marked

    def shown(self, studies: Iterable[StudyRef]) -> int:
        """Remove the mark :meth:`hidden` set (under its name or its number)."""
        removed = 0
        for s in studies:
            sid = self.study_id(s)
            if sid is None:
                continue
            for key in (WITHDRAWN, str(WITHDRAWN_INDEX)):
                r = self._send("DELETE", f"/studies/{sid}/metadata/{key}", kind="mark")
                if r.status_code < 300:
                    removed += 1
                elif r.status_code != 404:
                    raise self.refused(r, "撤销撤回标记")
        return removed

    def check(self) -> None:
        answer = self._json("GET", "/system")
        if not isinstance(answer, dict) or "Version" not in answer:
            raise unavailable("/system 的应答无法识别")


__all__ = ["JSON_MAX", "WITHDRAWN", "WITHDRAWN_INDEX", "OrthancArchive", "orthanc_id"]

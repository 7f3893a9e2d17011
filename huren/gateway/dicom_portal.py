"""The DICOM side of the YB-4.2 pull (``huren.gateway.dicom_pull``): the gateway's own small
pynetdicom code — the Portal AET's storage SCP that receives a C-MOVE's instances as received
(into the sealed spool, never decoded, never in the clear on disk), and the SCU that C-ECHOes the
hospital PACS and asks a study-level C-MOVE (Study Root). TCP_NODELAY on every socket.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2

from huren.gateway.imaging_spool import FetchError, Spool, Staged
from huren.gateway.model import os_reason
from huren.gateway.sources.base import ConfigError, SourceError

log = logging.getLogger("huren.gateway.dicom_pull")

HEAD = 1024 * 1024  # bytes of a file read to find its UIDs
#: C-MOVE statuses in the operator's words (PS3.4 C.4.2.1.5)
MOVE_STATUS = {
    0xA701: "PACS 资源不足，无法计算子操作数", 0xA702: "PACS 资源不足，无法执行子操作",
    0xA801: "PACS 不认识移动目标（请在 PACS 中登记本前置机的 Portal AET、IP 与端口）",
    0xA900: "PACS 认为请求的标识不符合 SOP 类", 0xFE00: "PACS 取消了移动", 0x0122: "PACS 不支持 Study Root 检索",
    0x0124: "PACS 拒绝：本前置机的 Portal AET 无 C-MOVE 权限",
}
#: what a PACS usually means by "unable to process" (Orthanc answers it for an unknown destination)
UNABLE_HINT = "常见原因：PACS 未登记本前置机的 Portal AET {aet} 及其 IP、端口，或检查不在 PACS 中"


def addresses(host: str) -> list[str]:
    """The IP addresses of ``host`` (a name or an address); [] when it cannot be resolved now."""
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})
    except OSError:
        return []


def aet_title(value: str, where: str) -> str:
    if not value or len(value) > 16 or not value.isascii() or "\\" in value or value != value.strip():
        raise ConfigError(f"{where} 应为 1–16 个 ASCII 字符的 AE 名称（不含反斜杠与首尾空格）")
    return value


def configure() -> None:
    """Process-wide pynetdicom settings (the same the platform's AE uses): no per-message logging and
    no identifiers (patient data) in logs; a socket whose connection failed is closed (pynetdicom
    3.0.4 closes it only when ``shutdown()`` succeeded, leaking it otherwise)."""
    from pynetdicom import _config
    from pynetdicom.transport import AssociationSocket

    _config.LOG_HANDLER_LEVEL = "none"
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # its connection errors are ours, in Chinese
    AssociationSocket._shutdown_socket = _shutdown_socket  # type: ignore[method-assign]


def _shutdown_socket(self: Any) -> None:
    sock = self.socket
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def nodelay(event: Any) -> None:
    """EVT_CONN_OPEN: TCP_NODELAY on the association's socket (with Nagle on, C-STORE crawls)."""
    raw = getattr(event.assoc.dul.socket, "socket", None)
    if isinstance(raw, socket.socket):
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def header(head: bytes) -> dict[str, str]:
    """SOP Instance, Study, Series UIDs and Instance Number of a Part-10 file's first bytes."""
    import pydicom.filereader
    from pydicom.errors import InvalidDicomError

    if head[128:132] != b"DICM":
        raise FetchError("不是 DICOM 文件（缺少 128 字节前导与“DICM”标记）")
    try:
        ds = pydicom.filereader.read_partial(io.BytesIO(head), stop_when=lambda tag, vr, length: tag > 0x00200013)
        out = {k: str(ds.get(k, "") or "") for k in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "InstanceNumber")}
    except (InvalidDicomError, EOFError, ValueError, KeyError, AttributeError, TypeError) as exc:
        raise FetchError(f"DICOM 文件头无法解析（{exc.__class__.__name__}）") from exc
    if not out["SOPInstanceUID"] or not out["StudyInstanceUID"]:
        raise FetchError("DICOM 文件缺少 SOP Instance UID 或 Study Instance UID")
    return out


class PullSpool(Spool):
    """The imaging spool (same folder, same keys) that also stages bytes held in memory (``mem:<id>``,
    an instance received by C-STORE): nothing of it is written in the clear."""

    def __init__(self, spool: Spool) -> None:
        super().__init__(spool.path, spool.sealer, max_file_bytes=spool.max_file_bytes, http_timeout=spool.http_timeout)
        self._held: dict[str, bytes] = {}

    def stage_bytes(self, data: bytes) -> tuple[Staged, dict[str, str]]:
        head = header(data[:HEAD])
        token = f"mem:{secrets.token_hex(8)}"
        self._held[token] = data
        try:
            return self.stage(token, head["SOPInstanceUID"], head["StudyInstanceUID"]), head
        finally:
            self._held.pop(token, None)

    def _read(self, source: str) -> Any:
        if source.startswith("mem:"):
            data = self._held[source]
            return iter([data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20)])
        return super()._read(source)

    def head_of(self, source: str) -> dict[str, str]:
        """The UIDs of a file by path or URL, from its first bytes (an http GET cut short)."""
        buf = bytearray()
        try:
            if source.lower().startswith(("http://", "https://")):
                with httpx2.stream("GET", source, timeout=self.http_timeout, headers={"Range": f"bytes=0-{HEAD - 1}"}) as r:
                    if r.status_code not in (200, 206):
                        raise FetchError(f"下载影像文件失败：HTTP {r.status_code}")
                    for piece in r.iter_bytes(65536):
                        buf += piece
                        if len(buf) >= HEAD:
                            break
            else:
                with open(source, "rb") as fh:
                    buf += fh.read(HEAD)
        except httpx2.HTTPError as exc:
            raise FetchError(f"下载影像文件失败（{exc.__class__.__name__}）") from exc
        except OSError as exc:
            raise FetchError(f"无法读取文件 {source}（{os_reason(exc)}）") from exc
        return header(bytes(buf))


@dataclass
class Collector:
    """What arrives for the study being moved."""

    study_uid: str
    limit: int = 10000  # instances at most
    received: dict[str, tuple[Staged, dict[str, str]]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)


class PortalScp:
    """The gateway's storage SCP (AE title = the Portal AET), receiving the instances of a C-MOVE."""

    def __init__(
        self, aet: str, host: str, port: int, spool: PullSpool, *, store_aets: Sequence[str], store_hosts: Sequence[str] = (),
    ) -> None:
        self.aet, self.host, self.port, self.spool = aet, host, port, spool
        self.store_aets = list(store_aets)
        self.store_hosts = set(store_hosts)  # empty: any address
        self._server: Any = None
        self._ae: Any = None
        self._lock = threading.Lock()
        self._current: Collector | None = None
        self._bytes: dict[int, int] = {}

    def start(self) -> int:
        from pynetdicom import AE, AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

        configure()
        ae = AE(ae_title=self.aet)
        ae.require_called_aet = True
        ae.require_calling_aet = self.store_aets
        ae.maximum_pdu_size = 1024 * 1024
        ae.network_timeout = ae.dimse_timeout = 120
        for cx in AllStoragePresentationContexts:
            if cx.abstract_syntax is not None:
                ae.add_supported_context(cx.abstract_syntax, dicom_syntaxes())
        ae.add_supported_context(Verification)
        handlers: list[Any] = [
            (evt.EVT_CONN_OPEN, nodelay), (evt.EVT_PDU_RECV, self._pdu), (evt.EVT_C_STORE, self._store),
            (evt.EVT_C_ECHO, lambda event: 0x0000), (evt.EVT_CONN_CLOSE, self._gone),
        ]
        try:
            self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        except OSError as exc:
            raise SourceError(f"Portal AET {self.aet} 无法在 {self.host}:{self.port} 监听（{exc.strerror or exc}）") from exc
        self._ae = ae
        self.port = int(self._server.server_address[1])
        log.info("前置机 DICOM 接收服务已启动", extra={"aet": self.aet, "host": self.host, "port": self.port})
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._ae is not None:
            self._ae.shutdown()
            self._ae = None

    def expect(self, study_uid: str, limit: int = 10000) -> Collector:
        with self._lock:
            self._current = Collector(study_uid, limit)
            return self._current

    def done(self) -> None:
        with self._lock:
            self._current = None

    def _gone(self, event: Any) -> None:
        self._bytes.pop(id(event.assoc), None)
        # a C-STORE cut off mid-data-set (aborted over the bound): when pynetdicom receives into a
        # temporary file (chunked receive, set by a platform AE in the same process) it leaves that
        # file open and on disk for the message it drops
        message = getattr(getattr(event.assoc, "dimse", None), "message", None)
        fh = getattr(message, "_data_set_file", None)
        if message is not None and fh is not None:
            with contextlib.suppress(OSError):
                fh.close()
            with contextlib.suppress(OSError):
                os.unlink(fh.name)
            message._data_set_file = None

    def _pdu(self, event: Any) -> None:
        from pynetdicom.pdu import P_DATA_TF

        if isinstance(event.pdu, P_DATA_TF):
            key = id(event.assoc)
            got = self._bytes.get(key, 0) + sum(len(i.data or b"") for i in event.pdu.presentation_data_value_items)
            self._bytes[key] = got
            if got > self.spool.max_file_bytes + 65536:
                log.warning("PACS 发送的实例超过上限，关联已中止", extra={"limit": self.spool.max_file_bytes})
                self._bytes[key] = 0
                event.assoc.abort(block=False)

    def _store(self, event: Any) -> int:
        self._bytes[id(event.assoc)] = 0
        with self._lock:
            col = self._current
        peer = str(event.assoc.requestor.address)
        if self.store_hosts and peer not in self.store_hosts:
            log.warning("收到来自未授权地址的 C-STORE，已拒绝", extra={"address": peer})
            if col is not None:
                col.refused.append(f"来自未授权地址 {peer} 的实例")
            return 0x0124
        if col is None:
            log.warning("收到不属于任何 C-MOVE 的 C-STORE，已拒绝", extra={"calling": event.assoc.requestor.ae_title})
            return 0x0124
        if len(col.received) >= col.limit:
            col.refused.append(f"实例数超过上限 max_instances = {col.limit}")
            return 0xA700
        try:
            from pynetdicom import _config

            if _config.STORE_RECV_CHUNKED_DATASET:  # set by the platform's AE in the same process: a temp file
                data = event.dataset_path.read_bytes()
            else:
                data = event.encoded_dataset(include_meta=True)
            staged, head = self.spool.stage_bytes(data)
        except FetchError as exc:
            col.refused.append(str(exc))
            return 0xC000
        except OSError as exc:
            col.refused.append(f"写入暂存区失败（{exc.strerror or exc}）")
            return 0xA700
        if head["StudyInstanceUID"] != col.study_uid:
            col.refused.append(f"实例 {head['SOPInstanceUID']} 属于另一检查 {head['StudyInstanceUID'][:64]}")
            return 0x0124
        with self._lock:
            col.received[head["SOPInstanceUID"]] = (staged, head)
        return 0x0000


def dicom_syntaxes() -> list[str]:
    """Transfer syntaxes accepted for storage: explicit VR little endian first (pynetdicom takes the
    acceptor's order), then the compressed ones (kept as received), implicit VR last."""
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import ALL_TRANSFER_SYNTAXES

    rest = [str(t) for t in ALL_TRANSFER_SYNTAXES if t not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)]
    return [str(ExplicitVRLittleEndian), *rest, str(ImplicitVRLittleEndian)]


@dataclass(frozen=True)
class Pacs:
    aet: str
    host: str
    port: int
    portal_aet: str
    timeout: float = 30.0
    move_timeout: float = 600.0

    @property
    def label(self) -> str:
        return f"PACS {self.aet}（{self.host}:{self.port}）"

    def _associate(self, contexts: Sequence[str]) -> Any:
        from pynetdicom import AE, evt

        configure()
        ae = AE(ae_title=self.portal_aet)
        ae.acse_timeout = ae.network_timeout = ae.connection_timeout = self.timeout
        ae.dimse_timeout = self.move_timeout
        for c in contexts:
            ae.add_requested_context(c)
        assoc = ae.associate(self.host, self.port, ae_title=self.aet, evt_handlers=[(evt.EVT_CONN_OPEN, nodelay)])
        if not assoc.is_established:
            why = "对方拒绝了关联（请在 PACS 中授权本前置机的 Portal AET）" if assoc.is_rejected else "无法连接或关联被中止"
            raise SourceError(f"无法与 {self.label} 建立 DICOM 关联：{why}；检查影像稍后重试")
        return assoc

    def echo(self) -> None:
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

        assoc = self._associate([Verification])
        try:
            rsp = assoc.send_c_echo()
        finally:
            if assoc.is_established:
                assoc.release()
        code = int(rsp.get("Status", 0xC000)) if rsp is not None else 0xC000
        if code != 0:
            raise SourceError(f"{self.label} 的 C-ECHO 失败（状态 0x{code:04X}）；检查影像稍后重试")

    def move(self, study_uid: str) -> tuple[int, int, int, int]:
        """(final status, completed, failed, warning) of a study-level C-MOVE to the Portal AET."""
        from pydicom.dataset import Dataset
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as Move  # type: ignore[attr-defined]

        ident = Dataset()
        ident.QueryRetrieveLevel = "STUDY"
        ident.StudyInstanceUID = study_uid
        assoc = self._associate([Move])
        final, counts = -1, [0, 0, 0]
        try:
            for rsp, _ in assoc.send_c_move(ident, self.portal_aet, Move):
                if rsp is None or "Status" not in rsp:
                    break
                for i, kw in enumerate(("NumberOfCompletedSuboperations", "NumberOfFailedSuboperations", "NumberOfWarningSuboperations")):
                    value = rsp.get(kw)
                    if value is not None and value != "":
                        counts[i] = int(value)
                if int(rsp.Status) not in (0xFF00, 0xFF01):
                    final = int(rsp.Status)
        finally:
            if assoc.is_established:
                assoc.release()
        if final < 0:
            raise SourceError(f"{self.label} 在移动检查 {study_uid} 时中断了关联或超时；检查影像稍后重试")
        return final, counts[0], counts[1], counts[2]

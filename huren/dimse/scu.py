"""The SCU side: C-ECHO, a study-level C-MOVE from a hospital PACS (YB-4.2: the platform or the
gateway, as the "Portal AET", asks the PACS to send a study to a destination AE — usually its own
SCP), and a C-STORE push of files (their bytes as stored, never decoded). Every association sets
TCP_NODELAY on its socket."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE, build_context, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from huren.dimse import status
from huren.dimse.server import MAX_PDU, configure_pynetdicom
from huren.dimse.sockets import nodelay
from huren.errors import InvalidInput, PlatformUnavailable, Problem


@dataclass(frozen=True)
class Peer:
    host: str
    port: int
    aet: str  # the called AE title
    calling_aet: str = "HUREN"
    timeout: float = 30


@dataclass
class MoveResult:
    status: int
    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_uids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == status.SUCCESS


def _check_aet(value: str, field_name: str) -> str:
    if not value or len(value) > 16 or not value.isascii() or "\\" in value or value != value.strip():
        raise InvalidInput(f"AE 名称“{value}”无效", [Problem(field_name, "ae_title", "AE 名称须为1–16个ASCII字符，不含反斜杠与首尾空格")])
    return value


def associate(peer: Peer, contexts: list[object]) -> Association:
    configure_pynetdicom()
    ae = AE(ae_title=_check_aet(peer.calling_aet, "calling_aet"))
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = peer.timeout
    ae.connection_timeout = peer.timeout
    ae.requested_contexts = contexts  # type: ignore[assignment]
    assoc = ae.associate(
        peer.host, peer.port, ae_title=_check_aet(peer.aet, "aet"), max_pdu=MAX_PDU,
        evt_handlers=[(evt.EVT_CONN_OPEN, nodelay)],
    )
    if not assoc.is_established:
        why = _rejection(assoc) if assoc.is_rejected else "无法连接或关联被中止"
        raise PlatformUnavailable(f"无法与 DICOM 节点 {peer.aet}（{peer.host}:{peer.port}）建立关联：{why}")
    return assoc


#: A-ASSOCIATE-RJ (source, reason) in words (PS3.8 9.3.4)
_REASONS = {
    (1, 2): "应用上下文不支持", (1, 3): "调用方 AE 名称未被认可", (1, 7): "被调用方 AE 名称不符",
    (2, 2): "协议版本不支持", (3, 1): "暂时拥塞", (3, 2): "并发关联数已达上限",
}


def _rejection(assoc: Association) -> str:
    rj = assoc.acceptor.primitive
    if rj is None:
        return "对方拒绝了关联"
    reason = _REASONS.get((int(rj.result_source or 0), int(rj.diagnostic or 0)), "未说明原因")
    kind = "永久" if rj.result == 1 else "暂时"
    return f"对方拒绝了关联（{kind}拒绝：{reason}）"


def echo(peer: Peer) -> int:
    """C-ECHO; the status (0x0000 success)."""
    assoc = associate(peer, [build_context(Verification)])
    try:
        rsp = assoc.send_c_echo()
        return int(rsp.get("Status", status.PROCESSING_FAILURE))
    finally:
        assoc.release()


def move_study(peer: Peer, study_uid: str, *, destination: str, patient_root: bool = False) -> MoveResult:
    """Study-level C-MOVE of ``study_uid`` from ``peer`` to the AE ``destination``."""
    _check_aet(destination, "destination")
    model = PatientRootQueryRetrieveInformationModelMove if patient_root else StudyRootQueryRetrieveInformationModelMove
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = study_uid
    assoc = associate(peer, [build_context(model)])
    result = MoveResult(status=status.PROCESSING_FAILURE)
    try:
        for rsp, identifier in assoc.send_c_move(ident, destination, model):
            if "Status" not in rsp:  # no answer within the DIMSE timeout (pynetdicom aborted)
                break
            code = int(rsp.Status)
            result.completed = int(rsp.get("NumberOfCompletedSuboperations", result.completed) or 0)
            result.failed = int(rsp.get("NumberOfFailedSuboperations", result.failed) or 0)
            result.warning = int(rsp.get("NumberOfWarningSuboperations", result.warning) or 0)
            if code in (status.PENDING, status.PENDING_OPTIONAL_KEYS):
                continue
            result.status = code
            if identifier is not None and "FailedSOPInstanceUIDList" in identifier:
                value = identifier.FailedSOPInstanceUIDList
                result.failed_uids = [str(v) for v in (value if isinstance(value, list | tuple) else [value]) if v]
    finally:
        if assoc.is_established:
            assoc.release()
    return result


def store_files(peer: Peer, paths: Iterable[Path]) -> list[tuple[Path, int]]:
    """C-STORE each Part-10 file as stored (``STORE_SEND_CHUNKED_DATASET``: the dataset's bytes go
    without decoding, in its own transfer syntax); (path, status) per file."""
    files = list(paths)
    pairs: dict[tuple[str, str], None] = {}
    for p in files:
        meta = read_file_meta_info(p)
        pairs[(str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID))] = None
    if len(pairs) > 128:
        raise InvalidInput("一次推送的SOP类与传输语法组合超过128种", [Problem("paths", "limit", "请分批推送")])
    assoc = associate(peer, [build_context(c, [ts]) for c, ts in pairs])
    out = []
    try:
        for p in files:
            if not assoc.is_established:  # the peer aborted: the rest is not sent
                out.append((p, status.PROCESSING_FAILURE))
                continue
            rsp = assoc.send_c_store(p)
            out.append((p, int(rsp.get("Status", status.PROCESSING_FAILURE))))
    finally:
        if assoc.is_established:
            assoc.release()
    return out

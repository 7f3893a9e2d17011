"""Storage Commitment Push Model SCP (PS3.4 Annex J): the N-ACTION names the instances a sender
wants kept; ``ImagingService.commit_instances`` makes them durable and marks each study COMPLETE
when all its named instances are held; the result goes back in an N-EVENT-REPORT (event type 1:
all committed, 2: some failed, with the Failure Reason of each).

The report is sent after the N-ACTION response: when the requester's AE title is a registered node
with host and port (``nodes.move_destination``), on a new association to it (as the SCP-role side
of the SOP class, by role selection); otherwise on the association of the request, which the
requester must then keep open until the report arrives.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pynetdicom import AE, build_context, build_role, evt
from pynetdicom.dimse_messages import N_ACTION_RSP
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]

from huren.dimse import status
from huren.dimse.handlers import Context, session_of
from huren.dimse.sockets import nodelay
from huren.errors import HurenError, InvalidInput, Problem

if TYPE_CHECKING:
    from pynetdicom.association import Association
    from pynetdicom.events import Event

LOG = logging.getLogger("huren.dimse")
INSTANCE_UID = "1.2.840.10008.1.20.1.1"  # the well-known Storage Commitment SOP Instance
REQUEST_COMMITMENT = 1
MAX_REFS = 65535


@dataclass(frozen=True)
class Report:
    calling_ae: str
    event_type: int
    info: Dataset


def parse_request(info: Dataset) -> tuple[str, list[tuple[str, str]]]:
    """(Transaction UID, [(SOP Class UID, SOP Instance UID)]) of an N-ACTION's Action Information."""
    txn = str(info.get("TransactionUID", "") or "").strip()
    if not txn or len(txn) > 64:
        raise InvalidInput("存储确认请求缺少 TransactionUID", [Problem("TransactionUID", "uid", "缺少或无效的事务UID")])
    seq = info.get("ReferencedSOPSequence") or []
    if not seq or len(seq) > MAX_REFS:
        raise InvalidInput("存储确认请求未列出实例", [Problem("ReferencedSOPSequence", "dicom", "缺少引用实例序列")])
    refs = []
    for item in seq:
        cls = str(item.get("ReferencedSOPClassUID", "") or "").strip()
        sop = str(item.get("ReferencedSOPInstanceUID", "") or "").strip()
        if not cls or not sop:
            raise InvalidInput("存储确认请求的实例缺少UID", [Problem("ReferencedSOPSequence", "uid", "引用实例缺少类UID或实例UID")])
        refs.append((cls, sop))
    return txn, refs


def build_report(txn: str, refs: Sequence[tuple[str, str]], results: Sequence[Any]) -> tuple[int, Dataset]:
    """Event type and Event Information from the service's per-study results."""
    committed: set[str] = set()
    failed: dict[str, str] = {}
    for r in results:
        committed.update(r.committed)
        failed.update(dict(r.failed))
    info = Dataset()
    info.TransactionUID = txn
    ok, bad = [], []
    for cls, sop in refs:
        item = Dataset()
        item.ReferencedSOPClassUID = cls
        item.ReferencedSOPInstanceUID = sop
        if sop in committed and sop not in failed:
            ok.append(item)
        else:
            item.FailureReason = status.FAILURE_REASON.get(failed.get(sop, "missing"), status.FAILURE_PROCESSING)
            bad.append(item)
    if ok:
        info.ReferencedSOPSequence = ok
    if bad:
        info.FailedSOPSequence = bad
    return (2 if bad else 1), info


def handle_action(event: Event, ctx: Context) -> tuple[int | Dataset, Dataset | None]:
    """EVT_N_ACTION: commit, answer Success, and owe the requester the N-EVENT-REPORT."""
    session = session_of(event, ctx)
    if event.action_type != REQUEST_COMMITMENT:
        return status.NO_SUCH_ACTION, None
    try:
        txn, refs = parse_request(event.action_information)
        results = ctx.imaging.commit_instances(session.sender, refs)
        event_type, info = build_report(txn, refs, results)
    except HurenError as exc:
        LOG.warning("DICOM 存储确认被拒绝（%s）：%s", session.calling_ae, status.message_of(exc))
        return status.status_dataset(exc, "action"), None
    except Exception as exc:
        LOG.exception("DICOM 存储确认处理失败（%s）", session.calling_ae)
        return status.status_dataset(exc, "action"), None
    with session.lock:
        session.reports.append(Report(session.calling_ae, event_type, info))
    LOG.info("DICOM 存储确认（%s）：事务 %s，%d 个实例，事件类型 %d", session.calling_ae, txn, len(refs), event_type)
    return status.SUCCESS, None


def handle_sent(event: Event, ctx: Context) -> None:
    """EVT_DIMSE_SENT: once the N-ACTION response is out, send the owed reports (in a thread: the
    association's reactor must run to carry them)."""
    if not isinstance(event.message, N_ACTION_RSP):
        return
    session = ctx.sessions.get(event.assoc)
    if session is None:
        return
    with session.lock:
        reports, session.reports = session.reports, []
    for report in reports:
        threading.Thread(target=send_report, args=(ctx, event.assoc, report), daemon=True, name="huren-stgcmt").start()


def send_report(ctx: Context, assoc: Association, report: Report) -> bool:
    """The N-EVENT-REPORT: to the requester's registered node (AE title with host and port) on a new
    association when it has one; otherwise on the association of the request, while it is up."""
    try:
        dest = ctx.imaging.nodes.move_destination(report.calling_ae)
    except Exception:
        LOG.exception("DICOM 存储确认：无法查询 %s 的地址", report.calling_ae)
        dest = None
    if dest is not None:
        return _on_new_association(ctx, report, dest)
    if assoc.is_established:
        try:
            rsp, _ = assoc.send_n_event_report(report.info, report.event_type, StorageCommitmentPushModel, INSTANCE_UID)
            if int(rsp.get("Status", -1)) == status.SUCCESS:
                return True
        except Exception:  # released meanwhile
            LOG.debug("storage commitment report on the same association failed", exc_info=True)
    LOG.warning("DICOM 存储确认结果未能送达 %s：关联已结束且未登记其地址与端口（huren dicom node add）", report.calling_ae)
    return False


def _on_new_association(ctx: Context, report: Report, dest: tuple[str, int]) -> bool:
    ae = AE(ae_title=ctx.aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(StorageCommitmentPushModel)
    peer = ae.associate(
        dest[0], dest[1], ae_title=report.calling_ae, ext_neg=[build_role(StorageCommitmentPushModel, scp_role=True)],
        evt_handlers=[(evt.EVT_CONN_OPEN, nodelay)],
    )
    if not peer.is_established:
        LOG.warning("DICOM 存储确认结果无法送达：无法与 %s（%s:%s）建立关联", report.calling_ae, dest[0], dest[1])
        return False
    try:
        rsp, _ = peer.send_n_event_report(report.info, report.event_type, StorageCommitmentPushModel, INSTANCE_UID)
        ok = int(rsp.get("Status", -1)) == status.SUCCESS
        if not ok:
            LOG.warning("DICOM 存储确认结果被 %s 拒绝", report.calling_ae)
        return ok
    finally:
        if peer.is_established:
            peer.release()


def contexts() -> list[Any]:
    return [build_context(StorageCommitmentPushModel)]

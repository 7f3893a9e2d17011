"""The AE's handlers for the association and for C-ECHO and C-STORE, bound as pynetdicom does:
``(evt.EVT_C_STORE, handle_store, [ctx])``. C-FIND / C-MOVE / C-GET are in :mod:`huren.dimse.query`,
storage commitment in :mod:`huren.dimse.commitment`.

C-STORE keeps the dataset as received. :mod:`huren.dimse.fast_store` (attached to each accepted
association here) takes a C-STORE off the wire in the DUL thread: preamble, the file meta of the
command and its presentation context, the data set's bytes untouched, into a spool; a C-STORE it
leaves to pynetdicom (``STORE_RECV_CHUNKED_DATASET``) arrives as a Part-10 temporary file. Both go
to :func:`store_received` → ``ImagingService.store_instance``, which copies the stream into the
blob store. Nothing is decoded or encoded again, and nothing is fsynced per instance: what an
association pushed is made durable when it ends (``ImagingService.sync_studies``: on A-RELEASE-RQ,
before the release is answered — a sender told the association ended well has its instances kept;
after an abort, too), and a study COMPLETE only by storage commitment (``commit_instances``), never by
a timer or by the end of the association.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pynetdicom.pdu import A_RELEASE_RQ, P_DATA_TF

from huren.context import Principal
from huren.dimse import fast_store, status
from huren.dimse.session import Session, Sessions
from huren.errors import HurenError

if TYPE_CHECKING:
    from pynetdicom.events import Event

    from huren.services.imaging import ImagingService
    from huren.services.imaging_forward import ImageForwarder

LOG = logging.getLogger("huren.dimse")


@dataclass
class Context:
    """What every handler is bound with: the service, the sessions, the AE's limits."""

    imaging: ImagingService
    aet: str
    max_instance_bytes: int
    sessions: Sessions = field(default_factory=Sessions)
    #: XC-E-note: C-MOVE / C-GET of a study not held here served from the fallback platform
    forward: ImageForwarder | None = None


def handle_requested(event: Event, ctx: Context) -> None:
    """EVT_REQUESTED: the calling AE title must be an institution's (``nodes.resolve_calling_ae``);
    otherwise A-ASSOCIATE-RJ (rejected-permanent, service-user, calling AE title not recognised).
    The called AE title is checked by pynetdicom (``require_called_aet``)."""
    assoc = event.assoc
    primitive = assoc.requestor.primitive
    calling = str(getattr(primitive, "calling_ae_title", "") or "").strip()
    host = str(assoc.requestor.address)
    org: str | None = None
    try:
        org = ctx.imaging.nodes.resolve_calling_ae(calling, host) if calling else None
    except Exception:  # a database hiccup: refuse transiently rather than half-accept
        LOG.exception("DICOM 关联请求：无法查询调用方AE %s", calling)
        _reject(assoc, 0x02, 0x01)
        return
    if org is None:
        LOG.warning("DICOM 关联被拒绝：调用方AE“%s”（%s）未登记为任何机构", calling, host)
        _reject(assoc, 0x01, 0x03)
        return
    from huren.services.imaging import Sender  # here: huren.dimse.scu imports no platform service

    actor = f"dimse:{calling}@{host}"
    ctx.sessions.put(
        assoc,
        Session(
            calling_ae=calling,
            host=host,
            org_code=org,
            sender=Sender(org_code=org, actor=actor, channel="dimse"),
            reader=Principal(org_code=org, username=f"dimse:{calling}", role="hospital", remote_addr=host),
        ),
    )
    session = ctx.sessions.get(assoc)
    assert session is not None

    def store(request: fast_store.Request, src: Any) -> tuple[int, str | None]:
        return store_received(ctx, session, src, request.sop_instance_uid, request.sop_class_uid)

    fast_store.attach(assoc, fast_store.Receiver(assoc, store, max_instance_bytes=ctx.max_instance_bytes,
                                                 spool_dir=ctx.imaging.spool_dir()))


def _reject(assoc: Any, result: int, diagnostic: int) -> None:
    """A-ASSOCIATE-RJ from the service user, sent before the connection closes (as pynetdicom's own
    rejections: the reactor is killed once the DUL has sent the PDU)."""
    assoc.acse.send_reject(result, 0x01, diagnostic)
    assoc.kill()


def session_of(event: Event, ctx: Context) -> Session:
    session = ctx.sessions.get(event.assoc)
    if session is None:  # cannot happen: EVT_REQUESTED accepted the association with a session
        raise RuntimeError("association without a session")
    return session


def handle_pdu_recv(event: Event, ctx: Context) -> None:
    """EVT_PDU_RECV: bounds what one C-STORE may send (pynetdicom would write any length to disk):
    past ``max_instance_bytes`` (plus room for the command set) the association is aborted."""
    pdu = event.pdu
    if isinstance(pdu, A_RELEASE_RQ):
        _sync_on_release(event, ctx)
        return
    if not isinstance(pdu, P_DATA_TF):
        return

    session = ctx.sessions.get(event.assoc)
    if session is None:
        return
    session.receiving += sum(len(item.data or b"") for item in pdu.presentation_data_value_items)
    if session.receiving > ctx.max_instance_bytes + 65536:
        LOG.warning(
            "DICOM：%s 发送的实例超过上限 %d 字节，关联已中止", session.calling_ae, ctx.max_instance_bytes
        )
        session.receiving = 0
        event.assoc.abort(block=False)  # in the DUL thread: queue the A-ABORT, do not wait for it


def _sync(ctx: Context, session: Session) -> bool:
    """The session's studies made durable (once); False when that failed (logged)."""
    with session.lock:
        studies, session.studies = set(session.studies), set()
    if not studies:
        return True
    try:
        n = ctx.imaging.sync_studies(session.sender, studies)
    except Exception:
        LOG.exception("DICOM：%s 推送的 %d 个检查未能写入磁盘", session.calling_ae, len(studies))
        return False
    LOG.debug("DICOM：%s 推送的 %d 个检查（%d 个实例）已写入磁盘", session.calling_ae, len(studies), n)
    return True


def _sync_on_release(event: Event, ctx: Context) -> None:
    """A-RELEASE-RQ received (in the DUL thread, before the state machine queues it for the
    association, which then answers A-RELEASE-RP): the pushed studies are synced first. If that
    fails the association is aborted, so the sender does not take the push as kept."""
    session = ctx.sessions.get(event.assoc)
    if session is not None and not _sync(ctx, session):
        event.assoc.abort(block=False)


def handle_echo(event: Event, ctx: Context) -> int:
    return status.SUCCESS


def handle_store(event: Event, ctx: Context) -> int | Dataset:
    """EVT_C_STORE (a C-STORE the fast path, :mod:`huren.dimse.fast_store`, left to pynetdicom):
    the received Part-10 temp file to :func:`store_received`."""
    session = ctx.sessions.get(event.assoc)
    if session is None:  # the association was aborted (over the size limit) while this arrived
        return status.OUT_OF_RESOURCES
    session.receiving = 0
    request: Any = event.request
    with open(event.dataset_path, "rb") as fh:
        code, comment = store_received(ctx, session, fh, str(request.AffectedSOPInstanceUID), str(request.AffectedSOPClassUID))
    if comment is None:
        return code
    ds = Dataset()
    ds.Status, ds.ErrorComment = code, comment
    return ds


def store_received(ctx: Context, session: Session, src: Any, request_sop_uid: str, request_class_uid: str) -> tuple[int, str | None]:
    """One received C-STORE (a Part-10 stream whose file meta is the command's) to
    ``store_instance`` for the calling AE's institution: its PS3.7 status and Error Comment; a
    refusal answers its status, the server stays up. Both C-STORE paths (pynetdicom's and the fast
    one) come here."""
    try:
        stored = ctx.imaging.store_instance(session.sender, src, check_media=True)  # its meta is the command's
    except HurenError as exc:
        LOG.warning("DICOM C-STORE 被拒绝（%s，%s）：%s", session.calling_ae, session.host, status.message_of(exc))
        return status.status_for(exc, "store"), status.comment_for(exc)
    except Exception as exc:
        LOG.exception("DICOM C-STORE 处理失败（%s）", session.calling_ae)
        return status.status_for(exc, "store"), status.comment_for(exc)
    with session.lock:
        session.studies.add(stored.study_uid)
    if (stored.sop_uid, stored.sop_class_uid) != (request_sop_uid, request_class_uid):
        # the command named another instance / class than the dataset holds: kept under the dataset's
        LOG.warning("DICOM C-STORE（%s）：命令中的UID与数据集不一致，按数据集的 %s 保存", session.calling_ae, stored.sop_uid)
        return status.WARNING_DATASET_MISMATCH, None
    return status.SUCCESS, None


def handle_finished(event: Event, ctx: Context) -> None:
    """EVT_RELEASED / EVT_ABORTED: the session ends. What it pushed and was not synced at the
    release request (an abort) is synced now; its studies stay RECEIVING — COMPLETE only by storage
    commitment (N-ACTION), not by the end of the association."""
    _drop_partial(event)
    fast_store.detach(event.assoc)
    session = ctx.sessions.pop(event.assoc)
    if session is None:
        return
    pending = len(session.studies)
    _sync(ctx, session)
    if pending:
        LOG.info("DICOM 关联结束（%s）：%d 个检查接收中，待存储确认", session.calling_ae, pending)


def _drop_partial(event: Event) -> None:
    """A C-STORE still arriving when the association ends (aborted, or over the size limit): the
    temporary file pynetdicom opened for its data set is closed and removed (pynetdicom 3.0.4
    leaves it open, and on disk, for the message it drops)."""
    dimse = getattr(event.assoc, "dimse", None)
    message: Any = getattr(dimse, "message", None)
    fh = getattr(message, "_data_set_file", None)
    if message is None or fh is None:
        return
    with contextlib.suppress(OSError):
        fh.close()
    with contextlib.suppress(OSError):
        os.unlink(fh.name)
    message._data_set_file = None


"""C-MOVE and C-GET SCP (Patient Root and Study Root), bound by :mod:`huren.dimse.query`: the
instances an identifier names, from the index through ``ImagingService`` for the institution of the
calling AE (the access policy and the access log are the service's), each sent (one in memory at a
time) over a C-STORE sub-association / the same association.

XC-E-note: with a fallback platform configured (``Context.forward``), a C-MOVE / C-GET of a study
not held here — or, with failover, an instance the archive cannot give now — is served from it
(``huren.services.imaging_forward_dimse``): its instances listed by QIDO-RS, each fetched by
WADO-RS into a temporary file, then sent as a held one (same sub-operation counts and statuses;
the peer unreachable: 0xC000 with an ASCII comment). The caller's institution is a reader as for
held studies (``ImageForwarder.relays``), every fetch in the access log (``image.forward``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import build_context, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from huren.dimse import status
from huren.dimse.handlers import Context, session_of
from huren.dimse.identifiers import bad, level_of, text
from huren.dimse.sockets import nodelay
from huren.errors import HurenError, NotFound, PlatformUnavailable
from huren.services.imaging_forward import ImageForwarder, NotHeld
from huren.services.imaging_forward_dimse import RemoteInstance, remote_instances, spool

if TYPE_CHECKING:
    from pynetdicom.events import Event
    from pynetdicom.presentation import PresentationContext

    from huren.services.imaging import InstanceFile

    Item = InstanceFile | RemoteInstance

LOG = logging.getLogger("huren.dimse")

#: transfer syntaxes proposed for a relayed instance whose syntax the peer did not say (one
#: presentation context each): the uncompressed ones, then the usual compressed ones
RELAY_SYNTAXES = (
    "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.5",
)


def forwarder(ctx: Context) -> ImageForwarder | None:
    """The fallback platform the AE relays to (``Context.forward``; None: not configured)."""
    return ctx.forward


def _study_items(
    ctx: Context, reader: Any, study: str, series: str | None = None, sops: set[str] | None = None
) -> list[Item]:
    """A study's (or series') instances: the held ones, else — not held, and the fallback relays
    for this reader — the fallback platform's; a study neither holds: NotFound."""
    try:
        held = ctx.imaging.instances_of(reader, study, series)
    except NotHeld as exc:
        fw = forwarder(ctx)
        if fw is None or not fw.relays(reader, exc):
            raise
        return list(remote_instances(fw, reader, study, series, sorted(sops or ())))
    return [i for i in held if sops is None or i.sop_uid in sops]


def instances(ctx: Context, reader: Any, identifier: Dataset) -> list[Item]:
    """The instances a C-MOVE / C-GET identifier names (hierarchical: every unique key above)."""
    level = level_of(identifier)
    svc = ctx.imaging

    def values(key: str) -> list[str]:
        raw = text(identifier.get(key, "") and identifier[key].value).strip()
        if "*" in raw or "?" in raw:
            raise bad(key, f"取回请求的 {key} 不能含通配符")
        return [v.strip() for v in raw.replace(",", "\\").split("\\") if v.strip()]

    if level == "PATIENT":
        pids = values("PatientID")
        if len(pids) != 1:
            raise bad("PatientID", "患者级取回必须给出一个 PatientID")
        studies = [text(Dataset.from_json(dict(r)).get("StudyInstanceUID", "")) for r in
                   svc.find_studies(reader, {"PatientID": pids[0]}, limit=1000)]
        return [i for s in studies if s for i in svc.instances_of(reader, s)]
    studies = values("StudyInstanceUID")
    if not studies:
        raise bad("StudyInstanceUID", "取回请求必须给出 StudyInstanceUID")
    if level == "STUDY":
        out: list[Item] = []
        for s in studies:
            with contextlib.suppress(NotFound):  # as C-FIND: a study not there (or not for the caller) matches nothing
                out += _study_items(ctx, reader, s)
        return out
    if len(studies) != 1:
        raise bad("StudyInstanceUID", "序列级及实例级取回只能给出一个 StudyInstanceUID")
    series = values("SeriesInstanceUID")
    if not series:
        raise bad("SeriesInstanceUID", "序列级及实例级取回必须给出 SeriesInstanceUID")
    if level == "SERIES":
        return [i for e in series for i in _study_items(ctx, reader, studies[0], e)]
    if len(series) != 1:
        raise bad("SeriesInstanceUID", "实例级取回只能给出一个 SeriesInstanceUID")
    sops = set(values("SOPInstanceUID"))
    if not sops:
        raise bad("SOPInstanceUID", "实例级取回必须给出 SOPInstanceUID")
    return _study_items(ctx, reader, studies[0], series[0], sops)


def _matches(ctx: Context, reader: Any, identifier: Dataset) -> list[Item]:
    """As :func:`instances`; a study the caller may not see (or that does not exist) matches nothing
    (zero sub-operations, Success), as C-FIND answers it."""
    try:
        return instances(ctx, reader, identifier)
    except NotFound:
        return []


def dataset_of(item: InstanceFile) -> Dataset:
    """The stored file, parsed (one instance in memory), to be sent in its stored transfer syntax."""
    buf = io.BytesIO()
    for chunk in item.chunks():
        buf.write(chunk)
    buf.seek(0)
    return dcmread(buf)


def contexts_for(items: Sequence[Item]) -> list[PresentationContext]:
    """One presentation context per (SOP class, stored transfer syntax): the bytes go as stored. A
    relayed instance whose syntax the peer did not say: one context per :data:`RELAY_SYNTAXES`."""
    pairs: dict[tuple[str, str], None] = {}
    for i in items:
        for ts in (i.transfer_syntax,) if i.transfer_syntax else RELAY_SYNTAXES:
            pairs[(i.sop_class_uid, ts)] = None
    return [build_context(sop, [ts]) for sop, ts in list(pairs)[:128]]


def _fetched(fw: ImageForwarder, reader: Any, item: RemoteInstance) -> Dataset:
    """A relayed instance: spooled to a temporary file, parsed (one instance in memory), removed."""
    path = spool(fw, reader, item)
    try:
        return dcmread(path)
    finally:
        os.unlink(path)


def _dataset(ctx: Context, reader: Any, item: Item) -> Dataset:
    if isinstance(item, RemoteInstance):
        fw = forwarder(ctx)
        if fw is None:  # cannot happen: relayed items come from the forwarder
            raise PlatformUnavailable("备用影像平台未配置")
        return _fetched(fw, reader, item)
    try:
        return dataset_of(item)
    except PlatformUnavailable as exc:  # failover: the archive cannot give the file now
        fw = forwarder(ctx)
        if fw is None or not fw.relays(reader, exc):
            raise
        remote = RemoteInstance(item.study_uid, item.series_uid, item.sop_uid, item.sop_class_uid, item.transfer_syntax)
        return _fetched(fw, reader, remote)


def _suboperations(event: Event, ctx: Context, reader: Any, items: list[Item]) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    for item in items:
        if event.is_cancelled:
            yield status.CANCEL, None
            return
        try:
            ds = _dataset(ctx, reader, item)
        except HurenError as exc:
            LOG.warning("DICOM：无法取得实例 %s：%s", item.sop_uid, status.message_of(exc))
            yield status.PENDING, _failed(item)
            continue
        except Exception:
            LOG.exception("DICOM：无法读取已存实例 %s", item.sop_uid)
            yield status.PENDING, _failed(item)
            continue
        yield status.PENDING, ds


def _failed(item: Item) -> Dataset:
    """What pynetdicom cannot send: counted as a failed sub-operation, its UID in the failed list."""
    failed = Dataset()
    failed.SOPInstanceUID = item.sop_uid
    return failed


def handle_move(event: Event, ctx: Context) -> Iterator[Any]:
    """EVT_C_MOVE: the destination from the registered DICOM nodes, then the sub-operations."""
    session = session_of(event, ctx)
    dest_ae = str(event.move_destination or "").strip()
    try:
        dest = ctx.imaging.nodes.move_destination(dest_ae) if dest_ae else None
    except Exception:
        LOG.exception("DICOM C-MOVE：无法查询目的AE %s", dest_ae)
        dest = None
    if dest is None:
        LOG.warning("DICOM C-MOVE（%s）：目的AE“%s”未登记", session.calling_ae, dest_ae)
        yield None, None
        return
    try:
        items = _matches(ctx, session.reader, event.identifier)
    except Exception as exc:
        yield from _refused(session.calling_ae, "C-MOVE", exc, op="move", dest=dest)
        return
    host, port = dest
    yield host, port, {"contexts": contexts_for(items), "evt_handlers": [(evt.EVT_CONN_OPEN, nodelay)]}
    yield len(items)
    yield from _suboperations(event, ctx, session.reader, items)


def handle_get(event: Event, ctx: Context) -> Iterator[Any]:
    """EVT_C_GET: the sub-operations over the same association (the SCU proposed SCP roles)."""
    session = session_of(event, ctx)
    try:
        items = _matches(ctx, session.reader, event.identifier)
    except Exception as exc:
        yield from _refused(session.calling_ae, "C-GET", exc, op="get", dest=None)
        return
    yield len(items)
    yield from _suboperations(event, ctx, session.reader, items)


def _refused(ae: str, what: str, exc: BaseException, *, op: status.Operation, dest: Any) -> Iterator[Any]:
    if isinstance(exc, HurenError):
        LOG.warning("DICOM %s 被拒绝（%s）：%s", what, ae, status.message_of(exc))
    else:
        LOG.exception("DICOM %s 处理失败（%s）", what, ae)
    if dest is not None:  # pynetdicom needs the destination (and opens an association) before any status
        yield dest[0], dest[1], {"contexts": [build_context(Verification)], "evt_handlers": [(evt.EVT_CONN_OPEN, nodelay)]}
    yield 1
    yield status.status_dataset(exc, op), None

"""The image archive (issue 12): ingest, commit, query and retrieve DICOM studies.

**Ingest** (:meth:`ImagingService.store_instance`): one header parse (``huren.wire.dicom``), one
streamed copy into the blob store (sealed in segments, hashed on the way), one short index
transaction (not fsynced). Bytes are kept as received. **Commit** (:meth:`commit_study`,
:meth:`commit_instances`): the study's blobs are fsynced, then a durable transaction marks the
study COMPLETE when every instance the sender lists is held (with its SHA-256 when given). A
study that receives an instance after its commit is RECEIVING again until the next commit.

**Readers** are a :class:`huren.context.Principal` (the access policy's ``image.read`` decides
which institutions' studies it sees) or a :class:`KeyGrant` (one study). A study the reader may
not see is answered as missing (NotFound). Every read is in the access log (``image.query``,
``image.retrieve``, ``image.metadata``), once per (caller or key, study, action) within
:data:`huren.domain.imaging.LOG_DEDUPE_SECONDS`: a 600-frame CT is one view, not 600 reads.

**Metadata** (:meth:`metadata`): the JSON array built at ingest, served from the index. Bulk data
is listed with its VR only — no ``Value``, no ``BulkDataURI`` (the DICOMweb layer may add
``BulkDataURI``\\s for its own routes); ``SpecificCharacterSet`` is ``ISO_IR 192``.
"""


from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from huren.context import Clock, Principal
from huren.domain import imaging
from huren.errors import Conflict, Forbidden, InvalidInput, Problem, TooLarge
from huren.services import access
from huren.services.audit import AuditService
from huren.services.imaging_archive import Archive, LocalArchive, Put, StudyRef
from huren.services.imaging_keys import ImagingKeys, same_name
from huren.services.imaging_nodes import NodeService
from huren.services.imaging_reads import ImagingReads
from huren.services.imaging_types import (
    CommitResult,
    InstanceFile,
    IssuedKey,
    KeyCheck,
    KeyGrant,
    Once,
    Reader,
    Sender,
    StoredInstance,
)
from huren.services.refs import Refs
from huren.store import audit as audit_store
from huren.store import imaging as store
from huren.store import imaging_ingest
from huren.store.blobs import BlobStore
from huren.store.database import Database
from huren.wire import dicom

__all__ = [
    "CommitResult", "ImagingService", "InstanceFile", "IssuedKey", "KeyCheck", "KeyGrant", "Reader", "Sender", "StoredInstance",
]


class ImagingService(ImagingReads, ImagingKeys):
    def __init__(
        self, db: Database, blobs: BlobStore, clock: Clock, audit: AuditService, refs: Refs, *,
        max_instance_bytes: int = 512 * 1024 * 1024, key_ttl: dict[str, int] | None = None,
        public_base: str = "http://127.0.0.1:8000", archive: Archive | None = None,
    ) -> None:
        self._db, self._blobs, self._clock, self._audit, self._refs = db, blobs, clock, audit, refs
        #: where the instances' bytes live (huren.services.imaging_archive): the blob store, or an Orthanc
        self.archive: Archive = archive if archive is not None else LocalArchive(blobs)
        self.max_instance_bytes = max_instance_bytes
        self.key_ttl = {imaging.VIEWER: 1800, imaging.DOWNLOAD: 900, imaging.FILM: 30 * 86400} | (key_ttl or {})
        self.public_base = public_base.rstrip("/")
        self.nodes = NodeService(db, clock)
        self._once = Once(clock, imaging.LOG_DEDUPE_SECONDS)
        blobs.clean_incoming()  # copies a crash interrupted: never indexed

    # -- ingest ------------------------------------------------------------------------------------
    def sender_for(self, principal: Principal, channel: str = "stow") -> Sender:
        """The Sender of a token's pushes (STOW-RS, the gateway): ``image.write`` for its own institution."""
        access.require(principal, "image.write")
        return Sender(principal.org_code, f"{channel}:{principal.actor}", channel)

    def store_instance(
        self, sender: Sender, src: Path | BinaryIO, *, size_hint: int | None = None, check_media: bool = False
    ) -> StoredInstance:
        """Parse, copy (streamed, sealed) and index one Part-10 file; see the module's docstring.
        ``check_media``: the file meta's Media Storage UIDs must be the data set's (the DICOM AE's
        file of a C-STORE, whose meta is the command's; ``huren.wire.dicom.read_header``)."""
        if isinstance(src, Path):
            with open(src, "rb") as fh:  # one open: the header read, then the copy from the start
                size = os.fstat(fh.fileno()).st_size
                self._check_size(size)
                rec = dicom.read_header(fh, size, check_media=check_media)
                fh.seek(0)
                return self._keep(sender, rec, fh)
        if not _seekable(src) or src.tell() != 0:  # a stream, or a file inside a larger one: spooled
            with tempfile.TemporaryFile(dir=self.spool_dir()) as spool:
                _copy_bounded(src, spool, self.max_instance_bytes)
                spool.seek(0)
                return self.store_instance(sender, spool, size_hint=size_hint, check_media=check_media)
        size = src.seek(0, os.SEEK_END)
        self._check_size(size)
        src.seek(0)
        rec = dicom.read_header(src, size, check_media=check_media)
        src.seek(0)
        return self._keep(sender, rec, src)

    def spool_dir(self) -> Path | None:
        """Where a received instance waits before it is kept (the blob store's ``.incoming``), if it exists."""
        d = self._blobs.root / ".incoming"
        return d if d.is_dir() else None

    def _check_size(self, size: int) -> None:
        if size > self.max_instance_bytes:
            msg = f"DICOM 文件过大（{size} 字节，最大 {self.max_instance_bytes} 字节）"
            raise TooLarge(msg, [Problem("file", "size", msg)])

    def _keep(self, sender: Sender, rec: dicom.InstanceRecord, fh: BinaryIO) -> StoredInstance:
        put: Put = self.archive.put(fh, max_bytes=self.max_instance_bytes)
        digest, size = put.sha256, put.size
        try:
            with self._db.write(durable=False) as conn:  # made durable by the study's commit
                done = store.ingest(
                    conn, rec, org_code=sender.org_code, sender=sender.actor, sha256=digest, size=size, now=self._clock.now()
                )
        except store.Refusal as r:
            self.archive.remove(put)
            raise _refusal(r, rec) from None
        except BaseException:
            self.archive.remove(put)
            raise
        imaging_ingest.learn(self._db.engine, done)  # committed: the rows it created are known from now on
        return StoredInstance(
            rec.study_uid, rec.series_uid, rec.sop_uid, rec.sop_class_uid, rec.transfer_syntax, size, digest, done.duplicate
        )

    # -- commit ------------------------------------------------------------------------------------
    def commit_study(
        self, sender: Sender, study_uid: str, instances: Sequence[tuple[str, str | None]] | None = None, *,
        may_complete: bool = True,
    ) -> CommitResult:
        """Make the study durable, and COMPLETE when every listed instance is held (see the module).
        ``may_complete`` False: durable, each held instance committed, the state left RECEIVING (the
        sender's request also named instances this platform does not hold)."""
        imaging.check_uid(study_uid)
        out = CommitResult(study_uid)
        with self._db.read() as conn:
            row = store.study_row(conn, study_uid)
            held = store.instance_digests(conn, int(row["id"])) if row and row["org_code"] == sender.org_code else {}
        if row is None or row["org_code"] != sender.org_code or row["deleted_at"] is not None:
            out.failed = [(sop, imaging.MISSING) for sop, _ in instances or ()]
            return out
        wanted = list(instances) if instances is not None else [(sop, None) for sop in held]
        for sop, sha in wanted:
            if sop not in held:
                out.failed.append((sop, imaging.MISSING))
            elif sha is not None and sha.lower() != held[sop]:
                out.failed.append((sop, imaging.SHA_MISMATCH))
            else:
                out.committed.append(sop)
        self.archive.sync(held.values())
        state = imaging.COMPLETE if not out.failed and held and may_complete else imaging.RECEIVING
        with self._db.write() as conn:  # durable: with it, every index row written before it
            if not store.mark_state(conn, int(row["id"]), state, self._clock.now(), instance_count=len(held)):
                state = imaging.RECEIVING  # another instance arrived meanwhile: not complete yet
        out.state = state
        return out

    def sync_studies(self, sender: Sender, study_uids: Iterable[str]) -> int:
        """Make what was pushed of these studies durable, their state unchanged (RECEIVING stays
        RECEIVING: only a commit says a study is complete): their blobs fsynced, then a durable
        index commit (and with it every ingest transaction before it). The DICOM AE calls it when an
        association ends, so a push without storage commitment is kept once the sender is told the
        association ended well. Studies held for another institution are left alone; how many
        instances were synced."""
        uids = sorted({u for u in study_uids if u})
        if not uids:
            return 0
        with self._db.read() as conn:
            ids, digests = store.held_digests(conn, uids, sender.org_code)
        if not ids:
            return 0
        self.archive.sync(digests)
        with self._db.write() as conn:  # durable
            store.touch_studies(conn, ids, self._clock.now())
        return len(digests)

    def commit_instances(self, sender: Sender, refs: Sequence[tuple[str, str]]) -> list[CommitResult]:
        """Storage commitment: (SOPClassUID, SOPInstanceUID) pairs across studies, one result per
        study (instances not held, or held for another institution, under study UID ""). The held
        instances are committed in any case (PS3.4 J: commitment is per instance); but when the
        request names an instance not held here, none of its studies becomes COMPLETE — that
        instance may be one of theirs that did not arrive (the index cannot tell whose it is) — until
        a later request names only held instances."""
        with self._db.read() as conn:
            where = store.locate(conn, [sop for _, sop in refs])
        by_study: dict[str, list[tuple[str, str | None]]] = {}
        unknown = CommitResult("", state="")
        for sop_class, sop in refs:
            found = where.get(sop)
            if found is None or found[1] != sender.org_code or found[3] != sop_class:
                unknown.failed.append((sop, imaging.MISSING))
            else:
                by_study.setdefault(found[0], []).append((sop, None))
        complete = not unknown.failed
        results = [self.commit_study(sender, uid, items, may_complete=complete) for uid, items in by_study.items()]
        return [*results, unknown] if unknown.failed else results

    # -- access ------------------------------------------------------------------------------------
    # -- YB-4.5: deletion notices ----------------------------------------------------------------------
    def delete_notice(
        self, principal: Principal, *, hospitalId: str, accessionNo: str, patientName: str = "",
        operateDoctorName: str = "", operateDateTime: str | datetime = "",
    ) -> int:
        """The PACS deleted a study's images: its instances are marked deleted (kept, hidden from
        every answer and key), the notice kept in ``image_deletion``; how many instances were hidden
        (0 for a repeated notice). A patient name that differs from the study's is refused."""
        access.require(principal, "image.write")  # the policy first, before the parameters
        if isinstance(operateDateTime, datetime):
            operateDateTime = operateDateTime.isoformat(sep=" ", timespec="seconds")
        problems = [Problem(f, "required", f"缺少参数 {f}") for f, v in (("hospitalId", hospitalId), ("accessionNo", accessionNo)) if not v]
        for f, v, n in (("accessionNo", accessionNo, 64), ("patientName", patientName, 128), ("operateDoctorName", operateDoctorName, 128),
                        ("operateDateTime", operateDateTime, 32)):
            if len(v or "") > n:
                problems.append(Problem(f, "length", f"{f} 超过 {n} 个字符"))
        if problems:
            raise InvalidInput("影像删除通知的参数无效", problems)
        now = self._clock.now()
        with self._db.write() as conn:
            access.check_org(conn, principal, "image.write", hospitalId, "hospitalId")
            studies = store.studies_by_accession(conn, hospitalId, accessionNo.strip())
            for s in studies:
                if patientName and s.get("patient_name") and not same_name(patientName, str(s["patient_name"])):
                    msg = "患者姓名与该检查号的检查不符，未删除"
                    raise InvalidInput(msg, [Problem("patientName", "mismatch", msg)])
            # the archive's own users told too (Orthanc: the study marked withdrawn); Orthanc down → 503, nothing hidden
            self.archive.hidden(
                [StudyRef(str(s["study_uid"]), s.get("patient_id") or "") for s in studies],
                f"影像删除通知：机构 {hospitalId}，检查号 {accessionNo.strip()}，{operateDateTime or now.isoformat(timespec='seconds')}"
                "；已在互认平台隐藏，文件保留",
            )
            hidden = store.hide_studies(conn, [int(s["id"]) for s in studies], now)
            store.add_deletion(conn, {
                "org_code": hospitalId, "accession_no": accessionNo.strip(), "patient_name": patientName or None,
                "operate_doctor_name": operateDoctorName, "operate_datetime": operateDateTime,
                "study_uids": ",".join(str(s["study_uid"]) for s in studies), "instances": hidden,
                "actor": principal.actor[:256], "received_at": now,
            })
            rows = self._audit.rows(principal, "image.delete", [(None, None, f"{hospitalId}/{accessionNo}"[:256])], read=False)
            audit_store.log_access_many(conn, rows)
        return hidden

def _refusal(r: store.Refusal, rec: dicom.InstanceRecord) -> Forbidden | Conflict:
    if r.rule == "ownership":
        msg = f"检查（StudyInstanceUID {rec.study_uid}）已由其他机构保存，不能为本机构推送"
        return Forbidden(msg, [Problem("StudyInstanceUID", "ownership", msg)])
    what = {"sop_uid": "该 SOPInstanceUID 已属于另一检查", "series_uid": "该 SeriesInstanceUID 已属于另一检查"}.get(
        r.detail, "该检查已提交完成，同一 SOPInstanceUID 的文件内容不同"
    )
    fld = {"series_uid": "SeriesInstanceUID"}.get(r.detail, "SOPInstanceUID")
    return Conflict(f"{what}：{rec.sop_uid if fld == 'SOPInstanceUID' else rec.series_uid}", [Problem(fld, "conflict", what)])


def _seekable(f: BinaryIO) -> bool:
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _copy_bounded(src: BinaryIO, dst: BinaryIO, limit: int) -> None:
    n = 0
    while chunk := src.read(1024 * 1024):
        n += len(chunk)
        if n > limit:
            msg = f"DICOM 文件过大（最大 {limit} 字节）"
            raise TooLarge(msg, [Problem("file", "size", msg)])
        dst.write(chunk)

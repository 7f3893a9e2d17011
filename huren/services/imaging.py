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
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from huren.context import Clock, Principal
from huren.domain import imaging
from huren.errors import Conflict, Forbidden, InvalidInput, NotFound, Problem, TooLarge
from huren.services import access
from huren.services import imaging_json as js
from huren.services.audit import AuditService
from huren.services.imaging_nodes import NodeService
from huren.services.refs import Refs
from huren.store import imaging as store
from huren.store.blobs import BlobStore
from huren.store.database import Database
from huren.wire import dicom

MAX_LIMIT = 1000
#: the query keys matched at the study level (the others are the series' or instances' own)
STUDY_KEYS = frozenset({
    "PatientID", "PatientName", "StudyInstanceUID", "AccessionNumber", "StudyDate", "ModalitiesInStudy",
    "StudyDescription", "ReferringPhysicianName", "StudyID", "PatientSex",
})


@dataclass(frozen=True, slots=True)
class Sender:
    """Who pushes instances: the institution they are stored for, the actor, the channel."""

    org_code: str
    actor: str  # "dimse:<calling AE>@<ip>" / "stow:<org>/<user>" / "gateway:<org>"
    channel: str  # "dimse" | "stow" | "gateway"


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """A verified viewer / download / film key: read access to ONE study."""

    key_id: int
    kind: str
    study_uid: str
    viewer_org: str | None
    issued_by: str
    expires_at: datetime


Reader = Principal | KeyGrant


@dataclass(frozen=True, slots=True)
class StoredInstance:
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    size: int
    sha256: str
    duplicate: bool


@dataclass(slots=True)
class CommitResult:
    study_uid: str
    committed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (sop uid, "missing" | "sha256")
    state: str = imaging.RECEIVING  # the study's state after the commit ("" for instances not held)


@dataclass(frozen=True, slots=True)
class InstanceFile:
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    size: int
    sha256: str
    number_of_frames: int
    chunks: Callable[[], Iterator[bytes]]  # the stored bytes, byte-exact, streamed (each call anew)


def _not_found(what: str = "检查") -> NotFound:
    msg = f"未找到该{what}的影像（不存在或无权查看）"
    return NotFound(msg, [Problem("StudyInstanceUID", "not_found", msg)])


class _Once:
    """In-process memory of what was logged: (who, study, action) → when (bounded)."""

    def __init__(self, clock: Clock, seconds: float, cap: int = 50_000) -> None:
        self._clock, self._seconds, self._cap = clock, seconds, cap
        self._seen: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def first(self, key: tuple[str, str, str]) -> bool:
        now = self._clock.time()
        with self._lock:
            at = self._seen.get(key)
            if at is not None and now - at < self._seconds:
                return False
            if len(self._seen) >= self._cap:
                self._seen = {k: t for k, t in self._seen.items() if now - t < self._seconds}
                if len(self._seen) >= self._cap:
                    self._seen.clear()
            self._seen[key] = now
            return True


class ImagingService:
    def __init__(
        self, db: Database, blobs: BlobStore, clock: Clock, audit: AuditService, refs: Refs, *,
        max_instance_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self._db, self._blobs, self._clock, self._audit, self._refs = db, blobs, clock, audit, refs
        self.max_instance_bytes = max_instance_bytes
        self.nodes = NodeService(db, clock)
        self._once = _Once(clock, imaging.LOG_DEDUPE_SECONDS)

    # -- ingest ------------------------------------------------------------------------------------
    def sender_for(self, principal: Principal, channel: str = "stow") -> Sender:
        """The Sender of a token's pushes (STOW-RS, the gateway): ``image.write`` for its own institution."""
        access.require(principal, "image.write")
        return Sender(principal.org_code, f"{channel}:{principal.actor}", channel)

    def store_instance(self, sender: Sender, src: Path | BinaryIO, *, size_hint: int | None = None) -> StoredInstance:
        """Parse, copy (streamed, sealed) and index one Part-10 file; see the module's docstring."""
        if isinstance(src, Path):
            size = src.stat().st_size
            self._check_size(size)
            rec = dicom.read_header(src, size)
            with open(src, "rb") as fh:
                return self._keep(sender, rec, fh)
        if not _seekable(src) or src.tell() != 0:  # a stream, or a file inside a larger one: spooled
            with tempfile.TemporaryFile(dir=self._spool_dir()) as spool:
                _copy_bounded(src, spool, self.max_instance_bytes)
                spool.seek(0)
                return self.store_instance(sender, spool, size_hint=size_hint)
        size = src.seek(0, os.SEEK_END)
        self._check_size(size)
        src.seek(0)
        rec = dicom.read_header(src, size)
        src.seek(0)
        return self._keep(sender, rec, src)

    def _spool_dir(self) -> Path | None:
        d = self._blobs.root / ".incoming"
        return d if d.is_dir() else None

    def _check_size(self, size: int) -> None:
        if size > self.max_instance_bytes:
            msg = f"DICOM 文件过大（{size} 字节，最大 {self.max_instance_bytes} 字节）"
            raise TooLarge(msg, [Problem("file", "size", msg)])

    def _keep(self, sender: Sender, rec: dicom.InstanceRecord, fh: BinaryIO) -> StoredInstance:
        digest, size, new = self._blobs.put_stream(fh, max_bytes=self.max_instance_bytes)
        try:
            with self._db.write(durable=False) as conn:  # made durable by the study's commit
                done = store.ingest(
                    conn, rec, org_code=sender.org_code, sender=sender.actor, sha256=digest, size=size, now=self._clock.now()
                )
        except store.Refusal as r:
            if new:
                self._blobs.remove(digest)
            raise _refusal(r, rec) from None
        except BaseException:
            if new:
                self._blobs.remove(digest)
            raise
        return StoredInstance(
            rec.study_uid, rec.series_uid, rec.sop_uid, rec.sop_class_uid, rec.transfer_syntax, size, digest, done.duplicate
        )

    # -- commit ------------------------------------------------------------------------------------
    def commit_study(
        self, sender: Sender, study_uid: str, instances: Sequence[tuple[str, str | None]] | None = None
    ) -> CommitResult:
        """Make the study durable, and COMPLETE when every listed instance is held (see the module)."""
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
        self._blobs.sync(held.values())
        state = imaging.COMPLETE if not out.failed and held else imaging.RECEIVING
        with self._db.write() as conn:  # durable: with it, every index row written before it
            store.mark_state(conn, int(row["id"]), state, self._clock.now())
        out.state = state
        return out

    def commit_instances(self, sender: Sender, refs: Sequence[tuple[str, str]]) -> list[CommitResult]:
        """Storage commitment: (SOPClassUID, SOPInstanceUID) pairs across studies, one result per
        study (instances not held, or held for another institution, under study UID "")."""
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
        results = [self.commit_study(sender, uid, items) for uid, items in by_study.items()]
        return [*results, unknown] if unknown.failed else results

    # -- access ------------------------------------------------------------------------------------
    def _visible(self, conn: Any, reader: Reader, study_uid: str) -> dict[str, Any]:
        """The study row a reader may see (opened), else NotFound."""
        imaging.check_uid(study_uid)
        row = store.study_row(conn, study_uid)
        if row is None or row["deleted_at"] is not None:
            raise _not_found()
        if isinstance(reader, KeyGrant):
            if reader.study_uid != study_uid:
                raise _not_found()
        else:
            s = access.require(reader, "image.read")
            if not access.reach(conn, reader, s, str(row["org_code"])):
                raise _not_found()
        return row

    def _who(self, reader: Reader) -> Principal:
        if isinstance(reader, KeyGrant):
            return Principal(reader.viewer_org or "-", f"key:{reader.key_id}", "key")
        return reader

    def _log(self, reader: Reader, action: str, study_uid: str, target: str | None = None) -> None:
        who = self._who(reader)
        if self._once.first((f"{who.org_code}/{who.username}", study_uid, action)):
            self._audit.record(who, action, target=target or f"study:{study_uid}", read=True)

    # -- queries -----------------------------------------------------------------------------------
    def find_studies(
        self, reader: Reader, q: Mapping[str, str], *, limit: int = 100, offset: int = 0, fuzzy: bool = False
    ) -> list[dict[str, Any]]:
        """Studies as DICOM JSON objects (study level), newest first. ``fuzzy`` is accepted and
        ignored (matching follows PS3.4 C.2.2.2: exact, wildcard, range, list of UIDs)."""
        rows = self._find(reader, q, limit, offset)
        self._log_query(reader, "studies", rows)
        return [js.study(r) for r in rows]

    def _find(self, reader: Reader, q: Mapping[str, str], limit: int, offset: int) -> list[dict[str, Any]]:
        limit, offset = _bounds(limit, offset)
        with self._db.read() as conn:
            orgs = None if isinstance(reader, KeyGrant) else access.org_scope(conn, reader, "image.read")
            try:
                where, name = store.study_filters(conn, dict(q), orgs)
            except ValueError:
                msg = "PatientID 不支持通配符匹配"
                raise InvalidInput(msg, [Problem("PatientID", "wildcard", msg)]) from None
            if isinstance(reader, KeyGrant):
                where.append(store.st.c.study_uid == reader.study_uid)
            return store.find_studies(conn, where, limit=limit, offset=offset, name_pattern=name)

    def _log_query(self, reader: Reader, level: str, rows: Sequence[Mapping[str, Any]]) -> None:
        uids = [str(r["study_uid"]) for r in rows]
        target = f"{level}:{uids[0]}" if len(uids) == 1 else f"{level}:{len(uids)} studies"
        who = self._who(reader)
        key = (f"{who.org_code}/{who.username}", ",".join(uids)[:2000], "image.query")
        if self._once.first(key):
            self._audit.record(who, "image.query", target=target[:256], read=True)

    def find_patients(self, reader: Reader, q: Mapping[str, str], *, limit: int = 100) -> list[dict[str, Any]]:
        """PATIENT level (C-FIND): the studies matching ``q`` grouped by patient."""
        rows = self._find(reader, q, MAX_LIMIT, 0)
        self._log_query(reader, "patients", rows)
        return js.patients(rows, _bounds(limit, 0)[0])

    def _studies(self, reader: Reader, study_uid: str | None, q: Mapping[str, str]) -> list[dict[str, Any]]:
        """The study given (visible to the reader), or — ``study_uid`` None, as for QIDO ``/series``
        and ``/instances`` — the studies (at most MAX_LIMIT) matching the study-level keys of ``q``."""
        if study_uid is not None:
            with self._db.read() as conn:
                return [self._visible(conn, reader, study_uid)]
        rows = self._find(reader, {k: v for k, v in q.items() if k in STUDY_KEYS}, MAX_LIMIT, 0)
        self._log_query(reader, "studies", rows)
        return rows

    def find_series(
        self, reader: Reader, study_uid: str | None, q: Mapping[str, str] | None = None, *, limit: int = 1000, offset: int = 0
    ) -> list[dict[str, Any]]:
        """SERIES level, of one study or (``study_uid`` None) of the studies ``q``'s study keys match."""
        limit, offset = _bounds(limit, offset)
        q = dict(q or {})
        out: list[dict[str, Any]] = []
        for study in self._studies(reader, study_uid, q):
            with self._db.read() as conn:
                rows = store.series_of(conn, int(study["id"]), q)
            if study_uid is not None:
                self._log(reader, "image.query", study_uid)
            out += [js.series(r, str(study["study_uid"])) for r in rows]
            if len(out) >= offset + limit:
                break
        return out[offset : offset + limit]

    def find_instances(
        self, reader: Reader, study_uid: str | None, series_uid: str | None = None, q: Mapping[str, str] | None = None, *,
        limit: int = 1000, offset: int = 0,
    ) -> list[dict[str, Any]]:
        """IMAGE level, of one study (or series), or (``study_uid`` None) of the studies ``q`` matches."""
        limit, offset = _bounds(limit, offset, MAX_LIMIT * 10)
        q = dict(q or {})
        sops = imaging.split_uids(q["SOPInstanceUID"], "SOPInstanceUID") if q.get("SOPInstanceUID", "").strip() else None
        if series_uid is not None:
            imaging.check_uid(series_uid, "SeriesInstanceUID")
        cls = q.get("SOPClassUID", "").strip()
        num = q.get("InstanceNumber", "").strip()
        out: list[dict[str, Any]] = []
        for study in self._studies(reader, study_uid, q):
            with self._db.read() as conn:
                rows = store.instances(conn, int(study["id"]), series_uid, sop_uids=sops)
            if study_uid is not None:
                self._log(reader, "image.query", study_uid)
            out += [
                js.instance(r) for r in rows
                if (not cls or r["sop_class_uid"] == cls) and (not num or str(r["instance_number"]) == num)
            ]
            if len(out) >= offset + limit:
                break
        return out[offset : offset + limit]

    # -- retrieve ----------------------------------------------------------------------------------
    def metadata(self, reader: Reader, study_uid: str, series_uid: str | None = None) -> bytes:
        """The JSON array (UTF-8) of the metadata of every instance of the study or series."""
        if series_uid is not None:
            imaging.check_uid(series_uid, "SeriesInstanceUID")
        with self._db.read() as conn:
            study = store.opened(conn, self._visible(conn, reader, study_uid))
            rows = store.instances(conn, int(study["id"]), series_uid, with_metadata=True)
        if series_uid is not None and not rows:
            raise _not_found("序列")
        self._log(reader, "image.metadata", study_uid)
        return js.metadata_array(study.get("patient_json"), (str(r["metadata"]) for r in rows))

    def _file(self, r: Mapping[str, Any]) -> InstanceFile:
        sha = str(r["sha256"])

        def chunks() -> Iterator[bytes]:
            it = self._blobs.open_stream(sha)
            if it is None:
                raise _not_found("实例")
            return it

        return InstanceFile(
            str(r["study_uid"]), str(r["series_uid"]), str(r["sop_uid"]), str(r["sop_class_uid"]), str(r["transfer_syntax"]),
            int(r["size"]), sha, int(r["frames"] or 1), chunks,
        )

    def instance(self, reader: Reader, study_uid: str, series_uid: str | None, sop_uid: str) -> InstanceFile:
        """One stored file (one indexed query), byte-exact; NotFound for what the reader may not see."""
        imaging.check_uid(study_uid)
        imaging.check_uid(sop_uid, "SOPInstanceUID")
        if series_uid is not None:
            imaging.check_uid(series_uid, "SeriesInstanceUID")
        with self._db.read() as conn:
            r = store.instance_by_uid(conn, sop_uid)
            if r is None or r["study_uid"] != study_uid or (series_uid is not None and r["series_uid"] != series_uid):
                raise _not_found("实例")
            if isinstance(reader, KeyGrant):
                if reader.study_uid != study_uid:
                    raise _not_found("实例")
            else:
                s = access.require(reader, "image.read")
                if not access.reach(conn, reader, s, str(r["org_code"])):
                    raise _not_found("实例")
        if not self._blobs.exists(str(r["sha256"])):
            raise _not_found("实例")
        self._log(reader, "image.retrieve", study_uid)
        return self._file(r)

    def instances_of(self, reader: Reader, study_uid: str, series_uid: str | None = None) -> list[InstanceFile]:
        if series_uid is not None:
            imaging.check_uid(series_uid, "SeriesInstanceUID")
        with self._db.read() as conn:
            study = self._visible(conn, reader, study_uid)
            rows = store.instances(conn, int(study["id"]), series_uid)
        if series_uid is not None and not rows:
            raise _not_found("序列")
        self._log(reader, "image.retrieve", study_uid)
        return [self._file(r) for r in rows]

    # -- the exam report link ------------------------------------------------------------------------
    def study_for_exam(self, reader: Reader, org_code: str, report_form_no: str) -> str | None:
        """The study UID behind an exam report (its ``study_instance_uid``, else a held study with
        its 检查号 as accession number); None when there is none."""
        with self._db.read() as conn:
            if isinstance(reader, Principal):
                access.check_org(conn, reader, "image.read", org_code)
            uid = store.study_for_exam(conn, org_code, report_form_no)
        if isinstance(reader, KeyGrant) and uid != reader.study_uid:
            return None
        return uid

    def exam_for_study(self, reader: Reader, study_uid: str) -> dict[str, Any] | None:
        """The exam report behind a study: {"ref", "org_code", "report_form_no", "voided"}, or None."""
        with self._db.read() as conn:
            study = self._visible(conn, reader, study_uid)
            exam = store.exam_for_study(conn, study)
        if exam is None:
            return None
        return {
            "ref": self._refs.report("exam", exam["report_id"]), "org_code": exam["org_code"],
            "report_form_no": exam["report_form_no"], "voided": exam["voided"],
        }

    def study_state(self, reader: Reader, study_uid: str) -> str:
        """RECEIVING or COMPLETE (for transports that tell the sender)."""
        with self._db.read() as conn:
            return str(self._visible(conn, reader, study_uid)["state"])


def _refusal(r: store.Refusal, rec: dicom.InstanceRecord) -> Forbidden | Conflict:
    if r.rule == "ownership":
        msg = f"检查（StudyInstanceUID {rec.study_uid}）已由其他机构保存，不能为本机构推送"
        return Forbidden(msg, [Problem("StudyInstanceUID", "ownership", msg)])
    what = {"sop_uid": "该 SOPInstanceUID 已属于另一检查", "series_uid": "该 SeriesInstanceUID 已属于另一检查"}.get(
        r.detail, "该检查已提交完成，同一 SOPInstanceUID 的文件内容不同"
    )
    fld = {"series_uid": "SeriesInstanceUID"}.get(r.detail, "SOPInstanceUID")
    return Conflict(f"{what}：{rec.sop_uid if fld == 'SOPInstanceUID' else rec.series_uid}", [Problem(fld, "conflict", what)])


def _bounds(limit: int, offset: int, cap: int = MAX_LIMIT) -> tuple[int, int]:
    if not 0 < limit <= cap or offset < 0 or offset > 10**7:
        msg = f"limit 必须在 1–{cap} 之间，offset 不能为负"
        raise InvalidInput(msg, [Problem("limit", "range", msg)])
    return limit, offset


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

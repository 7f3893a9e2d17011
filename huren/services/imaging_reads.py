"""The image archive's reads (mixed into ``ImagingService``): queries at the patient, study, series
and instance levels, metadata, retrieval, the exam-report link — each within the access policy
(a Principal's ``image.read`` scope, or a KeyGrant's one study) and in the access log."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy.pool import QueuePool

from huren.context import Principal
from huren.domain import imaging
from huren.errors import InvalidInput, Problem
from huren.services import access
from huren.services import imaging_json as js
from huren.services.audit import AuditService
from huren.services.imaging_archive import Archive, LocalArchive, instance_ref
from huren.services.imaging_forward import NotHeld
from huren.services.imaging_types import (
    MAX_LIMIT,
    STUDY_KEYS,
    InstanceFile,
    KeyGrant,
    Once,
    Reader,
    bounds,
    not_found,
)
from huren.services.refs import Refs
from huren.store import imaging as store
from huren.store import imaging_links as links
from huren.store import sealing
from huren.store.blobs import BlobStore
from huren.store.database import Database


class ImagingReads:
    _db: Database
    _blobs: BlobStore
    archive: Archive
    _audit: AuditService
    _refs: Refs
    _once: Once

    # -- access ------------------------------------------------------------------------------------
    def _visible(self, conn: Any, reader: Reader, study_uid: str) -> dict[str, Any]:
        """The study row a reader may see (opened), else NotFound."""
        imaging.check_uid(study_uid)
        row = store.study_row(conn, study_uid)
        if row is None:
            raise NotHeld(study_uid)  # a NotFound a configured fallback platform may answer (imaging_forward)
        if row["deleted_at"] is not None:
            raise not_found()
        if isinstance(reader, KeyGrant):
            if reader.study_uid != study_uid:
                raise not_found()
        else:
            s = access.require(reader, "image.read")
            if not access.reach(conn, reader, s, str(row["org_code"])):
                raise not_found()
        return row

    def _who(self, reader: Reader) -> Principal:
        if isinstance(reader, KeyGrant):
            return Principal(reader.viewer_org or "-", f"key:{reader.key_id}", "key")
        return reader

    def _log(self, reader: Reader, action: str, study_uid: str, target: str | None = None) -> None:
        write = self._owed(reader, action, study_uid, target)
        if write is not None:
            write()

    def _owed(self, reader: Reader, action: str, study_uid: str, target: str | None = None) -> Callable[[], None] | None:
        """The access-log write a read owes (None: this reader's ``action`` on the study was logged
        within the once-window); the window is taken now, the write is the caller's to do."""
        who = self._who(reader)
        key = (f"{who.org_code}/{who.username}", study_uid, action)
        if not self._once.first(key):
            return None
        return lambda: self._once.guard(key, lambda: self._audit.record(who, action, target=target or f"study:{study_uid}", read=True))

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
        limit, offset = bounds(limit, offset)
        with self._db.read() as conn:
            orgs = None if isinstance(reader, KeyGrant) else access.org_scope(conn, reader, "image.read")
            try:
                where, match = store.study_filters(conn, dict(q), orgs)
            except ValueError:
                msg = "PatientID 不支持通配符匹配"
                raise InvalidInput(msg, [Problem("PatientID", "wildcard", msg)]) from None
            if isinstance(reader, KeyGrant):
                where.append(store.st.c.study_uid == reader.study_uid)
            return store.find_studies(conn, where, limit=limit, offset=offset, match=match)

    def _log_query(self, reader: Reader, level: str, rows: Sequence[Mapping[str, Any]]) -> None:
        uids = [str(r["study_uid"]) for r in rows]
        target = f"{level}:{uids[0]}" if len(uids) == 1 else f"{level}:{len(uids)} studies"
        who = self._who(reader)
        key = (f"{who.org_code}/{who.username}", ",".join(uids)[:2000], "image.query")
        self._once.run(key, lambda: self._audit.record(who, "image.query", target=target[:256], read=True))

    def find_patients(self, reader: Reader, q: Mapping[str, str], *, limit: int = 100) -> list[dict[str, Any]]:
        """PATIENT level (C-FIND): the studies matching ``q`` grouped by patient."""
        rows = self._find(reader, q, MAX_LIMIT, 0)
        self._log_query(reader, "patients", rows)
        return js.patients(rows, bounds(limit, 0)[0])

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
        limit, offset = bounds(limit, offset)
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
        limit, offset = bounds(limit, offset, MAX_LIMIT * 10)
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
            raise not_found("序列")
        self._log(reader, "image.metadata", study_uid)
        return js.metadata_array(study.get("patient_json"), (str(r["metadata"]) for r in rows))

    def _patient_id(self, conn: Any, row: Mapping[str, Any]) -> str | None:
        """The study's PatientID when the archive names instances with it (opened from the sealed
        row only then: a WADO read of the embedded archive does not decrypt the patient's identity)."""
        if not self.archive.needs_patient_id:
            return None
        return str(store.opened(conn, dict(row)).get("patient_id") or "")

    def _file(self, r: Mapping[str, Any], patient_id: str | None = None) -> InstanceFile:
        """``patient_id``: the study's (opened), with which an Orthanc archive names the instance."""
        sha = str(r["sha256"])
        ref = instance_ref(r, patient_id)

        def chunks() -> Iterator[bytes]:
            it = self.archive.open(ref)
            if it is None:
                raise not_found("实例")
            return it

        return InstanceFile(
            str(r["study_uid"]), str(r["series_uid"]), str(r["sop_uid"]), str(r["sop_class_uid"]), str(r["transfer_syntax"]),
            int(r["size"]), sha, int(r["frames"] or 1), chunks,
        )

    def instance(self, reader: Reader, study_uid: str, series_uid: str | None, sop_uid: str) -> InstanceFile:
        """One stored file (one indexed query), byte-exact; NotFound for what the reader may not see."""
        f, log = self.locate(reader, study_uid, series_uid, sop_uid)
        if log is not None:
            log()
        return f

    def locate(
        self, reader: Reader, study_uid: str, series_uid: str | None, sop_uid: str
    ) -> tuple[InstanceFile, Callable[[], None] | None]:
        """:meth:`instance` less its access-log write, which it hands back to be done before a byte
        of the file is sent (None: this reader's retrieve of the study is already logged within the
        once-window, the common case of a viewer reading a study's instances one by one). For a
        caller that reads where it must not wait (an event loop, :meth:`reads_without_waiting`)
        and does the write, which may wait for SQLite's one writer, in a thread."""
        imaging.check_uid(study_uid)
        imaging.check_uid(sop_uid, "SOPInstanceUID")
        if series_uid is not None:
            imaging.check_uid(series_uid, "SeriesInstanceUID")
        with self._db.read() as conn:
            r = store.instance_by_uid(conn, sop_uid)
            if r is None and store.study_row(conn, study_uid) is None:
                raise NotHeld(study_uid, "实例")
            if r is None or r["study_uid"] != study_uid or (series_uid is not None and r["series_uid"] != series_uid):
                raise not_found("实例")
            if isinstance(reader, KeyGrant):
                if reader.study_uid != study_uid:
                    raise not_found("实例")
            else:
                s = access.require(reader, "image.read")
                if not access.reach(conn, reader, s, str(r["org_code"])):
                    raise not_found("实例")
            patient_id = self._patient_id(conn, r)
        if not self.archive.exists(instance_ref(r, patient_id)):
            raise not_found("实例")
        return self._file(r, patient_id), self._owed(reader, "image.retrieve", study_uid)

    def reads_without_waiting(self) -> bool:
        """Whether :meth:`locate` and reading a file now wait on nothing but the local disk: the
        index in SQLite (a WAL reader never waits for a writer), a pooled connection idle (the
        checkout does not queue behind busy threads), the files in the local blob store (not a
        remote archive). False for PostgreSQL or the Orthanc archive (a network round trip each)."""
        if not self._db.is_sqlite or not isinstance(self.archive, LocalArchive):
            return False
        pool = self._db.engine.pool
        return not isinstance(pool, QueuePool) or pool.checkedin() > 0

    def instances_of(self, reader: Reader, study_uid: str, series_uid: str | None = None) -> list[InstanceFile]:
        if series_uid is not None:
            imaging.check_uid(series_uid, "SeriesInstanceUID")
        with self._db.read() as conn:
            study = self._visible(conn, reader, study_uid)
            rows = store.instances(conn, int(study["id"]), series_uid)
            patient_id = self._patient_id(conn, study)
        if series_uid is not None and not rows:
            raise not_found("序列")
        self._log(reader, "image.retrieve", study_uid)
        return [self._file(r, patient_id) for r in rows]

    # -- the exam report link ------------------------------------------------------------------------
    def study_for_exam(self, reader: Reader, org_code: str, report_form_no: str) -> str | None:
        """The study UID behind an exam report (its ``study_instance_uid``, else a held study with
        its 检查号 as accession number); None when there is none."""
        with self._db.read() as conn:
            if isinstance(reader, Principal):
                access.check_org(conn, reader, "image.read", org_code)
            uid = links.study_for_exam(conn, org_code, report_form_no)
        if isinstance(reader, KeyGrant) and uid != reader.study_uid:
            return None
        return uid

    def exam_for_study(self, reader: Reader, study_uid: str) -> dict[str, Any] | None:
        """The exam report behind a study, or None: {"ref", "org_code", "org_name", "report_form_no",
        "voided", "report_title", "class_name", "image_descr", "conclusion", "is_abnormal",
        "authenticator_dtime", "performer_dtime", "exam_items"} (the film page shows the report; no
        patient identity in it)."""
        with self._db.read() as conn:
            study = self._visible(conn, reader, study_uid)
            exam = links.exam_for_study(conn, study)
        if exam is None:
            return None
        rid = exam.pop("report_id")
        return {"ref": self._refs.report("exam", rid), **exam}

    def study_state(self, reader: Reader, study_uid: str) -> str:
        """RECEIVING or COMPLETE (for transports that tell the sender)."""
        with self._db.read() as conn:
            return str(self._visible(conn, reader, study_uid)["state"])

    def uid_tree(self, reader: Reader, study_uid: str | None = None) -> dict[str, Any]:
        """The UIDs of a study (XC-E10): {"study_instance_uid", "series": [{"series_instance_uid",
        "modality", "sop_instance_uids": [...]}]}; a KeyGrant's own study when none is given."""
        uid = study_uid or (reader.study_uid if isinstance(reader, KeyGrant) else "")
        with self._db.read() as conn:
            study = self._visible(conn, reader, uid)
            series = store.series_of(conn, int(study["id"]), {})
            rows = store.instances(conn, int(study["id"]))
        self._log(reader, "image.query", uid)
        by: dict[str, list[str]] = {}
        for r in rows:
            by.setdefault(str(r["series_uid"]), []).append(str(r["sop_uid"]))
        return {
            "study_instance_uid": uid,
            "series": [
                {"series_instance_uid": s["series_uid"], "modality": s["modality"], "sop_instance_uids": by.get(s["series_uid"], [])}
                for s in series
            ],
        }

    def patient_exams(self, principal: Principal, id_type_code: str, id_no: str) -> list[dict[str, Any]]:
        """YB-4.4.3.2: the patient's exams with images at other institutions (the bubble alert):
        [{"org_code", "report_form_no", "ref", "class_name", "report_title", "performer_dtime",
        "study_instance_uid", "study_date", "modalities"}], newest first; one logged read."""
        access.require(principal, "image.read")
        with self._db.read() as conn:
            orgs = access.org_scope(conn, principal, "image.read")
            bidx = sealing.blind_id(sealing.cipher(conn), id_no)
            rows = links.exams_with_images(conn, id_type_code, bidx, exclude_org=principal.org_code)
        rows = [r for r in rows if access.in_scope(orgs, str(r["org_code"]))]
        self._audit.record(principal, "image.exams", id_type_code=id_type_code, id_no=id_no, target=f"exams:{len(rows)}")
        return [
            {
                "org_code": r["org_code"], "report_form_no": r["report_form_no"], "ref": self._refs.report("exam", int(r["id"])),
                "class_name": r["class_name"], "report_title": r["report_title"], "performer_dtime": r["performer_dtime"],
                "study_instance_uid": r["study_uid"], "study_date": r["study_date"],
                "modalities": [m for m in str(r["modalities"]).split(",") if m],
            }
            for r in rows
        ]

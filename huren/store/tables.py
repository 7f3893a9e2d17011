"""SQLAlchemy Core tables. Report tables carry every field of the seed 002 tables, same names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.types import TypeEngine

from huren.domain import kinds
from huren.domain.fields import (
    EXAM_SUBITEM,
    EXAMMASTER,
    LAB_EXAM_REPORT,
    LAB_SUBITEM,
    LABMASTER,
    SEHR_ACCEPT_RECORD,
    SEHR_QUOTE_RECORD,
    Field,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: Auto-increment 64-bit ids (SQLite needs INTEGER for its rowid alias).
Id = BigInteger().with_variant(Integer, "sqlite")

#: A sealed text column (huren.crypto.aead.FieldCipher.seal_text) of a value up to 128 characters:
#: "enc1:" + base64url of 34 + up to 512 bytes = at most 733 characters.
SEALED_LEN = 768


def _type(f: Field) -> TypeEngine[Any]:
    if f.kind == "dt":
        return DateTime()
    if f.kind == "date":
        return Date()
    if f.kind == "num":
        return BigInteger() if f.size > 9 else Integer()
    return String(f.size) if f.size <= 512 else Text()


def _columns(spec: Sequence[Field], skip: Sequence[str] = (), sealed: Sequence[str] = ()) -> list[Column[Any]]:
    """The columns of a seed table; those in ``sealed`` hold sealed text (huren.store.sealing), and
    a sealed ``id_no`` is followed by ``id_no_bidx``, its blind index."""
    out: list[Column[Any]] = []
    for f in spec:
        if f.name in skip:
            continue
        out.append(Column(f.name, String(SEALED_LEN) if f.name in sealed else _type(f), nullable=not f.required))
        if f.name == "id_no" and f.name in sealed:
            out.append(Column("id_no_bidx", String(32)))
    return out


#: the patient identity of a report, sealed at rest (huren.store.sealing)
REPORT_SEALED = ("id_no", "name", "card_no")


def _report_meta() -> list[Column[Any]]:
    return [
        Column("pdf_sha256", String(64)),
        Column("pdf_size", Integer),
        Column("version", Integer, nullable=False, default=1),
        Column("voided", Boolean, nullable=False, default=False),
        Column("voided_at", DateTime),
        Column("voided_by", String(128)),
        Column("received_at", DateTime, nullable=False),
        Column("updated_at", DateTime, nullable=False),
    ]


org = Table(
    "org",
    metadata,
    Column("code", String(128), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("region_code", String(12), nullable=False),
    Column("level", Integer, nullable=False),
    Column("grade", String(8), nullable=False, default=""),
    Column("platform", String(64), nullable=False, default=""),
    Column("created_at", DateTime, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False, server_default=false()),
    Index(None, "region_code"),
)

credential = Table(
    "credential",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("org_code", String(128), ForeignKey("org.code"), nullable=False),
    Column("username", String(128), nullable=False),
    Column("password_hash", String(256), nullable=False),
    Column("role", String(32), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False, server_default=false()),
    #: carried in tokens and sessions; bumped when the user or institution is disabled or
    #: enabled, or the password changes, so what was issued before is refused on use
    Column("cred_version", Integer, nullable=False, default=1, server_default="1"),
    Column("updated_at", DateTime),
    UniqueConstraint("org_code", "username"),
)

#: Failed logins per key ("a:<org>/<user>" for an account, "ip:<address>" for a client address).
login_failure = Table(
    "login_failure",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("first_at", BigInteger, nullable=False),  # epoch seconds: the counting window's start
    Column("last_at", BigInteger, nullable=False),  # epoch seconds
    Column("locked_until", BigInteger, nullable=False),  # epoch seconds; 0 when not locked
    Index(None, "last_at"),
)

#: Page sessions ended by logout, kept until they would have expired anyway.
revoked_session = Table(
    "revoked_session",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),  # epoch seconds
    Index(None, "expires_at"),
)

lab_report = Table(
    "lab_report",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    *_columns(LABMASTER, sealed=REPORT_SEALED),
    *_report_meta(),
    UniqueConstraint("org_code", "report_form_no", "patient_id", "event_type", "event_no"),
    Index(None, "id_type_code", "id_no_bidx", "authenticator_dtime"),
    Index(None, "org_code", "authenticator_dtime"),
)

lab_item = Table(
    "lab_item",
    metadata,
    Column("report_id", Id, ForeignKey("lab_report.id", ondelete="CASCADE"), primary_key=True),
    *[
        c if c.name != "serial_no" else Column("serial_no", BigInteger, primary_key=True)
        for c in _columns(LAB_SUBITEM)
    ],
)

exam_report = Table(
    "exam_report",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    *_columns(EXAMMASTER, sealed=REPORT_SEALED),
    *_report_meta(),
    UniqueConstraint("org_code", "report_form_no", "patient_id", "event_type", "event_no"),
    Index(None, "id_type_code", "id_no_bidx", "authenticator_dtime"),
    Index(None, "org_code", "authenticator_dtime"),
)

#: the exam report behind a study (issue 12): by its study instance UID, else by 检查号 (accession number)
Index("ix_exam_report_study_instance_uid", exam_report.c.study_instance_uid)
Index("ix_exam_report_org_code_pacs_id", exam_report.c.org_code, exam_report.c.pacs_id)

exam_item = Table(
    "exam_item",
    metadata,
    Column("report_id", Id, ForeignKey("exam_report.id", ondelete="CASCADE"), primary_key=True),
    *[
        c if c.name != "exam_item_code" else Column("exam_item_code", String(128), primary_key=True)
        for c in _columns(EXAM_SUBITEM)
    ],
)

report_history = Table(
    "report_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),
    Column("report_id", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("snapshot", Text, nullable=False),  # sealed (huren.store.sealing) JSON: {"master": {...}, "items": [...]}
    Column("replaced_at", DateTime, nullable=False),
    Column("replaced_by", String(128), nullable=False),
    Index(None, "kind", "report_id"),
)

daily_count = Table(
    "daily_count",
    metadata,
    *[
        Column(c.name, c.type, primary_key=c.name in ("org_code", "date_t", "dept_code"), nullable=c.nullable)
        for c in _columns(LAB_EXAM_REPORT)
    ],
    Column("received_at", DateTime, nullable=False),
    Column("uploaded_by", String(128), nullable=False),
)

rejected_submission = Table(
    "rejected_submission",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("org_code", String(128), nullable=False),
    Column("username", String(128), nullable=False),
    Column("kind", String(16), nullable=False),  # lab | exam | daily | void_lab | void_exam | pdf
    Column("channel", String(16), nullable=False),  # rest | soap | gateway
    Column("report_key", String(700)),
    Column("problems", Text, nullable=False),  # sealed (huren.store.sealing) JSON list of {field, rule, message}
    Column("payload_sha256", String(64)),
    Column("payload_size", Integer, nullable=False),
    Column("received_at", DateTime, nullable=False),
    Column("seen_at", DateTime),  # when the institution's own account first opened it in its open items (0008)
    Index(None, "org_code", "received_at"),
    Index(None, "org_code", "kind", "report_key"),
)

access_log = Table(
    "access_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("org_code", String(128), nullable=False),
    Column("username", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("id_type_code", String(2)),
    Column("id_no", String(SEALED_LEN)),  # sealed (huren.store.audit): "enc1:" + base64url envelope
    Column("id_no_bidx", String(32)),  # its blind index: lookups by patient
    Column("target", String(256)),
    Column("remote_addr", String(64)),
    Index(None, "id_type_code", "id_no_bidx", "at"),
    Index(None, "org_code", "at"),
)

# -- recognition (issue #3) ---------------------------------------------------------------

#: Standard item catalog (XC-P2/P6): what is recognizable, for how long, from which institutions.
catalog_item = Table(
    "catalog_item",
    metadata,
    Column("kind", String(8), primary_key=True),  # lab (sub-item) | exam (item)
    Column("code", String(128), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("unit", String(256), nullable=False, default=""),
    Column("recognizable", Boolean, nullable=False, default=True),
    Column("validity_days", Integer, nullable=False),
    Column("min_level", Integer, nullable=False, default=2),
    Column("region_scope", String(512), nullable=False, default=""),  # division prefixes, comma-separated; "" = all
    Column("source_note", Text, nullable=False, default=""),
    Column("fee", Numeric(12, 2)),  # optional 收费标准 per item, yuan (0008): the cost-avoided estimate
    Column("updated_at", DateTime, nullable=False),
)

#: Per-institution local → standard code mapping (BJ-1.3/1.4 dictionary maintenance).
code_map = Table(
    "code_map",
    metadata,
    Column("org_code", String(128), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("local_code", String(128), primary_key=True),
    Column("local_name", String(256), nullable=False, default=""),
    Column("std_code", String(128), nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index(None, "kind", "std_code"),
)

#: Directory master data uploaded by hospitals (HZ-1/2/3, XC-L1, XC-L4).
dept = Table(
    "dept",
    metadata,
    Column("org_code", String(128), primary_key=True),
    Column("dept_code", String(128), primary_key=True),
    Column("dept_name", String(128), nullable=False),
    Column("dept_std_code", String(128), nullable=False),
    Column("dept_std_name", String(128), nullable=False),
    Column("campus", String(128), nullable=False, default=""),
    Column("active", Boolean, nullable=False, default=True),
    Column("updated_at", DateTime, nullable=False),
)

staff = Table(
    "staff",
    metadata,
    Column("org_code", String(128), primary_key=True),
    Column("staff_code", String(128), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("dept_code", String(128), nullable=False, default=""),
    Column("title", String(64), nullable=False, default=""),
    Column("licence_no", String(64), nullable=False, default=""),
    Column("active", Boolean, nullable=False, default=True),
    Column("updated_at", DateTime, nullable=False),
)

patient = Table(
    "patient",
    metadata,
    Column("org_code", String(128), primary_key=True),
    Column("patient_id", String(128), primary_key=True),
    Column("id_type_code", String(2), nullable=False),
    # id_no, name, card_no, phone: sealed (huren.store.masterdata); id_no_bidx: the ID number's blind index
    Column("id_no", String(SEALED_LEN), nullable=False),
    Column("id_no_bidx", String(32)),
    Column("name", String(SEALED_LEN), nullable=False),
    Column("sex_code", String(8), nullable=False),
    Column("birth_date", Date),
    Column("card_no", String(SEALED_LEN), nullable=False, default=""),
    Column("phone", String(SEALED_LEN), nullable=False, default=""),
    Column("registered_at", DateTime),
    Column("updated_at", DateTime, nullable=False),
    Index(None, "id_type_code", "id_no_bidx"),
)

device = Table(
    "device",
    metadata,
    Column("org_code", String(128), primary_key=True),
    Column("device_code", String(128), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("model", String(128), nullable=False, default=""),
    Column("manufacturer", String(128), nullable=False, default=""),
    Column("dept_code", String(128), nullable=False, default=""),
    Column("active", Boolean, nullable=False, default=True),
    Column("updated_at", DateTime, nullable=False),
)

qc_record = Table(
    "qc_record",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("org_code", String(128), nullable=False),
    Column("device_code", String(128), nullable=False),
    Column("item_code", String(128), nullable=False),
    Column("item_name", String(128), nullable=False, default=""),
    Column("qc_date", Date, nullable=False),
    Column("qc_level", String(32), nullable=False, default=""),
    Column("target_value", String(64), nullable=False, default=""),
    Column("measured_value", String(64), nullable=False),
    Column("in_control", Boolean, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("org_code", "device_code", "item_code", "qc_date", "qc_level"),
)

#: sehr_accept_record: a doctor's accept (1) / reject (2, with reason) of a prior result.
accept_record = Table(
    "accept_record",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("org_code", String(128), nullable=False),  # the deciding institution (the caller)
    *_columns(SEHR_ACCEPT_RECORD, sealed=("id_no",)),
    Column("report_kind", String(8), nullable=False),
    Column("report_id", BigInteger),  # the prior report it refers to, when found
    Column("received_at", DateTime, nullable=False),
    Index(None, "hr_org_code", "hr_report_form_no"),
    Index(None, "org_code", "record_time"),
    Index(None, "id_type_code", "id_no_bidx", "new_event_no"),
    # one decision per institution, visit, prior item, moment and verdict: a resent upload is not doubled
    UniqueConstraint(
        "org_code", "new_event_no", "hr_org_code", "hr_report_form_no", "code", "id_type_code", "id_no_bidx", "record_time",
        "is_accept", name="uq_accept_record_visit_item",
    ),
)

#: sehr_quote_record: a prior result cited into the medical record.
quote_record = Table(
    "quote_record",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("org_code", String(128), nullable=False),
    *_columns(SEHR_QUOTE_RECORD, sealed=("id_no",)),
    Column("report_kind", String(8), nullable=False),
    Column("report_id", BigInteger),
    Column("received_at", DateTime, nullable=False),
    Index(None, "hr_org_code", "hr_report_form_no"),
    Index(None, "report_kind", "report_id"),
    Index(None, "org_code", "record_time"),
    UniqueConstraint(
        "org_code", "new_event_no", "hr_org_code", "hr_report_form_no", "code", "id_type_code", "id_no_bidx", "record_time",
        name="uq_quote_record_visit_item",
    ),
)

#: Reminders shown to doctors and reports viewed (XC-P4): by the platform when it answers a
#: recognition query, and uploaded by hospitals for what their own screens showed.
reminder_log = Table(
    "reminder_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("action", String(16), nullable=False),  # reminder | view
    Column("source", String(16), nullable=False),  # platform | hospital
    Column("org_code", String(128), nullable=False),
    Column("dept_code", String(128), nullable=False, default=""),
    Column("dept_std_code", String(128), nullable=False, default=""),
    Column("doc_code", String(128), nullable=False, default=""),
    Column("doc_name", String(128), nullable=False, default=""),
    Column("id_type_code", String(2)),
    Column("id_no", String(SEALED_LEN)),  # sealed (huren.store.sealing)
    Column("id_no_bidx", String(32)),  # its blind index
    Column("event_no", String(128), nullable=False, default=""),
    Column("kind", String(8), nullable=False, default=""),  # lab | exam | "" (both)
    Column("item_codes", Text, nullable=False, default=""),  # comma-separated standard codes
    Column("ordered", Integer, nullable=False, default=0),
    Column("recognizable", Integer, nullable=False, default=0),
    Column("report_kind", String(8)),
    Column("report_id", BigInteger),
    Index(None, "org_code", "at"),
    Index(None, "id_type_code", "id_no_bidx", "at"),
)

#: kind name → its (report, item) tables, as the kind's descriptor names them
REPORT_TABLES: dict[str, tuple[Table, Table]] = {k.name: (metadata.tables[k.report_table], metadata.tables[k.item_table]) for k in kinds.ALL}

# -- signed REST transport (issue #4, BJ-1.3/1.4) ----------------------------------------------

#: An institution's registered SM2 public key and its transport policy (docs/signed-transport.md).
org_key = Table(
    "org_key",
    metadata,
    Column("org_code", String(128), ForeignKey("org.code"), primary_key=True),
    Column("public_key_hex", String(130), nullable=False),  # uncompressed 04‖x‖y
    Column("require_signature", Boolean, nullable=False, default=False),
    Column("require_encryption", Boolean, nullable=False, default=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

#: Nonces of signed requests, kept until their timestamp leaves the replay window.
used_nonce = Table(
    "used_nonce",
    metadata,
    Column("org_code", String(128), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("expires_at", DateTime, nullable=False),
    Index(None, "expires_at"),
)

# -- imaging (issue 12) ---------------------------------------------------------------------------
#: UIDs are at most 64 characters (PS3.5 §9.1); DICOM short strings at most 64 (LO) / 16 (SH, CS)
UID_LEN = 64

#: A study held for one institution. The patient's identity (PatientName, PatientID,
#: PatientBirthDate and the whole group 0010 as DICOM JSON) is sealed (huren.store.sealing,
#: context ``org_code|study_uid``); ``patient_id_bidx`` / ``patient_name_bidx`` are blind indexes
#: for exact matches. Counts and modalities are kept up to date at ingest, so QIDO reads one row.
image_study = Table(
    "image_study",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("study_uid", String(UID_LEN), nullable=False, unique=True),
    Column("org_code", String(128), nullable=False),
    Column("state", String(16), nullable=False),  # receiving | complete (huren.domain.imaging)
    Column("patient_name", String(SEALED_LEN)),
    Column("patient_name_bidx", String(32)),
    Column("patient_id", String(SEALED_LEN)),
    Column("patient_id_bidx", String(32)),
    Column("patient_birth_date", String(SEALED_LEN)),
    Column("patient_json", Text),  # sealed DICOM JSON of group 0010, merged into served metadata
    Column("patient_sex", String(16), nullable=False, default=""),
    Column("study_date", String(8), nullable=False, default=""),
    Column("study_time", String(16), nullable=False, default=""),
    Column("accession_number", String(64), nullable=False, default=""),
    Column("study_id", String(16), nullable=False, default=""),
    Column("study_description", String(256), nullable=False, default=""),
    Column("referring_physician", String(256), nullable=False, default=""),
    Column("institution_name", String(256), nullable=False, default=""),
    Column("modalities", String(128), nullable=False, default=""),  # backslash-joined, sorted
    Column("series_count", Integer, nullable=False, default=0),
    Column("instance_count", Integer, nullable=False, default=0),
    Column("charset", String(64), nullable=False, default=""),  # the SpecificCharacterSet as received
    Column("sender", String(256), nullable=False, default=""),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("committed_at", DateTime),
    Column("deleted_at", DateTime),  # YB-4.5: hidden (not erased)
    Index(None, "org_code", "accession_number"),
    Index(None, "accession_number"),
    Index(None, "patient_id_bidx"),
    Index(None, "patient_name_bidx"),
    Index(None, "study_date"),
    Index(None, "org_code", "study_date"),
)

image_series = Table(
    "image_series",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("study_id", Id, ForeignKey("image_study.id", ondelete="CASCADE"), nullable=False),
    Column("series_uid", String(UID_LEN), nullable=False, unique=True),
    Column("modality", String(16), nullable=False, default=""),
    Column("series_number", Integer),
    Column("series_description", String(256), nullable=False, default=""),
    Column("body_part", String(64), nullable=False, default=""),
    Column("series_date", String(8), nullable=False, default=""),
    Column("series_time", String(16), nullable=False, default=""),
    Column("instance_count", Integer, nullable=False, default=0),
    Index(None, "study_id"),
)

#: One stored file: its bytes as received are the blob ``sha256`` (huren.store.blobs, streamed
#: format); ``metadata`` is its DICOM JSON without group 0010 and without bulk data values.
image_instance = Table(
    "image_instance",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("study_id", Id, ForeignKey("image_study.id", ondelete="CASCADE"), nullable=False),
    Column("series_id", Id, ForeignKey("image_series.id", ondelete="CASCADE"), nullable=False),
    Column("sop_uid", String(UID_LEN), nullable=False, unique=True),
    Column("sop_class_uid", String(UID_LEN), nullable=False),
    Column("transfer_syntax", String(UID_LEN), nullable=False),
    Column("instance_number", Integer),
    Column("rows", Integer),
    Column("columns", Integer),
    Column("frames", Integer, nullable=False, default=1),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("metadata", Text, nullable=False),
    Column("received_at", DateTime, nullable=False),
    Column("deleted_at", DateTime),
    Index(None, "study_id", "series_id"),
    Index(None, "series_id", "instance_number"),
)

#: viewer / download / film keys: only the SHA-256 of a key is kept
image_key = Table(
    "image_key",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("study_uid", String(UID_LEN), nullable=False),
    Column("org_code", String(128), nullable=False),  # the study's institution
    Column("viewer_org", String(128)),  # the institution it was issued to (None: a patient's film link)
    Column("issued_by", String(256), nullable=False),
    Column("issued_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
    Column("revoked_by", String(256)),
    Column("uses", Integer, nullable=False, default=0),
    Column("last_used_at", DateTime),
    Index(None, "study_uid"),
)

#: AE titles: who may push (a calling AE → its institution) and where C-MOVE may send (host, port)
dicom_node = Table(
    "dicom_node",
    metadata,
    Column("ae_title", String(16), primary_key=True),
    Column("org_code", String(128), nullable=False),
    Column("hosts", String(1024)),  # NULL: any host; else comma-separated addresses
    Column("port", Integer),
    Column("purpose", String(8), nullable=False, default="sender"),  # sender | pacs | both
    Column("created_at", DateTime, nullable=False),
    Index(None, "org_code"),
)

#: YB-4.5 image-deletion notices (patientName sealed, context ``org_code``)
image_deletion = Table(
    "image_deletion",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("org_code", String(128), nullable=False),  # hospitalId
    Column("accession_no", String(64), nullable=False),
    Column("patient_name", String(SEALED_LEN)),
    Column("operate_doctor_name", String(128), nullable=False, default=""),
    Column("operate_datetime", String(32), nullable=False, default=""),
    Column("study_uids", Text, nullable=False, default=""),
    Column("instances", Integer, nullable=False, default=0),
    Column("actor", String(256), nullable=False),
    Column("received_at", DateTime, nullable=False),
    Index(None, "org_code", "accession_no"),
)

"""SQLAlchemy Core tables. Report tables carry every field of the seed 002 tables, same names.

Here: institutions and accounts, the reports, the rejected submissions, the access log and the
signed transport's tables. The recognition tables (``huren.store.tables_recognition``) and the
imaging tables (``huren.store.tables_imaging``) live in their own modules on the same
``MetaData`` (``huren.store.tables_base``) and are re-exported here: ``from huren.store.tables
import X`` names every table, and ``metadata`` (what Alembic compares) holds them all."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from huren.domain import kinds
from huren.domain.fields import (
    EXAM_SUBITEM,
    EXAMMASTER,
    LAB_EXAM_REPORT,
    LAB_SUBITEM,
    LABMASTER,
)
from huren.store.tables_base import PLATFORM, SEALED_LEN, Id, _columns, metadata
from huren.store.tables_federation import federation_peer, feed_change, platform
from huren.store.tables_imaging import (
    UID_LEN,
    dicom_node,
    image_deletion,
    image_instance,
    image_key,
    image_series,
    image_study,
)
from huren.store.tables_recognition import (
    accept_record,
    catalog_item,
    code_map,
    dept,
    device,
    patient,
    qc_record,
    quote_record,
    reminder_log,
    staff,
)

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
        PLATFORM(),
    ]


def _item_received_at() -> Column[Any]:
    """An item's copy of its report's ``received_at`` (migration 0011): on PostgreSQL the partition
    key the items share with their report (huren.store.partitions); written by the store on both."""
    return Column("received_at", DateTime)


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
    Index(None, "platform"),
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
    _item_received_at(),
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
    _item_received_at(),
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
    PLATFORM(),
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
    PLATFORM(),
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
    PLATFORM(),
    Index(None, "id_type_code", "id_no_bidx", "at"),
    Index(None, "org_code", "at"),
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

#: every name other modules import from here (the recognition and imaging tables live in
#: huren.store.tables_recognition / tables_imaging; the shared MetaData in tables_base)
__all__ = [
    "PLATFORM",
    "REPORT_SEALED",
    "REPORT_TABLES",
    "SEALED_LEN",
    "UID_LEN",
    "Id",
    "accept_record",
    "access_log",
    "catalog_item",
    "code_map",
    "credential",
    "daily_count",
    "dept",
    "device",
    "dicom_node",
    "exam_item",
    "exam_report",
    "federation_peer",
    "feed_change",
    "image_deletion",
    "image_instance",
    "image_key",
    "image_series",
    "image_study",
    "lab_item",
    "lab_report",
    "login_failure",
    "metadata",
    "org",
    "org_key",
    "patient",
    "platform",
    "qc_record",
    "quote_record",
    "rejected_submission",
    "reminder_log",
    "report_history",
    "revoked_session",
    "staff",
    "used_nonce",
]

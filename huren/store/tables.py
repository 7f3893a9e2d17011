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
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeEngine

from huren.domain.fields import EXAM_SUBITEM, EXAMMASTER, LAB_EXAM_REPORT, LAB_SUBITEM, LABMASTER, Field

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


def _type(f: Field) -> TypeEngine[Any]:
    if f.kind == "dt":
        return DateTime()
    if f.kind == "date":
        return Date()
    if f.kind == "num":
        return BigInteger() if f.size > 9 else Integer()
    return String(f.size) if f.size <= 512 else Text()


def _columns(spec: Sequence[Field], skip: Sequence[str] = ()) -> list[Column[Any]]:
    return [Column(f.name, _type(f), nullable=not f.required) for f in spec if f.name not in skip]


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
    UniqueConstraint("org_code", "username"),
)

lab_report = Table(
    "lab_report",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    *_columns(LABMASTER),
    *_report_meta(),
    UniqueConstraint("org_code", "report_form_no", "patient_id", "event_type", "event_no"),
    Index(None, "id_type_code", "id_no", "authenticator_dtime"),
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
    *_columns(EXAMMASTER),
    *_report_meta(),
    UniqueConstraint("org_code", "report_form_no", "patient_id", "event_type", "event_no"),
    Index(None, "id_type_code", "id_no", "authenticator_dtime"),
    Index(None, "org_code", "authenticator_dtime"),
)

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
    Column("snapshot", Text, nullable=False),  # JSON: {"master": {...}, "items": [...]}
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
    Column("problems", Text, nullable=False),  # JSON list of {field, rule, message}
    Column("payload_sha256", String(64)),
    Column("payload_size", Integer, nullable=False),
    Column("received_at", DateTime, nullable=False),
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
    Column("id_no", String(128)),
    Column("target", String(256)),
    Column("remote_addr", String(64)),
    Index(None, "id_type_code", "id_no", "at"),
    Index(None, "org_code", "at"),
)

REPORT_TABLES = {"lab": (lab_report, lab_item), "exam": (exam_report, exam_item)}

"""SQLAlchemy Core tables of recognition (issue #3): the standard item catalog, code maps, the
directory master data hospitals upload, quality-control records, doctors' accept / quote records and
reminders. Re-exported by ``huren.store.tables``."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from huren.domain.fields import (
    SEHR_ACCEPT_RECORD,
    SEHR_QUOTE_RECORD,
)
from huren.store.tables_base import PLATFORM, SEALED_LEN, Id, _columns, metadata

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
    PLATFORM(),
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
    PLATFORM(),
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
    PLATFORM(),
    Index(None, "org_code", "at"),
    Index(None, "id_type_code", "id_no_bidx", "at"),
)

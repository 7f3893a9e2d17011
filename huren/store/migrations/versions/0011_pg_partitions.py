"""monthly partitions of the report, item and log tables on PostgreSQL (issue 13 §6)

PostgreSQL (declarative partitioning, RANGE by month; huren.store.partitions runs them):

- ``lab_report`` / ``exam_report`` by ``received_at`` — set once at a report's first registration
  and never changed by a resubmission or a void (huren.store.reports), so a row never moves
  between partitions. Their items (``lab_item`` / ``exam_item``) gain ``received_at``, a copy of
  their report's, and are partitioned by it: a month's items live beside their reports, and the
  foreign key items → report becomes (report_id, received_at) → (id, received_at), ON DELETE and
  ON UPDATE CASCADE: the store never changes ``received_at``, but an operator's correction of it
  (or a test's) moves the report and its items to the right month together (PostgreSQL ≥ 15
  runs a cross-partition UPDATE of a referenced row as an update, not a delete).
- ``access_log`` and ``reminder_log`` by ``at``, ``report_history`` by ``replaced_at``,
  ``rejected_submission`` by ``received_at``.
- Primary keys gain the partition key: (id, received_at) and so on. Ids still come from each
  table's one sequence (kept, now owned by the partitioned table), so an id stays unique.
- One partition per month holding data, the current and the next month, and a DEFAULT
  partition, so an insert never fails for a month without one (``huren db partitions ensure``
  and ``huren serve``'s start create the coming months ahead and move rows out of the DEFAULT).
- The business key of a report (org_code, report_form_no, patient_id, event_type, event_no)
  cannot stay a UNIQUE constraint of a partitioned table (it would have to contain
  ``received_at``). It moves to an unpartitioned ``lab_report_key`` / ``exam_report_key``
  (primary key: the business key; report_id, received_at), filled by an AFTER INSERT trigger on
  the report table for every writer (the store, COPY in benches): a second report with a key
  already held by another id raises unique_violation, as the UNIQUE constraint did, across all
  partitions and under any number of concurrent ``huren serve`` workers (the key table's
  unique index serialises them). The store's single-report path claims the key first
  (``INSERT … ON CONFLICT DO NOTHING RETURNING`` on the key table, huren.store.partitions.claim_key)
  and so keeps its "insert, or learn the key exists" in one statement; the trigger then finds
  its own claim. A DELETE of a report removes its key; a non-unique index on the business key
  stays on the report table for the store's lookups.
- ``report_lead`` (kind, lead): how far after its report's receipt an authentication time may
  lie, at least 1 day (clock skew between hospital and platform), raised by the same trigger
  (on INSERT and on UPDATE OF authenticator_dtime: a resubmission re-authenticated months later
  keeps its first ``received_at``). The recognition queries (``authenticator_dtime >= since``) add
  ``received_at >= since - lead`` — true of every stored row by construction, so the answers do
  not change, and PostgreSQL prunes the partitions before that month while the query runs.

The conversion runs in the migration's one transaction: rename the old table, create the
partitioned one (same columns, defaults and indexes), copy the rows, fill the key tables and the
leads, drop the old tables. The downgrade converts back (rows of partitions detached for
archiving are not brought back; those tables are left as they are).

SQLite (the embedded default) is not partitioned: it only gains the items' ``received_at``
(filled from the reports), so one table definition and one store serve both.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import os
from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Connection, text

from huren.store import partitions as P

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ITEMS = {"lab_item": "lab_report", "exam_item": "exam_report"}
#: the primary keys and the business-key constraints as they were before (for the downgrade)
OLD_PK = {"lab_item": ("report_id", "serial_no"), "exam_item": ("report_id", "exam_item_code")}
OLD_UQ = {
    "lab_report": "uq_lab_report_org_code_report_form_no_patient_id_event__4672",
    "exam_report": "uq_exam_report_org_code_report_form_no_patient_id_event_195b",
}
KEYS = ", ".join(P.KEY_COLUMNS)


def _now() -> datetime:
    """The platform's local time (HUREN_TIMEZONE, as huren.context.Clock): which month is current."""
    return datetime.now(ZoneInfo(os.environ.get("HUREN_TIMEZONE") or "Asia/Shanghai")).replace(tzinfo=None)


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        for item, report in ITEMS.items():
            op.add_column(item, sa.Column("received_at", sa.DateTime(), nullable=True))
            conn.execute(text(f"UPDATE {item} SET received_at = (SELECT received_at FROM {report} WHERE {report}.id = {item}.report_id)"))
        return
    months: set[date] = {P.month_of(_now()), P.add_months(P.month_of(_now()), 1)}
    for table, key in P.PARTITIONED.items():
        lo, hi = conn.execute(text(f'SELECT min("{key}"), max("{key}") FROM "{table}"')).one() if table not in ITEMS else (None, None)
        if lo is not None and hi is not None:
            m = P.month_of(lo)
            while m <= P.month_of(hi):
                months.add(m)
                m = P.add_months(m, 1)
    indexes = {t: _take_apart(conn, t) for t in (*ITEMS, *(t for t in P.PARTITIONED if t not in ITEMS))}
    for table, key in P.PARTITIONED.items():
        extra = ', "received_at" timestamp without time zone NOT NULL' if table in ITEMS else ""
        conn.execute(text(
            f'CREATE TABLE "{table}" (LIKE "{table}_old" INCLUDING DEFAULTS{extra}) PARTITION BY RANGE ("{key}")'
        ))
        pk = (*OLD_PK.get(table, ("id",)), key)
        conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "pk_{table}" PRIMARY KEY ({", ".join(pk)})'))
        for ddl in indexes[table]:
            conn.execute(text(ddl))
        conn.execute(text(f'CREATE TABLE "{P.default_name(table)}" PARTITION OF "{table}" DEFAULT'))
    P.ensure(conn, sorted(months))
    for table in P.PARTITIONED:
        if table in ITEMS:
            report = ITEMS[table]
            conn.execute(text(
                f'INSERT INTO "{table}" SELECT i.*, r.received_at FROM "{table}_old" i JOIN "{report}_old" r ON r.id = i.report_id'
            ))
        else:
            conn.execute(text(f'INSERT INTO "{table}" SELECT * FROM "{table}_old"'))
        _move_sequence(conn, table)
    for item, report in ITEMS.items():
        conn.execute(text(f'DROP TABLE "{item}_old"'))
        conn.execute(text(f'DROP TABLE "{report}_old"'))
        conn.execute(text(
            f'ALTER TABLE "{item}" ADD CONSTRAINT "fk_{item}_report_id_{report}" FOREIGN KEY (report_id, received_at) '
            f'REFERENCES "{report}" (id, received_at) ON DELETE CASCADE ON UPDATE CASCADE'
        ))
    for table in P.PARTITIONED:
        if table not in ITEMS and table not in P.REPORT_KINDS:
            conn.execute(text(f'DROP TABLE "{table}_old"'))
    conn.execute(text("CREATE TABLE report_lead (kind varchar(8) PRIMARY KEY, lead interval NOT NULL)"))
    for report, kind in P.REPORT_KINDS.items():
        _key_table(conn, report, kind)


def _take_apart(conn: Connection, table: str) -> list[str]:
    """Rename ``table`` to ``<table>_old`` and free the names of its constraints and indexes;
    returns the CREATE INDEX statements of its (non-unique) indexes, for the partitioned table."""
    rows = conn.execute(text(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisprimary, i.indisunique, "
        "ARRAY(SELECT a.attname FROM unnest(i.indkey) k JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k) "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = CAST(:t AS regclass)"
    ), {"t": table}).all()
    ddl: list[str] = []
    for name, definition, primary, unique, cols in rows:
        if primary:
            continue
        if unique and tuple(cols) == P.KEY_COLUMNS:
            ddl.append(f'CREATE INDEX "ix_{table}_business_key" ON "{table}" ({KEYS})')
        elif unique:
            raise RuntimeError(f"0011: unexpected unique index {name} on {table}")
        else:
            ddl.append(definition)
    for fk in conn.execute(text(
        "SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) AND contype = 'f' AND conparentid = 0"
    ), {"t": table}).scalars():
        conn.execute(text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{fk}"'))
    for name, *_rest in rows:
        constraint = conn.execute(text(
            "SELECT conname FROM pg_constraint WHERE conindid = (SELECT oid FROM pg_class WHERE relname = :n)"
        ), {"n": name}).scalar()
        if constraint is not None:
            conn.execute(text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{constraint}"'))
        else:
            conn.execute(text(f'DROP INDEX "{name}"'))
    conn.execute(text(f'ALTER TABLE "{table}" RENAME TO "{table}_old"'))
    return ddl


def _move_sequence(conn: Connection, table: str) -> None:
    """The id sequence of ``<table>_old`` becomes the new table's (its DEFAULT already names it)."""
    if table in ITEMS:
        return
    seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": f"{table}_old"}).scalar()
    if seq is not None:
        conn.execute(text(f'ALTER SEQUENCE {seq} OWNED BY "{table}".id'))


def _key_table(conn: Connection, report: str, kind: str) -> None:
    new = ", ".join(f"NEW.{c}" for c in P.KEY_COLUMNS)
    match = " AND ".join(f"{c} = NEW.{c}" for c in P.KEY_COLUMNS)
    old_match = " AND ".join(f"{c} = OLD.{c}" for c in P.KEY_COLUMNS)
    conn.execute(text(
        f"CREATE TABLE {report}_key AS SELECT {KEYS}, id AS report_id, received_at FROM {report} WITH NO DATA"
    ))
    conn.execute(text(f"ALTER TABLE {report}_key ALTER report_id SET NOT NULL, ALTER received_at SET NOT NULL"))
    conn.execute(text(f"INSERT INTO {report}_key SELECT {KEYS}, id, received_at FROM {report}"))
    conn.execute(text(f"ALTER TABLE {report}_key ADD CONSTRAINT pk_{report}_key PRIMARY KEY ({KEYS})"))
    conn.execute(text(f"CREATE INDEX ix_{report}_key_received_at ON {report}_key (received_at)"))
    conn.execute(text(
        f"INSERT INTO report_lead SELECT '{kind}', GREATEST(INTERVAL '{P.MIN_LEAD.days} day', "
        f"COALESCE(max(authenticator_dtime - received_at), INTERVAL '0')) FROM {report}"
    ))
    conn.execute(text(f"""
CREATE FUNCTION huren_{report}_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  rid bigint;
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM {report}_key WHERE {old_match} AND report_id = OLD.id;
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' AND NEW.received_at IS DISTINCT FROM OLD.received_at THEN
    UPDATE {report}_key SET received_at = NEW.received_at WHERE {match} AND report_id = NEW.id;
  END IF;
  IF TG_OP = 'INSERT' THEN
    INSERT INTO {report}_key ({KEYS}, report_id, received_at) VALUES ({new}, NEW.id, NEW.received_at)
      ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      SELECT report_id INTO rid FROM {report}_key WHERE {match};
      IF rid IS DISTINCT FROM NEW.id THEN
        RAISE EXCEPTION 'duplicate key of {report}: (%, %, %, %, %) is report %', {new}, rid
          USING ERRCODE = 'unique_violation';
      END IF;
    END IF;
  END IF;
  IF NEW.authenticator_dtime - NEW.received_at > (SELECT lead FROM report_lead WHERE kind = '{kind}') THEN
    UPDATE report_lead SET lead = NEW.authenticator_dtime - NEW.received_at
      WHERE kind = '{kind}' AND lead < NEW.authenticator_dtime - NEW.received_at;
  END IF;
  RETURN NULL;
END $$"""))
    conn.execute(text(
        f"CREATE TRIGGER {report}_key AFTER INSERT OR DELETE OR UPDATE OF authenticator_dtime, received_at ON {report} "
        f"FOR EACH ROW EXECUTE FUNCTION huren_{report}_row()"
    ))


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        for item in ITEMS:
            with op.batch_alter_table(item) as t:
                t.drop_column("received_at")
        return
    for report in P.REPORT_KINDS:
        conn.execute(text(f"DROP TRIGGER {report}_key ON {report}"))
        conn.execute(text(f"DROP FUNCTION huren_{report}_row()"))
        conn.execute(text(f"DROP TABLE {report}_key"))
    conn.execute(text("DROP TABLE report_lead"))
    indexes = {t: _take_apart(conn, t) for t in (*ITEMS, *(t for t in P.PARTITIONED if t not in ITEMS))}
    for table in P.PARTITIONED:
        conn.execute(text(f'CREATE TABLE "{table}" (LIKE "{table}_old" INCLUDING DEFAULTS)'))
        conn.execute(text(f'INSERT INTO "{table}" SELECT * FROM "{table}_old"'))
        if table in ITEMS:
            conn.execute(text(f'ALTER TABLE "{table}" DROP COLUMN received_at'))
        conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "pk_{table}" PRIMARY KEY ({", ".join(OLD_PK.get(table, ("id",)))})'))
        for ddl in indexes[table]:
            if f"ix_{table}_business_key " in ddl:
                conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{OLD_UQ[table]}" UNIQUE ({KEYS})'))
            else:
                conn.execute(text(ddl.replace(" ON ONLY ", " ON ")))
        _move_sequence(conn, table)
    for table in (*ITEMS, *(t for t in P.PARTITIONED if t not in ITEMS)):
        conn.execute(text(f'DROP TABLE "{table}_old" CASCADE'))  # with its partitions
    for item, report in ITEMS.items():
        conn.execute(text(
            f'ALTER TABLE "{item}" ADD CONSTRAINT "fk_{item}_report_id_{report}" FOREIGN KEY (report_id) '
            f'REFERENCES "{report}" (id) ON DELETE CASCADE'
        ))

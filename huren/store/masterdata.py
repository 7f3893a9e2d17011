"""Directory master data: departments, staff, patients, lab instruments, lab QC records.

A patient's identity is sealed at rest (issue 10 §1.8, ``huren.crypto.aead``): ``id_no``, ``name``,
``card_no`` and ``phone`` hold ``enc1:…`` envelopes bound to their column and to the row
(``org_code|patient_id``, so a value moved to another patient does not open), and ``id_no_bidx``
the ID number's keyed blind index, which a lookup by ID number (``equals={"id_no": …}``) compares.
:func:`upsert` seals, :func:`rows` opens; a value that does not open is
:class:`huren.errors.NotConfigured`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Table, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ColumnElement

from huren.crypto.aead import FieldCipher
from huren.store import sealing
from huren.store.tables import dept, device, patient, qc_record, staff

TABLES: dict[str, Table] = {"dept": dept, "staff": staff, "patient": patient, "device": device, "qc_record": qc_record}
#: the sealed columns of each node (huren.store.sealing holds the one list)
SEALED: dict[str, tuple[str, ...]] = {"patient": sealing.SPECS["patient"].columns}
ID_DOMAIN = sealing.ID_DOMAIN


def seal_row(fields: FieldCipher, node: str, org_code: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as stored: its sealed columns sealed, the ID number's blind index added."""
    if node not in SEALED:
        return dict(row)
    return sealing.seal_row(fields, node, {**row, "org_code": org_code})


def open_row(fields: FieldCipher, node: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row with its sealed columns opened (NotConfigured when one does not open)."""
    if node not in SEALED:
        return dict(row)
    return sealing.open_row(fields, node, row)


def upsert(
    conn: Connection, node: str, org_code: str, key: Sequence[str], rows: Sequence[Mapping[str, Any]], *, now: datetime,
    fields: FieldCipher | None = None,
) -> None:
    """Insert each row, or replace the stored row of the same ``(org_code, *key)``; the sealed
    columns of a node (SEALED) are sealed with ``fields`` (required for such a node)."""
    if not rows:
        return
    table = TABLES[node]
    if node in SEALED:
        if fields is None:
            raise ValueError(f"{node}: sealed columns need the field cipher")
        rows = [seal_row(fields, node, org_code, r) for r in rows]
    values = [{k: v for k, v in r.items() if k != "org_code"} | {"org_code": org_code, "updated_at": now} for r in rows]
    ins = sqlite_insert(table) if conn.dialect.name == "sqlite" else pg_insert(table)
    index = ["org_code", *key]
    stmt = ins.on_conflict_do_update(
        index_elements=index,
        set_={c: ins.excluded[c] for c in values[0] if c not in index},
    )
    for chunk in _chunks(values, 500):
        conn.execute(stmt, list(chunk))


def _where(
    table: Table, org_codes: Sequence[str] | None, equals: Mapping[str, Any], day_from: date | None, day_to: date | None,
    fields: FieldCipher | None,
) -> list[ColumnElement[bool]]:
    cond: list[ColumnElement[bool]] = []
    if org_codes is not None:
        cond.append(table.c.org_code.in_(list(org_codes)))
    sealed = SEALED.get(table.name, ())
    for name, value in equals.items():
        if name == "id_no" and name in sealed:
            if fields is None:
                raise ValueError(f"{table.name}: a lookup by ID number needs the field cipher")
            cond.append(table.c.id_no_bidx == fields.blind(str(value), ID_DOMAIN))
        elif name in sealed:
            raise ValueError(f"{table.name}.{name} is sealed: it cannot be compared in SQL")
        else:
            cond.append(table.c[name] == value)
    if day_from is not None:
        cond.append(table.c.qc_date >= day_from)
    if day_to is not None:
        cond.append(table.c.qc_date <= day_to)
    return cond


def rows(
    conn: Connection,
    node: str,
    key: Sequence[str],
    org_codes: Sequence[str] | None,
    *,
    equals: Mapping[str, Any] | None = None,
    day_from: date | None = None,
    day_to: date | None = None,
    limit: int = 100,
    offset: int = 0,
    fields: FieldCipher | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """One page of an institution's (or, with ``org_codes`` None, every institution's) rows, in
    key order, and how many rows match in all. ``day_from``/``day_to`` (inclusive) apply to QC dates.
    Sealed columns are opened with ``fields`` (required for such a node); ``equals["id_no"]``
    compares the blind index."""
    table = TABLES[node]
    cond = _where(table, org_codes, equals or {}, day_from, day_to, fields)
    total = conn.execute(select(func.count()).select_from(table).where(*cond)).scalar_one()
    order = [table.c.org_code, *(table.c[k] for k in key)]
    q = select(table).where(*cond).order_by(*order).limit(limit).offset(offset)
    found = [dict(r) for r in conn.execute(q).mappings()]
    if node in SEALED:
        if fields is None:
            raise ValueError(f"{node}: sealed columns need the field cipher")
        found = [open_row(fields, node, r) for r in found]
    return found, int(total)


def seal_existing(conn: Connection, fields: FieldCipher, *, batch: int = 500) -> int:
    """Seal the patients stored before their identity was sealed (the 0006 migration); returns how
    many rows were converted. Rows already sealed are left as they are."""
    return sealing.seal_existing(conn, fields, "patient", batch=batch)


def known_devices(conn: Connection, org_code: str, codes: Iterable[str]) -> set[str]:
    """Which of ``codes`` are registered instruments of the institution."""
    wanted = sorted(set(codes))
    found: set[str] = set()
    for chunk in _chunks(wanted, 500):
        q = select(device.c.device_code).where(device.c.org_code == org_code, device.c.device_code.in_(list(chunk)))
        found.update(conn.execute(q).scalars())
    return found


def dept_std(conn: Connection, org_code: str, dept_code: str) -> tuple[str, str] | None:
    """The standard department (STD_DEPT code, name) of an institution's department."""
    r = conn.execute(
        select(dept.c.dept_std_code, dept.c.dept_std_name).where(dept.c.org_code == org_code, dept.c.dept_code == dept_code)
    ).first()
    return (r.dept_std_code, r.dept_std_name) if r else None


def _chunks(seq: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]

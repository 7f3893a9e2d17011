"""Standard item catalog and per-institution code mapping."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from huren.store.tables import REPORT_TABLES, catalog_item, code_map


def upsert_items(conn: Connection, rows: Sequence[dict[str, Any]], *, now: datetime) -> None:
    """Insert or replace catalog rows (key: kind + code)."""
    for chunk in _chunks(rows, 500):
        for kind in {r["kind"] for r in chunk}:
            codes = [r["code"] for r in chunk if r["kind"] == kind]
            conn.execute(delete(catalog_item).where(catalog_item.c.kind == kind, catalog_item.c.code.in_(codes)))
        conn.execute(insert(catalog_item), [r | {"updated_at": now} for r in chunk])


def update_item(conn: Connection, kind: str, code: str, values: dict[str, Any], *, now: datetime) -> None:
    """Change some columns of one catalog item."""
    conn.execute(
        update(catalog_item).where(catalog_item.c.kind == kind, catalog_item.c.code == code).values(**values, updated_at=now)
    )


def items(conn: Connection, kind: str | None = None, codes: Iterable[str] | None = None) -> list[dict[str, Any]]:
    q = select(catalog_item)
    if kind is not None:
        q = q.where(catalog_item.c.kind == kind)
    if codes is not None:
        q = q.where(catalog_item.c.code.in_(list(codes)))
    return [dict(r) for r in conn.execute(q.order_by(catalog_item.c.kind, catalog_item.c.code)).mappings()]


def upsert_mappings(conn: Connection, org_code: str, rows: Sequence[dict[str, Any]], *, now: datetime) -> None:
    """Insert or replace one institution's local → standard mappings (key: kind + local_code)."""
    for r in rows:
        conn.execute(
            delete(code_map).where(
                code_map.c.org_code == org_code, code_map.c.kind == r["kind"], code_map.c.local_code == r["local_code"]
            )
        )
    if rows:
        conn.execute(insert(code_map), [r | {"org_code": org_code, "updated_at": now} for r in rows])


def mappings(conn: Connection, org_code: str, kind: str | None = None) -> list[dict[str, Any]]:
    q = select(code_map).where(code_map.c.org_code == org_code)
    if kind is not None:
        q = q.where(code_map.c.kind == kind)
    return [dict(r) for r in conn.execute(q.order_by(code_map.c.kind, code_map.c.local_code)).mappings()]


def resolve(conn: Connection, org_code: str, kind: str, local_codes: Iterable[str]) -> dict[str, str]:
    """local code → standard code for the codes this institution has mapped."""
    codes = list(local_codes)
    if not codes:
        return {}
    rows = conn.execute(
        select(code_map.c.local_code, code_map.c.std_code).where(
            code_map.c.org_code == org_code, code_map.c.kind == kind, code_map.c.local_code.in_(codes)
        )
    )
    return {r.local_code: r.std_code for r in rows}


def _chunks(seq: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


# -- added for the catalog service -------------------------------------------------------------


def existing_keys(conn: Connection, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (kind, code) pairs among ``keys`` already in the catalog."""
    found: set[tuple[str, str]] = set()
    by_kind: dict[str, list[str]] = {}
    for kind, code in keys:
        by_kind.setdefault(kind, []).append(code)
    for kind, codes in by_kind.items():
        found.update((kind, c) for c in known_codes(conn, kind, codes))
    return found


def known_codes(conn: Connection, kind: str, codes: Iterable[str]) -> set[str]:
    """The codes among ``codes`` that the catalog holds for ``kind``."""
    found: set[str] = set()
    for chunk in _chunks(sorted(set(codes)), 500):
        q = select(catalog_item.c.code).where(catalog_item.c.kind == kind, catalog_item.c.code.in_(list(chunk)))
        found.update(conn.execute(q).scalars())
    return found


def count_items(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(catalog_item)).scalar_one())


def item_names(conn: Connection, kind: str | None = None) -> dict[tuple[str, str], str]:
    """(kind, code) → standard name."""
    q = select(catalog_item.c.kind, catalog_item.c.code, catalog_item.c.name)
    if kind is not None:
        q = q.where(catalog_item.c.kind == kind)
    return {(r.kind, r.code): r.name for r in conn.execute(q)}


#: kind → (the item field holding its code, the item field naming it as the institution does)
_ITEM_CODE = {"lab": ("class_code", "class_local_name"), "exam": ("exam_item_code", "exam_item_name")}


def unmapped_codes(conn: Connection, org_code: str, kind: str, *, limit: int = 1000) -> list[dict[str, Any]]:
    """The item codes ``org_code``'s stored reports (not voided) of ``kind`` carry that are neither
    in the catalog nor mapped by the institution — what its gateway or upload sent without a
    mapping (the gateway uploads an unmapped code as it is): code, a name it came with, how many
    items and the latest receipt. Most frequent first."""
    master_t, item_t = REPORT_TABLES[kind]
    code_col, name_col = (item_t.c[c] for c in _ITEM_CODE[kind])
    in_catalog = select(catalog_item.c.code).where(catalog_item.c.kind == kind, catalog_item.c.code == code_col)
    mapped = select(code_map.c.local_code).where(
        code_map.c.org_code == org_code, code_map.c.kind == kind, code_map.c.local_code == code_col
    )
    n = func.count().label("n")
    q = (
        select(code_col.label("code"), func.max(name_col).label("name"), n, func.max(master_t.c.received_at).label("last_at"))
        .select_from(item_t.join(master_t, master_t.c.id == item_t.c.report_id))
        .where(master_t.c.org_code == org_code, master_t.c.voided.is_(False), code_col != "",
               ~in_catalog.exists(), ~mapped.exists())
        .group_by(code_col)
        .order_by(n.desc(), code_col)
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(q).mappings()]

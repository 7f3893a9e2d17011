"""huren.store.bulk: many rows past SQLAlchemy (SQLite executemany, PostgreSQL COPY) must store
exactly what ``conn.execute(insert(table), rows)`` stores, and a refusal must surface as the same
huren error, with nothing of the batch kept."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)

from huren.errors import Conflict, InvalidInput
from huren.store import bulk
from huren.store.database import make_engine

meta = MetaData()


def _table(name: str) -> Table:
    return Table(
        name,
        meta,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("code", String(32), nullable=False, unique=True),
        Column("at", DateTime),
        Column("day", Date),
        Column("flag", Boolean, nullable=False, default=True),
        Column("n", BigInteger),
        Column("note", Text),
        Column("blob", LargeBinary),
    )


via_bulk, via_core = _table("bulk_rows_a"), _table("bulk_rows_b")

#: values COPY's text format must escape (tab, newline, backslash, \N, quotes) and others
ROWS = [
    {"code": "a", "at": datetime(2026, 12, 1, 8, 15, 42, 123456), "day": date(2026, 2, 28), "flag": False, "n": 2**62,
     "note": "制表\t换行\n回车\r反斜杠\\ \\N 'q' \"qq\" ,;|", "blob": b"\x00\x01\\\n\xff"},
    {"code": "b", "at": None, "day": None, "flag": True, "n": None, "note": None, "blob": None},
    {"code": "c", "at": datetime(2026, 1, 1), "day": date(2026, 1, 1), "flag": True, "n": -5, "note": "", "blob": b""},
]


@pytest.fixture
def engine(database_url: str):  # type: ignore[no-untyped-def]
    eng = make_engine(database_url)
    meta.drop_all(eng)
    meta.create_all(eng)
    yield eng
    meta.drop_all(eng)
    eng.dispose()


def _stored(engine, table: Table) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(table.c.code)).mappings()]


def test_rows_stored_as_core_stores_them(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        bulk.insert_rows(conn, via_bulk, ROWS)
        conn.execute(insert(via_core), ROWS)
    got, want = _stored(engine, via_bulk), _stored(engine, via_core)
    assert [{k: v for k, v in r.items() if k != "id"} for r in got] == [{k: v for k, v in r.items() if k != "id"} for r in want]
    assert got[0]["note"] == ROWS[0]["note"] and got[0]["blob"] == ROWS[0]["blob"] and got[0]["n"] == 2**62
    assert len({r["id"] for r in got}) == 3  # ids from the table's own sequence


def test_defaulted_column_left_out_gets_its_default(engine) -> None:  # type: ignore[no-untyped-def]
    rows = [{"code": "x", "note": None}, {"code": "y", "note": "备注"}]  # no "flag": Core fills its default
    with engine.begin() as conn:
        bulk.insert_rows(conn, via_bulk, rows)
        conn.execute(insert(via_core), rows)
    assert [(r["code"], r["flag"], r["note"]) for r in _stored(engine, via_bulk)] == [("x", True, None), ("y", True, "备注")]
    assert [(r["code"], r["flag"]) for r in _stored(engine, via_core)] == [("x", True), ("y", True)]


def test_unique_violation_is_a_conflict_and_nothing_is_kept(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        bulk.insert_rows(conn, via_bulk, [ROWS[1]])
    with pytest.raises(Conflict), engine.begin() as conn:
        bulk.insert_rows(conn, via_bulk, [ROWS[0], ROWS[1], ROWS[2]])
    assert [r["code"] for r in _stored(engine, via_bulk)] == ["b"]
    with engine.begin() as conn:  # the pool's connection is usable again
        bulk.insert_rows(conn, via_bulk, [ROWS[0]])
    assert [r["code"] for r in _stored(engine, via_bulk)] == ["a", "b"]


def test_number_out_of_range_names_the_column(engine) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as err, engine.begin() as conn:
        bulk.insert_rows(conn, via_bulk, [{"code": "big", "n": 2**63}])
    assert err.value.problems[0].field == "n"
    assert _stored(engine, via_bulk) == []

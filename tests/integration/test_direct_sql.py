"""huren.store.direct: statements run on the DBAPI cursor must give exactly what SQLAlchemy Core
gives — same values, same Python types, same defaults — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
)

from huren.crypto.aead import FieldCipher
from huren.store import audit as audit_store
from huren.store import recognition as rstore
from huren.store import sealing
from huren.store.database import make_engine
from huren.store.direct import DirectInsert, DirectSelect
from huren.store.tables import access_log, reminder_log

meta = MetaData()
sample = Table(
    "direct_sample",
    meta,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("name", String(32), nullable=False),
    Column("flag", Boolean, nullable=False, default=True),
    Column("level", Integer, nullable=False, default=2),
    Column("note", String(32)),
)


@pytest.fixture
def engine(database_url: str):  # type: ignore[no-untyped-def]
    eng = make_engine(database_url)
    meta.create_all(eng)
    yield eng
    eng.dispose()


def test_insert_applies_defaults_and_converts_types(engine) -> None:  # type: ignore[no-untyped-def]
    at = datetime(2026, 11, 30, 8, 15, 42, 123456)
    ins = DirectInsert(sample, engine.dialect)
    with engine.begin() as conn:
        ins.run(conn, [{"at": at, "name": "甲"}, {"at": at, "name": "乙", "flag": False, "level": 3, "note": "备注"}])
        ins.run(conn, [])  # nothing to write is not an error
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(sample).order_by(sample.c.id)).mappings()]
    assert [(r["at"], r["name"], r["flag"], r["level"], r["note"]) for r in rows] == [
        (at, "甲", True, 2, None),
        (at, "乙", False, 3, "备注"),
    ]


def test_insert_is_part_of_the_callers_transaction(engine) -> None:  # type: ignore[no-untyped-def]
    ins = DirectInsert(sample, engine.dialect)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        ins.run(conn, [{"at": datetime(2026, 1, 1), "name": "x"}])
        raise RuntimeError("roll back")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(sample)).scalar() == 0


def test_insert_refuses_a_table_with_a_callable_default() -> None:
    t = Table("direct_callable", MetaData(), Column("id", Integer, primary_key=True), Column("at", DateTime, default=datetime.now))
    with pytest.raises(ValueError, match=r"direct_callable\.at"):
        DirectInsert(t, make_engine("sqlite://").dialect)


def test_select_matches_core(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(
            insert(sample),
            [{"at": datetime(2026, 11, d, 9, 0, 0, 5), "name": f"n{d}", "flag": d % 2 == 0, "note": None if d % 3 else "三"} for d in range(1, 11)],
        )
    q = (
        select(sample.c.id, sample.c.at, sample.c.flag, sample.c.note, sample.c.name.label("label_name"))
        .where(sample.c.at >= bindparam("since", type_=sample.c.at.type), sample.c.name.in_([bindparam("a"), bindparam("b"), bindparam("c")]))
        .order_by(sample.c.at.desc())
    )
    params = {"since": datetime(2026, 11, 4), "a": "n3", "b": "n6", "c": "n9"}
    direct = DirectSelect(q, engine.dialect)
    with engine.connect() as conn:
        got = direct.all(conn, params)
        want = [dict(r) for r in conn.execute(q, params).mappings()]
    assert got == want
    assert [r["label_name"] for r in got] == ["n9", "n6"]
    assert all(type(a) is type(b) for g, w in zip(got, want, strict=True) for a, b in zip(g.values(), w.values(), strict=True))


def test_hot_paths_write_rows_core_can_read(engine) -> None:  # type: ignore[no-untyped-def]
    """The reminder and access logs written on the cursor read back through Core unchanged."""
    at = datetime(2026, 11, 30, 10, 0, 0)
    sealing.bind(engine, FieldCipher({1: b"k" * 32}, 1, b"i" * 32))  # the reminder log seals its ID numbers
    with engine.begin() as conn:
        rstore.log_reminders(conn, [{"at": at, "action": "reminder", "source": "platform", "org_code": "A", "ordered": 5}])
        audit_store.log_access_many(conn, [{"at": at, "org_code": "A", "username": "u", "action": "x", "id_no": "1"}])
    with engine.connect() as conn:
        rem = dict(conn.execute(select(reminder_log)).mappings().one())
        acc = dict(conn.execute(select(access_log)).mappings().one())
    assert (rem["at"], rem["ordered"], rem["recognizable"], rem["doc_code"], rem["report_id"]) == (at, 5, 0, "", None)
    assert (acc["at"], acc["username"], acc["target"]) == (at, "u", None)

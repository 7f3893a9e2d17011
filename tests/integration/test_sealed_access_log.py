"""The access log holds patients' ID numbers sealed at rest (issue 10 §1.8): no ID number in clear
in the rows or the database's bytes, lookups by patient through the blind index, the 0006 migration
converts rows written before it, and a value that does not open fails closed (NotConfigured).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url

from huren.bootstrap import build
from huren.context import Clock, Principal
from huren.domain import idcard
from huren.errors import NotConfigured
from huren.services.container import Container
from huren.settings import Settings
from huren.store import audit as audit_store
from huren.store import migrate
from huren.store.database import make_engine
from huren.store.keys import DATA_FILE, Keyring
from huren.store.tables import access_log
from tests.conftest import ORG_A, ORG_B, SECRET, Api

#: an ID number no other table of these tests holds (so the database's bytes can be searched)
SECRET_ID = idcard.make("650103", date(1981, 7, 9), 457)
WHO = Principal(ORG_B[0], ORG_B[4], remote_addr="10.0.0.9")


def _raw_rows(c: Container) -> list[str]:
    """The access-log rows as the database holds them, each as text."""
    with c.db.read() as conn:
        if c.db.is_sqlite:
            return [repr(tuple(r)) for r in conn.exec_driver_sql("SELECT * FROM access_log")]
        return [str(v) for (v,) in conn.exec_driver_sql("SELECT access_log::text FROM access_log")]


def _file_bytes(c: Container) -> bytes:
    with c.db.write() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    path = Path(make_url(c.settings.db_url).database or "")
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def test_no_id_number_in_clear_and_lookups_answer(container: Container) -> None:
    container.audit.record(WHO, "query_lab", id_type_code="01", id_no=SECRET_ID, target="3 reports")
    container.audit.record_many(WHO, "list_lab_by_org", [("01", SECRET_ID, "lab:1"), ("01", "X" + SECRET_ID[1:], "lab:2")])
    container.audit.record(WHO, "transport_key_get", target=ORG_A[0])
    raw = _raw_rows(container)
    assert len(raw) >= 4
    assert not any(SECRET_ID in r or SECRET_ID[:-1] in r for r in raw), raw
    assert all("enc1:" in r for r in raw if "lab" in r)
    if container.db.is_sqlite:
        data = _file_bytes(container)
        assert SECRET_ID.encode() not in data and SECRET_ID[:-1].encode() not in data
    mine = container.audit.history(id_type_code="01", id_no=SECRET_ID)
    assert [(r["action"], r["id_no"], r["target"]) for r in mine] == [
        ("list_lab_by_org", SECRET_ID, "lab:1"),
        ("query_lab", SECRET_ID, "3 reports"),
    ]
    # the blind index normalises as the ID number checks do (full-width digits, lower-case x)
    assert len(container.audit.history(id_no="　" + SECRET_ID.lower().translate({ord("1"): "１"}))) == 2
    assert container.audit.history(id_type_code="02", id_no=SECRET_ID) == []
    with container.db.read() as conn:
        every = audit_store.list_access(conn, container.keys.fields(), limit=10)
    assert {r["id_no"] for r in every} >= {SECRET_ID, None}


def test_the_exists_path_logs_sealed(api_a: Api, api_b: Api, container: Container) -> None:
    from tests import samples
    from tests.integration.access_world import EXAM_CODE, LAB_CODE, PATIENT, VISIT

    api_a.post("/api/v1/lab-reports", samples.lab())
    r = api_b.post("/api/v1/recognition/exists", PATIENT | VISIT | {"check": [EXAM_CODE], "lab": [LAB_CODE]})
    assert r.status_code == 200, r.text
    with container.db.read() as conn:
        stored = conn.execute(select(access_log.c.id_no, access_log.c.id_no_bidx).where(access_log.c.id_no.is_not(None))).all()
    assert stored and all(v.startswith("enc1:") and len(b) == 32 for v, b in stored)
    assert all(samples.ID_NO not in r for r in _raw_rows(container))


def test_a_moved_value_or_another_key_fails_closed(container: Container, tmp_path: Path) -> None:
    container.audit.record(WHO, "query_lab", id_type_code="01", id_no=SECRET_ID, target="t")
    fields = container.keys.fields()
    # a value sealed for another column, put here: does not open
    moved = fields.seal_text(SECRET_ID, "patient", "id_no")
    with container.db.write() as conn:
        conn.execute(update(access_log).where(access_log.c.id_no.is_not(None)).values(id_no=moved))
    with pytest.raises(NotConfigured, match="数据密钥"):
        container.audit.history(id_no=SECRET_ID)
    # another installation's data keys: the rows are not found (another index) nor opened
    container.audit.record(WHO, "query_lab", id_type_code="01", id_no=SECRET_ID, target="t")
    other = Keyring(tmp_path / "other-keys").fields()
    with container.db.read() as conn:
        assert audit_store.list_access(conn, other, id_no=SECRET_ID) == []
        with pytest.raises(NotConfigured):
            audit_store.list_access(conn, other, limit=10)


# -- the 0006 migration ------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    dbs = request.getfixturevalue("pg_databases")
    name = "huren_m6_" + uuid.uuid4().hex  # unique: tests of like names run at once on other workers
    with dbs.admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield dbs.url(name)
    finally:
        with dbs.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _old_rows(url: str) -> None:
    """A database at 0005 with access-log rows as 0005 wrote them (ID numbers in clear)."""
    engine = make_engine(url)
    migrate.upgrade(engine, "0005")
    at = datetime(2026, 11, 1, 9, 0)
    with engine.begin() as conn:
        for i, n in enumerate((SECRET_ID, None, SECRET_ID, "65010219670201999X")):
            conn.execute(
                text("INSERT INTO access_log (at, org_code, username, action, id_type_code, id_no, target) "
                     "VALUES (:at, :o, :u, :a, :t, :n, :g)"),
                {"at": at, "o": ORG_B[0], "u": "lis", "a": f"old_{i}", "t": "01" if n else None, "n": n, "g": f"lab:{i}"},
            )
    engine.dispose()


def test_the_migration_seals_rows_written_before_it(empty_url: str, tmp_path: Path) -> None:
    _old_rows(empty_url)
    c = build(Settings(data_dir=tmp_path / "d", database_url=empty_url, secret_key=SECRET), clock=Clock(), upgrade=True)
    try:
        raw = _raw_rows(c)
        assert len(raw) == 4 and not any(SECRET_ID in r or "999X" in r for r in raw), raw
        assert [r["action"] for r in c.audit.history(id_type_code="01", id_no=SECRET_ID)] == ["old_2", "old_0"]
        assert [r["action"] for r in c.audit.history(id_no="65010219670201999x")] == ["old_3"]
        assert len(c.audit.history()) == 4
        with c.db.read() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == migrate.head()
        # run again (a second upgrade): nothing is sealed twice
        migrate.upgrade(c.db.engine, fields=c.keys.fields())
        assert len(c.audit.history(id_no=SECRET_ID)) == 2
    finally:
        c.close()
    keys = json.loads((tmp_path / "d" / "keys" / DATA_FILE).read_text())
    assert keys["active"] == 1


def test_the_migration_without_the_data_keys_refuses_clear_rows(empty_url: str, tmp_path: Path) -> None:
    _old_rows(empty_url)
    engine = make_engine(empty_url)
    try:
        with pytest.raises(RuntimeError, match="huren db upgrade"):
            migrate.upgrade(engine)
        with engine.connect() as conn:  # nothing half done: still at 0005
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0005"
        fields = Keyring(tmp_path / "keys").fields()
        migrate.upgrade(engine, fields=fields)  # with the keys it goes through
        with engine.connect() as conn:
            assert len(audit_store.list_access(conn, fields, id_no=SECRET_ID)) == 2
    finally:
        engine.dispose()

"""Master-data patients are stored with their identity sealed (issue 10 §1.8): no ID number, name,
card number or phone in clear in the rows or the database's bytes, reads answer in clear, lookups
by ID number through the blind index, the 0006 migration converts patients stored before it, and a
value that does not open (moved to another patient, another data key) fails closed.
"""

from __future__ import annotations

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
from huren.store import masterdata as md_store
from huren.store import migrate
from huren.store.database import make_engine
from huren.store.keys import Keyring
from huren.store.tables import patient
from tests.conftest import ORG_A, SECRET, Api
from tests.integration.test_sealed_access_log import empty_url  # noqa: F401 (a fixture)

ID_1 = idcard.make("650104", date(1975, 3, 14), 811)
ID_2 = idcard.make("650104", date(1990, 12, 2), 812)
NAME_1, NAME_2 = "迪丽娜尔·艾买提", "欧阳守拙"
PHONE_1, PHONE_2 = "13912345678", "18887654321"
CARD_1 = "KX-00417733"
WHO = Principal(ORG_A[0], ORG_A[4])


def _patients() -> list[dict[str, str]]:
    return [
        {"patient_id": "Q1", "id_type_code": "01", "id_no": ID_1, "name": NAME_1, "sex_code": "2",
         "birth_date": "1975-03-14", "card_no": CARD_1, "phone": PHONE_1, "registered_at": "2024-03-01 08:00:00"},
        {"patient_id": "Q2", "id_type_code": "01", "id_no": ID_2, "name": NAME_2, "sex_code": "1",
         "birth_date": "1990-12-02", "phone": PHONE_2},
    ]


CLEAR = (ID_1, ID_2, NAME_1, NAME_2, PHONE_1, PHONE_2, CARD_1)


def _raw(c: Container, table: str = "patient") -> list[str]:
    with c.db.read() as conn:
        if c.db.is_sqlite:
            return [repr(tuple(r)) for r in conn.exec_driver_sql(f"SELECT * FROM {table}")]
        return [str(v) for (v,) in conn.exec_driver_sql(f"SELECT {table}::text FROM {table}")]


def _db_bytes(c: Container) -> bytes:
    with c.db.write() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    path = Path(make_url(c.settings.db_url).database or "")
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def test_patients_are_sealed_and_read_back(api_a: Api, container: Container) -> None:
    r = api_a.post("/api/v1/directory/patients", {"patient": _patients()})
    assert r.status_code == 200, r.text
    raw = _raw(container) + _raw(container, "access_log")
    assert len(raw) >= 2
    assert not [v for v in CLEAR for row in raw if v in row]
    if container.db.is_sqlite:
        data = _db_bytes(container)
        assert not [v for v in CLEAR if v.encode() in data]
    got = api_a.get("/api/v1/directory/patients").json()["patient"]
    assert [(g["patient_id"], g["id_no"], g["name"], g["card_no"], g["phone"]) for g in got] == [
        ("Q1", ID_1, NAME_1, CARD_1, PHONE_1),
        ("Q2", ID_2, NAME_2, "", PHONE_2),
    ]
    assert "id_no_bidx" not in got[0]
    # by ID number, through the blind index (a lower-case x or full-width digits find it too)
    for asked in (ID_2, ID_2.lower(), ID_2.translate({ord(d): chr(0xFF10 + int(d)) for d in "0123456789"})):
        found = container.masterdata.read("patient", WHO, filters={"id_type_code": "01", "id_no": asked})["patient"]
        assert [f["patient_id"] for f in found] == ["Q2"], asked
    assert container.masterdata.read("patient", WHO, filters={"id_type_code": "02", "id_no": ID_2})["patient"] == []
    # the reads were logged, the ID numbers sealed there too
    assert len(container.audit.history(id_no=ID_2)) == 4
    assert not [v for v in CLEAR for row in _raw(container, "access_log") if v in row]
    # an upload replacing a patient reseals it
    again = _patients()[:1]
    again[0]["phone"] = "13700000001"
    assert api_a.post("/api/v1/directory/patients", {"patient": again}).status_code == 200
    got = api_a.get("/api/v1/directory/patients", params={"patient_id": "Q1"}).json()["patient"]
    assert got[0]["phone"] == "13700000001"
    assert not [row for row in _raw(container) if "13700000001" in row]


def test_a_value_moved_to_another_patient_fails_closed(api_a: Api, container: Container, tmp_path: Path) -> None:
    assert api_a.post("/api/v1/directory/patients", {"patient": _patients()}).status_code == 200
    with container.db.write() as conn:
        q2 = conn.execute(select(patient.c.name).where(patient.c.patient_id == "Q2")).scalar_one()
        conn.execute(update(patient).where(patient.c.patient_id == "Q1").values(name=q2))
    r = api_a.get("/api/v1/directory/patients")
    assert r.status_code == 503 and "数据密钥" in r.json()["message"] and NAME_2 not in r.text, r.text
    with pytest.raises(NotConfigured):
        container.masterdata.read("patient", WHO, filters={"patient_id": "Q1"})
    # Q2 alone still reads
    assert container.masterdata.read("patient", WHO, filters={"patient_id": "Q2"})["patient"][0]["name"] == NAME_2
    # another installation's data keys: nothing opens, nothing is found by ID number
    other = Keyring(tmp_path / "other").fields()
    with container.db.read() as conn:
        assert md_store.rows(conn, "patient", ("patient_id",), [ORG_A[0]], equals={"id_no": ID_2}, fields=other)[0] == []
        with pytest.raises(NotConfigured):
            md_store.rows(conn, "patient", ("patient_id",), [ORG_A[0]], equals={"patient_id": "Q2"}, fields=other)


def _old_patients(url: str) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine, "0005")
    now = datetime(2026, 11, 1, 9, 0)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO org (code, name, region_code, level, grade, platform, created_at) "
                 "VALUES (:c, '旧医院', '650102', 3, '甲', '', :t)"),
            {"c": ORG_A[0], "t": now},
        )
        for p in _patients():
            conn.execute(
                text("INSERT INTO patient (org_code, patient_id, id_type_code, id_no, name, sex_code, card_no, phone, updated_at) "
                     "VALUES (:o, :p, '01', :i, :n, :s, :k, :ph, :t)"),
                {"o": ORG_A[0], "p": p["patient_id"], "i": p["id_no"], "n": p["name"], "s": p["sex_code"],
                 "k": p.get("card_no", ""), "ph": p["phone"], "t": now},
            )
    engine.dispose()


def test_the_migration_seals_patients_stored_before_it(empty_url: str, tmp_path: Path) -> None:  # noqa: F811
    _old_patients(empty_url)
    c = build(Settings(data_dir=tmp_path / "d", database_url=empty_url, secret_key=SECRET), clock=Clock(), upgrade=True)
    try:
        raw = _raw(c)
        assert len(raw) == 2 and not [v for v in CLEAR for row in raw if v in row], raw
        found = c.masterdata.read("patient", WHO, filters={"id_no": ID_1})["patient"]
        assert [(f["patient_id"], f["name"], f["card_no"], f["phone"]) for f in found] == [("Q1", NAME_1, CARD_1, PHONE_1)]
    finally:
        c.close()


def test_the_migration_without_the_data_keys_refuses_patients(empty_url: str) -> None:  # noqa: F811
    _old_patients(empty_url)
    engine = make_engine(empty_url)
    try:
        with pytest.raises(RuntimeError, match="huren db upgrade"):
            migrate.upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0005"
    finally:
        engine.dispose()

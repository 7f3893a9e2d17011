"""Reports, decisions, citations, reminders, history and rejected submissions hold the patient's
identity sealed at rest (issue 10 §1.8): no ID number, name or card number in clear in the rows or
the database's bytes; the services still find and show them (recognition, patient and org report
lists, history, decision dedupe); the 0007 migration converts rows stored before it; and
``huren keys rotate-data`` re-seals every sealed column under the new key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from huren import cli
from huren.bootstrap import build
from huren.context import Clock, Principal
from huren.crypto.aead import is_sealed_text
from huren.domain import idcard
from huren.errors import NotConfigured
from huren.services.container import Container
from huren.settings import Settings
from huren.store import migrate, sealing
from huren.store.database import make_engine
from huren.store.keys import Keyring
from huren.store.tables import lab_report
from tests import samples
from tests.conftest import ORG_A, ORG_B, SECRET, Api
from tests.integration.test_api_recognition import LAB_CODE, VISIT, catalog, decision, recent_lab  # noqa: F401 (a fixture)
from tests.integration.test_sealed_access_log import empty_url  # noqa: F401 (a fixture)

NAME = "热依拉·阿不都热合曼"
CARD = "KQ-7741902"
ID_NO = samples.ID_NO
WHO_A = Principal(ORG_A[0], ORG_A[4])
WHO_B = Principal(ORG_B[0], ORG_B[4])

#: every sealed column of every table, and the values it may hold in clear
SEALED_COLUMNS = [(name, c) for name, spec in sealing.SPECS.items() for c in spec.columns]


def _lab(c: Container, **master: str) -> dict[str, Any]:
    return recent_lab(c, name=NAME, card_no=CARD, **master)


def _raw_values(c: Container) -> dict[tuple[str, str], list[Any]]:
    """The stored values of every sealed column, read without the store (as a copy of the file would be)."""
    out: dict[tuple[str, str], list[Any]] = {}
    with c.db.read() as conn:
        for table, column in SEALED_COLUMNS:
            out[(table, column)] = [v for (v,) in conn.exec_driver_sql(f"SELECT {column} FROM {table}")]
    return out


def _db_bytes(c: Container) -> bytes:
    path = Path(make_url(c.settings.db_url).database or "")
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def _everything(api_a: Api, api_b: Api, c: Container) -> dict[str, Any]:
    """A report registered and replaced (history), a decision, a citation, a reminder, a rejected upload."""
    first = _lab(c)
    r = api_a.post("/api/v1/lab-reports", first)
    assert r.status_code == 200, r.text
    again = _lab(c)
    for row in [again["labmaster"], *again["lab_subitem"]]:
        row["last_update_dtime"] = row["last_update_dtime"][:11] + "23:59:59"
    r = api_a.post("/api/v1/lab-reports", again)
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    ans = api_b.post("/api/v1/recognition/exists", {"id_type_code": "01", "id_no": ID_NO, "lab": [LAB_CODE]} | VISIT)
    assert ans.status_code == 200 and len(ans.json()["labmaster"]) == 1, ans.text
    rec = decision(LAB_CODE, "14437173", "2", "1")
    assert api_b.post("/api/v1/recognition/accept", {"sehr_accept_record": [rec]}).json()["rows"] == 1
    quote = {k: v for k, v in rec.items() if k not in ("is_accept", "reason")}
    assert api_b.post("/api/v1/recognition/quote", {"sehr_quote_record": [quote]}).status_code == 200
    bad = _lab(c, report_form_no="BAD-1", authenticator_dtime=ID_NO)  # a value that a message echoes
    assert api_a.post("/api/v1/lab-reports", bad).status_code == 422
    return r.json()


def test_no_identity_in_clear_at_rest(api_a: Api, api_b: Api, container: Container, catalog: None) -> None:  # noqa: F811
    registered = _everything(api_a, api_b, container)
    raw = _raw_values(container)
    for (table, column), values in raw.items():
        assert all(v is None or v == "" or is_sealed_text(str(v)) for v in values), (table, column, values)
    for table in ("lab_report", "report_history", "accept_record", "quote_record", "reminder_log", "rejected_submission"):
        assert any(raw[(table, c)] for c in sealing.SPECS[table].columns), table  # rows were written
    dumped = []
    with container.db.read() as conn:
        for table in sealing.SPECS:
            if container.db.is_sqlite:
                dumped += [repr(tuple(r)) for r in conn.exec_driver_sql(f"SELECT * FROM {table}")]
            else:
                dumped += [str(v) for (v,) in conn.exec_driver_sql(f"SELECT {table}::text FROM {table}")]
    assert not [row for row in dumped for v in (ID_NO, NAME, CARD) if v in row]
    if container.db.is_sqlite:
        with container.db.write() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        data = _db_bytes(container)
        assert not [v for v in (ID_NO, NAME, CARD) if v.encode() in data]
    # ... and everything reads back in clear
    reports = container.query.patient_reports("lab", "01", ID_NO, WHO_A)
    assert [(m["labmaster"]["name"], m["labmaster"]["card_no"], m["labmaster"]["id_no"]) for m in reports] == [(NAME, CARD, ID_NO)]
    assert reports == container.query.patient_reports("lab", "01", ID_NO.lower(), WHO_A)  # normalised index
    versions = api_a.get(f"/api/v1/lab-reports/{registered['report_id']}/history").json()["versions"]
    assert [v["snapshot"]["master"]["name"] for v in versions] == [NAME]
    listed = api_a.get("/api/v1/org-reports", params={"org_code": ORG_A[0], "kind": "lab"}).json()
    assert [(r["id_no"], r["name"]) for r in listed["reports"]] == [(ID_NO, NAME)], listed
    accepted = api_b.get("/api/v1/recognition/accept").json()["records"]
    assert [r["id_no"] for r in accepted] == [ID_NO]
    rejected = container.quality.rejected(WHO_A)
    assert rejected and any(ID_NO in p["message"] for p in rejected[0]["problems"])
    recent = api_b.post("/api/v1/recognition/recent", {"id_type_code": "01", "id_no": ID_NO, "days": 30}).json()["item"]
    assert recent and {i["type"] for i in recent} == {"lab"}, recent  # found by the blind index


def test_decisions_and_reminders_are_deduplicated_by_the_blind_index(
    api_a: Api, api_b: Api, container: Container, catalog: None,  # noqa: F811
) -> None:
    assert api_a.post("/api/v1/lab-reports", _lab(container)).status_code == 200
    order = {"id_type_code": "01", "id_no": ID_NO, "lab": [LAB_CODE]} | VISIT
    for asked in (ID_NO, ID_NO.lower()):  # the same visit's reminder once (found by the blind index)
        assert api_b.post("/api/v1/recognition/exists", order | {"id_no": asked}).status_code == 200
    with container.db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM reminder_log WHERE action = 'reminder'").scalar_one() == 1
    rec = decision(LAB_CODE, "14437173", "2", "1")
    assert api_b.post("/api/v1/recognition/accept", {"sehr_accept_record": [rec]}).json()["rows"] == 1
    again = api_b.post("/api/v1/recognition/accept", {"sehr_accept_record": [rec]})  # a resent upload
    assert again.status_code == 200, again.text
    with container.db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM accept_record").scalar_one() == 1
    # the visit's decision is known to the next question (found by the blind index): no new reminder
    assert api_b.post("/api/v1/recognition/exists", order).status_code == 200
    with container.db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM reminder_log WHERE action = 'reminder'").scalar_one() == 1
    decided = container.recognition.decisions.accepted_reports(WHO_B, "lab", "01", ID_NO, "5036612")
    assert len(decided) == 1


def test_a_report_under_other_keys_fails_closed(api_a: Api, container: Container, tmp_path: Path) -> None:
    assert api_a.post("/api/v1/lab-reports", _lab(container)).status_code == 200
    other = Keyring(tmp_path / "other").fields()
    with container.db.read() as conn:
        row = conn.execute(select(lab_report)).mappings().one()
        with pytest.raises(NotConfigured, match="数据密钥"):
            sealing.open_row(other, "lab_report", row)
        # a value moved to another institution's row does not open either
        moved = dict(row) | {"org_code": ORG_B[0]}
        with pytest.raises(NotConfigured):
            sealing.open_row(sealing.cipher(conn), "lab_report", moved)


# -- the 0007 migration ------------------------------------------------------------------------

OLD_ID = idcard.make("650104", date(1980, 6, 1), 317)
OLD_NAME = "阿依古丽·买买提"


def _old_rows(url: str, tmp: Path) -> None:
    """A database at 0006 holding rows as 0006 wrote them: reports, history, records, reminders,
    rejected uploads with the patient's identity in clear."""
    engine = make_engine(url)
    migrate.upgrade(engine, "0006", fields=Keyring(tmp / "d" / "keys").fields())
    now = datetime.now().replace(microsecond=0) - timedelta(days=2)
    with engine.begin() as conn:
        for code, name, region, level, grade in ((ORG_A[0], ORG_A[1], ORG_A[2], 3, "甲"), (ORG_B[0], ORG_B[1], ORG_B[2], 2, "甲")):
            conn.execute(
                text("INSERT INTO org (code, name, region_code, level, grade, platform, created_at, disabled) "
                     "VALUES (:c, :n, :r, :l, :g, '', :t, false)"),
                {"c": code, "n": name, "r": region, "l": level, "g": grade, "t": now},
            )
        lab = samples.lab()["labmaster"]
        cols = {c.name for c in lab_report.columns} - {"id", "id_no_bidx"}
        row: dict[str, Any] = {k: v for k, v in lab.items() if k in cols}
        for k in ("last_update_dtime", "effective_dtime", "author_dtime", "authenticator_dtime", "participant_dtime", "performer_dtime"):
            if row.get(k):
                row[k] = now
        row |= {"retrieve_date": now.date(), "id_no": OLD_ID, "name": OLD_NAME, "card_no": CARD, "event_type": 1,
                "data_status": 1, "version": 2, "voided": False, "received_at": now, "updated_at": now}
        names = sorted(row)
        conn.execute(text(f"INSERT INTO lab_report ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"), row)
        rid = conn.execute(text("SELECT id FROM lab_report")).scalar_one()
        snap = json.dumps({"master": {"id_no": OLD_ID, "name": OLD_NAME}, "items": []}, ensure_ascii=False)
        conn.execute(
            text("INSERT INTO report_history (kind, report_id, version, snapshot, replaced_at, replaced_by) "
                 "VALUES ('lab', :r, 1, :s, :t, 'x')"), {"r": rid, "s": snap, "t": now},
        )
        rec = {"o": ORG_B[0], "e": "V1", "h": ORG_A[0], "f": lab["report_form_no"], "c": LAB_CODE, "i": OLD_ID, "t": now}
        conn.execute(
            text("INSERT INTO accept_record (org_code, new_event_no, new_event_type, hr_org_code, hr_report_form_no, code, "
                 "id_no, id_type_code, is_accept, reason, record_time, type, dept_code, dept_name, dept_std_code, "
                 "dept_std_name, doc_code, doc_name, report_kind, report_id, received_at) VALUES "
                 "(:o, :e, '1', :h, :f, :c, :i, '01', '1', '', :t, '2', 'D', 'D', 'A50', 'D', 'X', '王医生', 'lab', :r, :t)"),
            rec | {"r": rid},
        )
        conn.execute(
            text("INSERT INTO reminder_log (at, action, source, org_code, dept_code, dept_std_code, doc_code, doc_name, "
                 "id_type_code, id_no, event_no, kind, item_codes, ordered, recognizable) "
                 "VALUES (:t, 'reminder', 'platform', :o, '', '', '', '', '01', :i, 'V1', 'lab', :c, 1, 1)"),
            {"t": now, "o": ORG_B[0], "i": OLD_ID, "c": f"lab:{LAB_CODE}"},
        )
        conn.execute(
            text("INSERT INTO rejected_submission (org_code, username, kind, channel, report_key, problems, payload_size, "
                 "received_at) VALUES (:o, 'his', 'lab', 'rest', 'k', :p, 1, :t)"),
            {"o": ORG_A[0], "p": json.dumps([{"field": "x", "rule": "r", "message": f"收到“{OLD_ID}”"}], ensure_ascii=False), "t": now},
        )
    engine.dispose()


def test_0007_seals_rows_stored_before_it(empty_url: str, tmp_path: Path) -> None:  # noqa: F811
    _old_rows(empty_url, tmp_path)
    c = build(Settings(data_dir=tmp_path / "d", database_url=empty_url, secret_key=SECRET), clock=Clock(), upgrade=True)
    try:
        raw = _raw_values(c)
        assert all(v is None or v == "" or is_sealed_text(str(v)) for vs in raw.values() for v in vs), raw
        assert raw[("lab_report", "name")] and raw[("report_history", "snapshot")] and raw[("reminder_log", "id_no")]
        [m] = c.query.patient_reports("lab", "01", OLD_ID, WHO_A)
        assert (m["labmaster"]["id_no"], m["labmaster"]["name"], m["labmaster"]["card_no"]) == (OLD_ID, OLD_NAME, CARD)
        with c.db.read() as conn:
            from huren.store import recognition as rstore

            assert rstore.visit_decisions(conn, ORG_B[0], "01", OLD_ID, "V1")
            assert rstore.visit_reminders(conn, ORG_B[0], "01", OLD_ID, "V1") == {("lab", f"lab:{LAB_CODE}")}
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == migrate.head()
        assert OLD_ID in c.quality.rejected(WHO_A)[0]["problems"][0]["message"]
        migrate.upgrade(c.db.engine, fields=c.keys.fields())  # again: nothing sealed twice
        assert c.query.patient_reports("lab", "01", OLD_ID, WHO_A)[0]["labmaster"]["name"] == OLD_NAME
    finally:
        c.close()


def test_0007_without_the_data_keys_refuses_clear_rows(empty_url: str, tmp_path: Path) -> None:  # noqa: F811
    _old_rows(empty_url, tmp_path)
    engine = make_engine(empty_url)
    try:
        with pytest.raises(RuntimeError, match="0007"):
            migrate.upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0006"
    finally:
        engine.dispose()


# -- huren keys rotate-data ----------------------------------------------------------------------


@pytest.fixture
def keep_umask() -> Iterator[None]:
    """cli.main sets the process umask to 077: the rest of the session gets its umask back."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


def test_rotate_data_reseals_every_sealed_column(
    api_a: Api, api_b: Api, container: Container, catalog: None, capsys: pytest.CaptureFixture[str],  # noqa: F811
    keep_umask: None,
) -> None:
    _everything(api_a, api_b, container)
    patients = {"patient": [{"patient_id": "P1", "id_type_code": "01", "id_no": ID_NO, "name": NAME, "sex_code": "1"}]}
    assert api_a.post("/api/v1/directory/patients", patients).status_code == 200
    before = container.keys.fields().active
    argv = ["keys", "rotate-data", "--data-dir", str(container.settings.data_dir), "--database-url", container.settings.db_url,
            "--row-batch", "2"]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert "检验报告共 1 行：重新加密 1" in out and "患者主数据共 1 行：重新加密 1" in out, out
    assert "报告历史版本 [" + "#" * 30 + "] 1/1" in err
    fields = container.keys.reload_fields()
    assert fields.active != before
    kids = {sealing.key_id(v) for vs in _raw_values(container).values() for v in vs if v}
    assert kids == {fields.active}
    container.db.seal_with(fields)  # a restarted platform process: the new keys
    [m] = container.query.patient_reports("lab", "01", ID_NO, WHO_A)
    assert (m["labmaster"]["name"], m["labmaster"]["card_no"]) == (NAME, CARD)
    assert [r["id_no"] for r in api_b.get("/api/v1/recognition/accept").json()["records"]] == [ID_NO]
    assert container.masterdata.read("patient", WHO_A, filters={"id_no": ID_NO})["patient"][0]["name"] == NAME
    # a second run (--resume) finds every row under the current key
    assert cli.main([*argv, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "检验报告共 1 行：重新加密 0，首次加密 0，已是当前密钥 1" in out, out


def test_every_table_holding_an_id_number_seals_it() -> None:
    """A table that gains an ``id_no`` (or a patient ``name``) column must be listed in
    huren.store.sealing.SPECS, with its blind index: otherwise the ID number would sit in clear."""
    from huren.store.tables import metadata

    holding = {t.name for t in metadata.tables.values() if "id_no" in t.c}
    assert holding <= set(sealing.SPECS), holding - set(sealing.SPECS)
    for name in holding:
        spec = sealing.SPECS[name]
        assert "id_no" in spec.columns and spec.indexed and "id_no_bidx" in spec.table.c, name
    for name in ("lab_report", "exam_report", "patient"):
        assert {"name", "card_no"} <= set(sealing.SPECS[name].columns)


def test_a_question_costs_one_hmac(api_a: Api, container: Container, catalog: None, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """exists-for-order looks the patient up by the blind index several times (each kind's prior
    items, the visit's decisions and reminders, the access-log row): one HMAC for all of them."""
    assert api_a.post("/api/v1/lab-reports", _lab(container)).status_code == 200
    fields = container.keys.fields()
    calls: list[str] = []
    blind = fields.blind

    def counted(value: str, domain: str) -> str:
        calls.append(value)
        return blind(value, domain)

    monkeypatch.setattr(fields, "blind", counted)
    from huren.services.recognition import Visit

    visit = Visit(**{k: VISIT[k] for k in ("event_no", "dept_code", "dept_name", "dept_std_code", "dept_std_name", "doc_code", "doc_name")})
    other = idcard.make("650104", date(1991, 1, 1), 555)
    for asked in (ID_NO, other):
        calls.clear()
        answer = container.recognition.exists(WHO_B, "01", asked, lab=[LAB_CODE], visit=visit)
        assert calls == [asked], calls
    assert answer["labmaster"] == []
